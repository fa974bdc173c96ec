"""Sensitivities of the fully extended network and the merit of each candidate.

SensLI (Kreis §4.3.1–4.3.2) never solves the constrained problem (4.4): the
Lagrange multipliers of the "new layers stay the identity" constraints are
the negative gradients at the identity initialization (4.16),

.. math::  \\hat\\lambda = -\\nabla_{\\theta_{new}} \\hat f_{ext}(\\hat\\theta_{ext}),

and inserting the candidate with the largest ``‖λ‖²`` promises the largest
first-order loss decrease (4.10). One gradient of the fully extended network
gives the multipliers of all candidates at once: over the full batch, as the
average of the per-batch mean-loss gradients of one learning-rate-0 epoch
(equal to the full-batch gradient when the batches have equal size), or on a
large random subset.

The merit of a candidate is a squared norm of its gradient: Frobenius of
``W`` for an FNN layer (4.17), of the outer weight ``W2`` for a residual block
(``∇W1`` is exactly zero at insertion, (4.14a)), and the operator norm of the
kernel gradient at the layer's input resolution for a convolution (B.1c).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu

from nnopt.growth.architecture import (Candidate, GrowthError, family,
                                       layer_input_shapes)
from nnopt.growth.norms import norm_fn
from nnopt.losses import Loss
from nnopt.stats.layer_keys import SEPARATOR, subtree

MODES = ("full", "epoch", "subset")
DEFAULT_NORM = {"fnn": "fro", "resnet": "fro", "vgg": "op"}


class Sensitivity(NamedTuple):
  """Averaged gradient of the (extended) network and the matching loss.

  Attributes:
    grads: gradient pytree, keyed like the parameters.
    loss: the average loss the gradient belongs to.
    num_batches: number of batches averaged.
  """

  grads: Any
  loss: jax.Array
  num_batches: int


_GRAD_FNS: dict[Any, Callable] = {}


def _accumulate_fn(model: nn.Module, loss: Loss) -> Callable:
  """Jitted ``(acc, value, params, x, y, w, scale) -> (acc + scale ∇S, value + scale S)``
  with ``S = Σ_n w_n ℓ_n``: one dispatch per batch, like a training step."""
  key = (model, loss.name)
  if key not in _GRAD_FNS:
    def weighted_sum(params, x, y, w):
      out = model.apply({"params": params}, x)
      return jnp.sum(w * loss.per_example(out, y))

    def start(params, x, y, w, scale):
      v, g = jax.value_and_grad(weighted_sum)(params, x, y, w)
      return otu.tree_scale(scale, g), scale * v

    def accumulate(acc, value, params, x, y, w, scale):
      g, v = start(params, x, y, w, scale)
      return otu.tree_add(acc, g), value + v

    _GRAD_FNS[key] = (jax.jit(start), jax.jit(accumulate))
  return _GRAD_FNS[key]


def _chunks(n: int, size: int):
  for start in range(0, n, size):
    yield np.arange(start, min(start + size, n))


def _padded(idx: np.ndarray, size: int):
  w = np.zeros(size, np.float32)
  w[:len(idx)] = 1.0
  return np.concatenate([idx, np.full(size - len(idx), idx[0])]), w


def sensitivities(model: nn.Module, params, loss: Loss, x: np.ndarray,
                  y: np.ndarray, *, mode: str = "full",
                  batch_size: int | None = None, subset_size: int | None = None,
                  chunk_size: int = 4096, seed: int = 0,
                  augment: Callable[[np.ndarray, np.random.Generator],
                                    np.ndarray] | None = None) -> Sensitivity:
  """Averaged loss gradient with no parameter update (Alg. 6, line 6).

  Args:
    model: usually the fully extended network (:func:`fully_extend`).
    params: its parameters.
    loss: the training loss.
    x, y: training inputs and targets (host arrays).
    mode: ``'full'`` (mean loss over all data, evaluated in chunks of
      ``chunk_size``), ``'epoch'`` (one learning-rate-0 epoch: the mean over
      batches of each batch's mean-loss gradient, batches of ``batch_size``
      in a permutation drawn from ``seed``; a final short batch counts as one
      batch, as in the reference code), or ``'subset'`` (one random subset
      of ``subset_size`` examples).
    batch_size: batch size of ``'epoch'`` mode.
    subset_size: size of ``'subset'`` mode.
    chunk_size: memory bound of ``'full'`` mode (does not change the result).
    seed: permutation / subset seed.
    augment: host-side augmentation applied to each batch (``'epoch'`` and
      ``'subset'``; makes the sensitivity stochastic, spec P8).

  Returns:
    A :class:`Sensitivity`.
  """
  if mode not in MODES:
    raise ValueError(f"sensitivity mode must be one of {MODES}, got {mode!r}")
  n = len(x)
  start, accumulate = _accumulate_fn(model, loss)
  rng = np.random.default_rng(seed)
  if mode == "full":
    batches = [(idx, len(idx)) for idx in _chunks(n, min(chunk_size, n))]
    total = float(n)
  elif mode == "epoch":
    if not batch_size or batch_size < 1:
      raise ValueError("sensitivity mode 'epoch' needs a positive batch_size")
    perm = rng.permutation(n)
    batches = [(perm[idx], None) for idx in _chunks(n, batch_size)]
  else:
    if not subset_size or not 0 < subset_size <= n:
      raise ValueError(f"sensitivity mode 'subset' needs 0 < subset_size <= "
                       f"{n}, got {subset_size}")
    batches = [(rng.choice(n, subset_size, replace=False), None)]
  grads = value = None
  width = max(len(b) for b, _ in batches)
  for idx, _ in batches:
    padded, w = _padded(idx, width)
    xb = x[padded]
    if augment is not None and mode != "full":
      xb = augment(xb, rng)
    # 'full': sums over all data then / n; else: per-batch means averaged.
    scale = 1.0 if mode == "full" else 1.0 / len(idx)
    scale = np.float32(scale)
    if grads is None:
      grads, value = start(params, xb, y[padded], w, scale)
    else:
      grads, value = accumulate(grads, value, params, xb, y[padded], w, scale)
  denom = total if mode == "full" else float(len(batches))
  grads = jax.tree.map(lambda a: a / denom, grads)
  return Sensitivity(grads, value / denom, len(batches))


def merit_leaf(grads, cand_or_name: Candidate | str, kind: str):
  """The gradient leaf a candidate's merit is taken of (W; W2; kernel)."""
  name = cand_or_name if isinstance(cand_or_name, str) else cand_or_name.name
  if name not in grads:
    raise GrowthError(f"no gradient for layer {name!r}")
  if kind == "resnet":
    return grads[name]["outer"]["kernel"]
  return grads[name]["kernel"]


