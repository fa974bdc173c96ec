"""Parameter and FLOP counts with the thesis's conventions (Tables 4.2–4.4).

The thesis reports approximate FLOPs per training sample summed over all
epochs (spec §2.10, reverse-engineered so that every table entry reproduces):

* FNN and ResNet: one training epoch costs ``6 ×`` (number of weight-matrix
  entries) per sample: 2 FLOPs per multiply-add, ×3 for forward plus
  backward; biases and activations are ignored.
* CNN: ``3 ×`` forward FLOPs, where the forward pass counts 2 per
  multiply-add of convs and dense layers, 1 per output element of each
  stage's conv for bias, ReLU and max-pool input (3 in all, once per stage
  as in the baseline: an inserted conv adds only its multiply-adds), and 2
  per hidden dense unit (bias and ReLU).
* A SensLI evaluation is one forward plus backward pass of the fully
  extended network: the same ``3 × forward`` (``6 × entries``) once.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.growth.architecture import family, layer_input_shapes
from nnopt.stats.capture import layer_info
from nnopt.stats.layer_keys import by_layer


def param_count(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Number of parameters (Table 4.3), from abstract initialization."""
  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  return int(sum(math.prod(s.shape) for s in jax.tree.leaves(shapes["params"])))


def _abstract_params(model: nn.Module, input_shape):
  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)["params"]


def forward_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Forward FLOPs per sample of a VGG (thesis convention, see module doc)."""
  if family(model) != "vgg":
    raise ValueError("forward_flops follows the thesis's CNN convention; use "
                     "epoch_flops for FNN/ResNet")
  params = _abstract_params(model, input_shape)
  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  infos = layer_info(model, params, x)
  in_shapes = layer_input_shapes(model, params, input_shape)
  total = 0
  for stage in model.names():
    for j, name in enumerate(stage):
      kh, kw, cin, cout = infos[name].kernel_shape
      h, w = in_shapes[name][:2]
      total += 2 * h * w * cout * kh * kw * cin
      if j == 0:
        total += 3 * h * w * cout
  n_dense = len(model.fc) + 1
  for i in range(n_dense):
    fan_in, fan_out = infos[f"fc_{i}"].kernel_shape
    total += 2 * fan_in * fan_out
    if i < n_dense - 1:
      total += 2 * fan_out
  return total


def epoch_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
  """FLOPs per training sample of one epoch (forward + backward)."""
  if family(model) == "vgg":
    return 3 * forward_flops(model, input_shape)
  params = _abstract_params(model, input_shape)
  entries = sum(math.prod(leaves["kernel"].shape)
                for leaves in by_layer(params).values() if "kernel" in leaves)
  return 6 * entries


def run_flops(phases: Sequence[tuple[int, nn.Module]],
              evaluations: Sequence[nn.Module], input_shape: Sequence[int]
              ) -> dict[str, int | float]:
  """Total FLOPs per training sample of a run (Tables 4.2, 4.4).

  Args:
    phases: ``(epochs, architecture)`` of every training phase.
    evaluations: the fully extended architectures of every SensLI
      evaluation (each costs one epoch of that network).
    input_shape: one example's shape.

  Returns:
    ``{'total', 'training', 'evaluation', 'evaluation_share'}``.
  """
  training = sum(e * epoch_flops(m, input_shape) for e, m in phases)
  evaluation = sum(epoch_flops(m, input_shape) for m in evaluations)
  total = training + evaluation
  return {"total": total, "training": training, "evaluation": evaluation,
          "evaluation_share": evaluation / total if total else 0.0}
