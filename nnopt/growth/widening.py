"""Widening hidden FNN layers by new neurons (Kreis §4.4) — experimental.

The thesis formulates widening but does not test it (spec pitfall P20).
Adding ``k`` neurons to hidden layer ``i`` (``y = W1 x + b1``, followed by
``W2``) appends rows to ``W1``/``b1`` and columns to ``W2`` (in flax's
``(in, out)`` layout: columns of layer ``i``'s kernel and rows of the next
kernel). With the initialization (4.19)

.. math::  W_2^{new} = 0,\\qquad W_1^{new} = c\\,\\mathbf 1^T \\ne 0,
           \\qquad b_1^{new} = 0

the function is unchanged, ``∇W1_new = ∇b1_new = 0`` at the first step, and
``∇W2_new = ∇_{y_3} f̂ σ(W1_new x + b1_new)ᵀ`` is generically non-zero; its
squared norm is the merit of widening layer ``i``. The threshold rule (4.20)
compares it with the mean squared norm of the per-neuron outgoing weight
columns of the layers that follow a widened layer.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from nnopt.growth.architecture import GrowthError, family


def _hidden_index(model: nn.Module, layer: str) -> int:
  if family(model) != "fnn":
    raise GrowthError(f"widening is implemented for FNNs only, got "
                      f"{type(model).__name__}")
  names = model.layer_names()
  if layer not in names:
    raise GrowthError(f"cannot widen {layer!r}: the FNN has no such layer "
                      f"(layers: {list(names)})")
  i = names.index(layer)
  if i == len(names) - 1:
    raise GrowthError(f"cannot widen the output layer {layer!r}: it would "
                      "change the output dimension")
  return i


def widen(model: nn.Module, params: dict[str, Any], layer: str, k: int = 1, *,
          w1_value: float = 0.1) -> tuple[nn.Module, dict[str, Any]]:
  """Adds ``k`` neurons to hidden layer ``layer`` with init (4.19).

  Args:
    model: an FNN.
    params: its parameters.
    layer: name of a hidden layer.
    k: number of new neurons (appended after the existing ones).
    w1_value: the constant ``c`` of the new incoming weights ``c·1``; must
      be non-zero (else the merit vanishes for ReLU) and the same for every
      candidate layer.

  Returns:
    ``(wider_model, wider_params)`` computing the same function.
  """
  if k < 1:
    raise GrowthError(f"widen needs k >= 1 new neurons, got {k}")
  if w1_value == 0:
    raise GrowthError("w1_value must be non-zero (4.19): with W1_new = 0 and "
                      "σ(0) = 0 the new neurons never receive a gradient")
  i = _hidden_index(model, layer)
  names = model.layer_names()
  nxt = names[i + 1]
  new = dict(params)
  cur = dict(params[layer])
  fan_in = cur["kernel"].shape[0]
  dtype = cur["kernel"].dtype
  cur["kernel"] = jnp.concatenate(
      [cur["kernel"], jnp.full((fan_in, k), w1_value, dtype)], axis=1)
  if "bias" in cur:
    cur["bias"] = jnp.concatenate([cur["bias"], jnp.zeros((k,), dtype)])
  after = dict(params[nxt])
  after["kernel"] = jnp.concatenate(
      [after["kernel"], jnp.zeros((k, after["kernel"].shape[1]), dtype)], axis=0)
  new[layer], new[nxt] = cur, after
  widths = list(model.widths)
  widths[i] += k
  return model.clone(widths=tuple(widths)), new


def widen_all(model: nn.Module, params: dict[str, Any],
              layers: Sequence[str] | None = None, k: int = 1, *,
              w1_value: float = 0.1):
  """Every hidden layer (or ``layers``) widened by ``k`` candidate neurons.

  Returns:
    ``(ext_model, ext_params, widened)`` with ``widened = {layer: k}``.
  """
  if layers is None:
    layers = model.layer_names()[:-1]
  for layer in layers:
    model, params = widen(model, params, layer, k, w1_value=w1_value)
  return model, params, {layer: k for layer in layers}


def widening_merits(model_ext: nn.Module, grads, widened: dict[str, int]
                    ) -> tuple[dict[str, float], list[float]]:
  """Merits ``‖∇W2_new‖²`` per widened layer, and the set 𝒲 of (4.20).

  Returns:
    ``(merits, reference)``: ``merits[layer]`` sums the squared gradients of
    the new neurons' outgoing weights; ``reference`` lists the squared
    gradient norm of every existing neuron's outgoing weights in the layers
    that follow a widened layer.
  """
  names = model_ext.layer_names()
  merits, reference = {}, []
  for layer, k in widened.items():
    nxt = names[_hidden_index(model_ext, layer) + 1]
    g = np.asarray(grads[nxt]["kernel"])  # (n_i + k, n_{i+1})
    merits[layer] = float(np.sum(g[-k:] ** 2))
    reference.extend(float(v) for v in np.sum(g[:-k] ** 2, axis=1))
  return merits, reference
