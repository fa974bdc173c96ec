"""The statistics layer: what one forward pass and one VJP tell about a batch.

* :mod:`~nnopt.stats.capture`: ``capture`` (loss, gradients, per-layer inputs
  and output cotangents) and ``layer_info`` (the geometry that the tagged
  layers record);
* :mod:`~nnopt.stats.moments`: per-example gradient moments (batch
  variance), their type and the ``vmap(grad)`` reference;
  :mod:`~nnopt.stats.captured_moments` (whole model) and
  :mod:`~nnopt.stats.layer_moments` (one layer): the same from the layer
  statistics;
* :mod:`~nnopt.stats.kronecker`: the Kronecker factors of a layer;
* :mod:`~nnopt.stats.geometry`: a layer's geometry (conv patches, strides
  and padding inferred from shapes).
"""

from nnopt.stats.capture import (Captured, LayerStats, capture, conv_patches,
                                 layer_gradients, layer_info)

__all__ = ["Captured", "LayerStats", "capture", "conv_patches",
           "layer_gradients", "layer_info"]
