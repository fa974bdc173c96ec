"""The statistics layer: what one forward pass and one VJP tell about a batch.

* :mod:`~nnopt.stats.capture`: ``capture`` (loss, gradients, per-layer inputs
  and output cotangents) and layer geometry;
* :mod:`~nnopt.stats.layer_moments` and :mod:`~nnopt.stats.moments`:
  per-example gradient moments (batch variance) from the layer statistics;
* :mod:`~nnopt.stats.kronecker`: the Kronecker factors of a layer.
"""

from nnopt.stats.capture import (Captured, LayerStats, capture, conv_patches,
                                 layer_gradients, layer_info)

__all__ = ["Captured", "LayerStats", "capture", "conv_patches",
           "layer_gradients", "layer_info"]