@functools.lru_cache(maxsize=None)
def _jitted_norm(name: str, size, slice_mode: str):
  return jax.jit(norm_fn(name, input_size=size, slice_mode=slice_mode))


def weight_merits(model: nn.Module, grads, input_shape: Sequence[int], *,
                  norm: str | None = None, slice_mode: str = "sum_over_in",
                  include_bias: bool = False,
                  paths: Sequence[str] | None = None) -> dict[str, float]:
  """Squared ``norm`` of every weight gradient (or of ``paths``), by layer path.

  Dense kernels and conv kernels are both measured (with the conv norms at
  each conv's true input resolution; conv-only norms fall back to Frobenius
  on dense kernels); for a ResNet every block contributes its inner and
  outer kernels (``'block_0/inner'``, ``'block_0/outer'``). With
  ``include_bias`` the bias gradient's squared norm is added.
  """
  kind = family(model)
  norm = norm or DEFAULT_NORM[kind]
  shapes = layer_input_shapes(model, grads, input_shape)
  out = {}
  for path, in_shape in shapes.items():
    if paths is not None and path not in paths:
      continue
    node = subtree(grads, path)
    size = tuple(in_shape[:2]) if len(in_shape) == 3 else None
    conv = node["kernel"].ndim == 4
    this_norm = norm if conv or norm in ("fro", "fro_scaled", "op") else "fro"
    value = _jitted_norm(this_norm, size, slice_mode)(node["kernel"])
    if include_bias and "bias" in node:
      value = value + jnp.sum(jnp.square(node["bias"]))
    out[path] = float(value)
  return out


def candidate_merits(model_ext: nn.Module, grads, cands: Sequence[Candidate],
                     input_shape: Sequence[int], *, norm: str | None = None,
                     slice_mode: str = "sum_over_in",
                     include_bias: bool = False) -> dict[str, float]:
  """Merit (4.10) of each candidate of the fully extended ``model_ext``.

  FNN: ``‖∇W‖²`` (4.17); ResNet: ``‖∇W2‖²`` of the outer weight; VGG: the
  squared operator norm (B.1c) of the kernel gradient (or ``norm``).
  """
  kind = family(model_ext)
  suffix = "/outer" if kind == "resnet" else ""
  per_layer = weight_merits(model_ext, grads, input_shape, norm=norm,
                            slice_mode=slice_mode, include_bias=include_bias,
                            paths=[c.name + suffix for c in cands])
  return {c.name: per_layer[c.name + suffix] for c in cands}


def reference_merits(model_ext: nn.Module, grads, cands: Sequence[Candidate],
                     input_shape: Sequence[int], *, norm: str | None = None,
                     denominator: str = "baseline",
                     slice_mode: str = "sum_over_in") -> dict[str, float]:
  """The set ``𝒲`` of the threshold rule (4.18) with the merit's norm.

  Args:
    denominator: ``'baseline'`` (thesis: the baseline's weights of the
      candidates' kind — dense matrices for FNN/ResNet, conv kernels for
      VGG), ``'extended'`` (the reference CNN code: those of the fully
      extended network, candidates included).
  """
  if denominator not in ("baseline", "extended"):
    raise ValueError(f"denominator must be 'baseline' or 'extended', got "
                     f"{denominator!r}")
  kind = family(model_ext)
  new = {c.name for c in cands}

  def keep(path):
    if denominator == "baseline" and path.split(SEPARATOR)[0] in new:
      return False
    if kind == "vgg":
      return subtree(grads, path)["kernel"].ndim == 4
    return True

  paths = [p for p in layer_input_shapes(model_ext, grads, input_shape) if keep(p)]
  return weight_merits(model_ext, grads, input_shape, norm=norm,
                       slice_mode=slice_mode, paths=paths)
