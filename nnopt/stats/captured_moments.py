"""Per-example gradient moments of a whole model from its layer statistics.

:func:`moments_from_stats` gives the :class:`~nnopt.stats.moments.BatchMoments`
of :func:`nnopt.stats.moments.batch_moments` (the ``vmap(grad)`` reference)
from :func:`nnopt.stats.capture.capture`'s layer inputs ``a`` and output
cotangents ``c`` of the mean loss, without forming per-example gradients where
the algebra allows. For a Dense layer example n's gradient is
``(m / w_n) a_n ⊗ c_n``, hence (Balles' TF trick)

.. math::  Q_W = \\sum_n \\frac{m^2}{w_n} (a_n^2)^T (c_n^2)

— one extra matmul. Convolutions (and Dense layers applied to sequences) share
weights across positions, so the square does not factor: there the exact path
forms each example's gradient ``A_nᵀ C_n`` from its patches in chunks of
examples (``lax.scan``), about 8 MiB per chunk by default
(:data:`nnopt.stats.layer_moments.CHUNK_FLOATS`) or ``chunk_size`` examples.
See :mod:`nnopt.stats.layer_moments` for the per-layer paths.

:func:`trace_from_stats` gives only ``tr Σ̂`` (CABS): it needs per-example
squared NORMS, for which a layer with few positions uses the cheaper Gram
form ``‖G_n‖² = Σ_{p,q} (a_p·a_q)(c_p·c_q)``.

Every parameter must belong to a tagged Dense/Conv layer; the sums of squares
are kept in at least float32 (for bfloat16 gradients ``Q − m g²`` would lose
every digit).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.losses import Loss
from nnopt.models.layers import LayerInfo
from nnopt.stats.capture import LayerStats, capture, layer_info
from nnopt.stats.layer_keys import (key_str, leaves_by_path, set_subtree,
                                    subtree)
from nnopt.stats.layer_moments import (VarianceError, infer_conv_info,
                                       layer_sq_norm_sum, layer_sq_sum)
from nnopt.stats.moments import (BatchMoments, check_batch_size, check_ddof,
                                 finalize_moments)

Array = jax.Array


def _layer_infos(stats: Mapping[str, LayerStats], grads,
                 layers: Mapping[str, LayerInfo] | None
                 ) -> dict[str, LayerInfo]:
  """The :class:`LayerInfo` of every captured layer; checks coverage.

  Raises:
    VarianceError: no statistics, fewer than 2 rows, parameters outside
      tagged layers, or a conv layer whose geometry cannot be inferred.
  """
  if not stats:
    raise VarianceError("moments from layer statistics need capture(..., "
                        "with_stats=True).stats")
  first = next(iter(stats.values()))
  check_batch_size(first.inputs.shape[0])
  infos = {}
  covered = 0
  for name, st in stats.items():
    layer_grads = subtree(grads, name)
    kernel = layer_grads["kernel"]
    use_bias = "bias" in layer_grads
    if layers is not None and name in layers:
      info = layers[name]
    elif kernel.ndim == 2:
      info = LayerInfo("dense", use_bias, tuple(kernel.shape))
    else:
      info = infer_conv_info(st, tuple(kernel.shape), use_bias)
    infos[name] = info
    covered += 2 if info.use_bias else 1
  n_leaves = len(jax.tree.leaves(grads))
  if covered != n_leaves:
    raise VarianceError(
        f"{n_leaves - covered} parameter array(s) are not in a tagged "
        "Dense/Conv layer; use batch_moments (vmap) for this model")
  return infos


def _count(stats: Mapping[str, LayerStats], weights: Array | None) -> Array:
  first = next(iter(stats.values()))
  if weights is None:
    return jnp.asarray(first.inputs.shape[0], jnp.float32)
  return jnp.sum(weights.astype(jnp.float32))


def moments_from_stats(stats: Mapping[str, LayerStats], grads, *,
                       weights: Array | None = None,
                       layers: Mapping[str, LayerInfo] | None = None,
                       ddof: int = 1,
                       chunk_size: int | None = None) -> BatchMoments:
  """Fast moments from :func:`nnopt.stats.capture.capture` statistics.

  Per layer: one matmul for Dense layers on vectors, the chunked
  per-example path of :func:`nnopt.stats.layer_moments.layer_sq_sum` for
  convolutions and sequences (memory in the module docstring).

  Args:
    stats: ``Captured.stats`` (cotangents of the weighted MEAN loss).
    grads: ``Captured.grads``, the mean gradient (its structure names the
      parameters; every parameter must belong to a tagged layer).
    weights: the mask passed to ``capture`` (0 on padded rows).
    layers: ``layer_info(model, params, x)``; optional: Dense layers need
      nothing, conv strides/padding are inferred when unambiguous.
    ddof: 1 (unbiased) or 0.
    chunk_size: examples per chunk in the exact conv path (memory bound);
      default: chunks of about :data:`nnopt.stats.layer_moments.CHUNK_FLOATS`
      floats.

  Raises:
    VarianceError: fewer than 2 rows, parameters outside tagged layers, or a
      conv layer whose geometry cannot be inferred.
  """
  infos = _layer_infos(stats, grads, layers)
  nested: dict = {}
  for name, st in stats.items():
    set_subtree(nested, name,
                layer_sq_sum(st, infos[name], weights, chunk_size))
  by_path = leaves_by_path(nested)
  flat, treedef = jax.tree_util.tree_flatten_with_path(grads)
  sq_sum = jax.tree.unflatten(treedef, [
      by_path[key_str(path)].astype(jnp.promote_types(g.dtype, jnp.float32))
      for path, g in flat])
  return finalize_moments(_count(stats, weights), grads, sq_sum, ddof)


class BatchTrace(NamedTuple):
  """The trace of the gradient variance of a batch (what CABS needs).

  Attributes:
    count: number of examples m.
    trace: ``Σ_j s_j``, the trace of the per-example variance estimate.
    sq_norm_sum: ``Σ_n w_n ‖G_n‖²`` over all parameters.
    grad_sq_norm: ``‖g‖²`` of the mean gradient.
  """

  count: Array
  trace: Array
  sq_norm_sum: Array
  grad_sq_norm: Array

  @property
  def mean_trace(self) -> Array:
    """Trace of the variance of the mean gradient, ``trace / m``."""
    return self.trace / jnp.maximum(self.count, 1.0)


def trace_from_stats(stats: Mapping[str, LayerStats], grads, *,
                     weights: Array | None = None,
                     layers: Mapping[str, LayerInfo] | None = None,
                     ddof: int = 1, chunk_size: int | None = None,
                     method: str = "auto") -> BatchTrace:
  """``tr Σ̂ = (Σ_n w_n ‖G_n‖² − m ‖g‖²) / (m − ddof)`` from capture stats.

  Needs only per-example squared gradient NORMS, which each layer computes by
  the cheaper of its exact paths (:func:`nnopt.stats.layer_moments.norm_method`:
  per-example gradients from patches, or the Gram form
  ``Σ_{p,q}(a_p·a_q)(c_p·c_q)`` when a layer has few positions); nothing per
  coordinate is kept. Equals
  ``moments_from_stats(...).trace`` up to float round-off: the sum is clamped
  at 0 instead of each coordinate (which differ only where round-off makes a
  coordinate's variance negative). Zero when ``m < 2``.

  Args:
    stats, grads, weights, layers, ddof, chunk_size: as for
      :func:`moments_from_stats`.
    method: ``'auto'``, ``'patches'`` or ``'gram'`` for every shared-weight
      layer (``'auto'`` chooses per layer).

  Raises:
    VarianceError: as :func:`moments_from_stats`.
  """
  check_ddof(ddof)
  infos = _layer_infos(stats, grads, layers)
  sq_norm_sum = sum(
      layer_sq_norm_sum(st, infos[name], weights, chunk_size, method)
      for name, st in stats.items())
  grad_sq_norm = sum(jnp.sum(jnp.square(g.astype(jnp.float32)))
                     for g in jax.tree.leaves(grads))
  count = _count(stats, weights)
  valid = count >= 2.0
  denom = jnp.where(valid, count - ddof, 1.0)
  trace = jnp.maximum(sq_norm_sum - count * grad_sq_norm, 0.0) / denom
  trace = jnp.where(valid, trace, 0.0)
  return BatchTrace(count, trace.astype(jnp.float32),
                    jnp.asarray(sq_norm_sum, jnp.float32),
                    jnp.asarray(grad_sq_norm, jnp.float32))


def capture_moments(model: nn.Module, params, inputs: Array, targets: Array,
                    loss: Loss, *, weights: Array | None = None,
                    ddof: int = 1, chunk_size: int | None = None):
  """One forward/backward: ``(loss, BatchMoments)`` by the fast path."""
  cap = capture(model, params, inputs, targets, loss, weights=weights)
  layers = layer_info(model, params, inputs)
  return cap.loss, moments_from_stats(cap.stats, cap.grads, weights=weights,
                                      layers=layers, ddof=ddof,
                                      chunk_size=chunk_size)


__all__ = ["BatchTrace", "capture_moments", "moments_from_stats",
           "trace_from_stats"]
