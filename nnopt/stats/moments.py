"""Per-example gradient moments of a mini-batch and EMA variance estimators.

For per-example gradients :math:`G_1, …, G_m` at the same parameters (Balles
§3.4, spec-noise-aware §1.1), with frequency weights :math:`w_n` (0 marks a
padded row) and :math:`m = \\sum_n w_n`:

.. math::

   g = \\frac{1}{m}\\sum_n w_n G_n, \\qquad
   Q = \\sum_n w_n G_n^2, \\qquad
   s = \\frac{Q - m g^2}{m - \\mathrm{ddof}}, \\qquad
   \\widehat{\\mathrm{Var}}[g] = s / m ,

``s`` is the per-EXAMPLE variance estimate (3.30) (ddof 1: unbiased; ddof 0:
the CABS reference code's ξ) and ``s / m = (Q/m − g²)/(m − 1)`` estimates the
variance of the mini-batch MEAN gradient (corrected (B.31)). CABS uses
``trace = Σ_j s_j``, M-SVAG-mb uses ``s / m``.

Two paths give the same :class:`BatchMoments`:

* :func:`batch_moments` — the reference: ``vmap(grad)`` of a one-example loss,
  any model, optionally in chunks (``lax.scan``) to bound memory.
* :func:`moments_from_stats` — from :func:`nnopt.stats.capture.capture`'s layer
  inputs ``a`` and output cotangents ``c`` of the mean loss. For a Dense layer
  example n's gradient is ``(m / w_n) a_n ⊗ c_n``, hence (Balles' TF trick)

  .. math::  Q_W = \\sum_n \\frac{m^2}{w_n} (a_n^2)^T (c_n^2)

  — one extra matmul, no per-example gradient is materialized. Convolutions
  (and Dense layers applied to sequences) share weights across positions, so
  the square does not factor: there the exact path forms each example's
  gradient ``A_nᵀ C_n`` from its patches ``A_n`` (positions ×
  ``kh·kw·C_in``, built from static slices of the padded input) in chunks of
  examples (``lax.scan``): memory about 8 MiB per chunk by default
  (:data:`nnopt.stats.layer_moments.CHUNK_FLOATS`), or ``chunk_size`` examples ×
  (patches + ``|kernel|`` + cotangents). See :mod:`nnopt.stats.layer_moments`.

:func:`trace_from_stats` gives only ``tr Σ̂`` (CABS): it needs per-example
squared NORMS, for which a layer with few positions uses the cheaper Gram
form ``‖G_n‖² = Σ_{p,q} (a_p·a_q)(c_p·c_q)``.

EMA estimators (§1.3–1.4, (5.14)–(5.16), (B.33)–(B.34)) are in-graph functions
of the step count: :func:`ema_rho`, :func:`ema_variance`.
"""

from __future__ import annotations

import functools

import math
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.stats.capture import LayerStats, capture
from nnopt.stats.layer_moments import (VarianceError, infer_conv_info,
                                  layer_sq_norm_sum, layer_sq_sum)
from nnopt.losses import Loss
from nnopt.models.layers import LayerInfo

Array = jax.Array


class BatchMoments(NamedTuple):
  """First and second moments of the per-example gradients of a batch.

  The stored fields are ``count``, ``mean``, ``sq_sum``, ``trace`` and
  ``ddof``; ``variance`` and ``mean_variance`` are derived on access, so that
  a jitted function materializes only the pytrees its caller uses (inside a
  consumer they fuse into its update).

  Attributes:
    count: number of examples m (sum of the weights).
    mean: mean gradient g (pytree like the parameters).
    sq_sum: ``Σ_n w_n G_n²``, the sum of squared per-example gradients.
    trace: ``Σ_j s_j`` over all parameters (tr Σ of CABS (4.20)).
    ddof: the delta degrees of freedom of ``variance`` (0 or 1).
    variance: per-example variance estimate s (3.30),
      ``max(Q − m g², 0) / (m − ddof)``, clamped at 0; zero when
      ``count < 2`` (no estimate exists, Balles §4.3).
    mean_variance: ``s / m``, the variance of the mean gradient (B.30).
  """

  count: Array
  mean: Any
  sq_sum: Any
  trace: Array
  ddof: Array

  @property
  def variance(self):
    return jax.tree.map(functools.partial(_variance, self.count, self.ddof),
                        self.mean, self.sq_sum)

  @property
  def mean_variance(self):
    return jax.tree.map(
        lambda s: s / _like(jnp.maximum(self.count, 1.0), s), self.variance)

  @property
  def sq_mean(self):
    """``q = Σ_n w_n G_n² / m``, the second gradient moment."""
    return jax.tree.map(
        lambda q: q / _like(jnp.maximum(self.count, 1.0), q), self.sq_sum)

  @property
  def mean_trace(self) -> Array:
    """Trace of the variance of the mean gradient, ``trace / m``."""
    return self.trace / jnp.maximum(self.count, 1.0)


def _like(scalar: Array, leaf: Array) -> Array:
  """Per-batch scalars against a leaf; also for moments batched by vmap
  (leading axes), read outside it."""
  scalar = jnp.asarray(scalar)
  return scalar.reshape(scalar.shape + (1,) * (leaf.ndim - scalar.ndim))


def _variance(count: Array, ddof: Array, g: Array, q: Array) -> Array:
  count, ddof = _like(count, g), _like(ddof, g)
  valid = count >= 2.0
  denom = jnp.where(valid, count - ddof, 1.0)
  return jnp.where(valid, jnp.maximum(q - count * g * g, 0.0) / denom, 0.0)


def _check_ddof(ddof: int) -> None:
  if ddof not in (0, 1):
    raise VarianceError(f"ddof must be 0 or 1, got {ddof!r}")


def _check_static_batch(batch_size: int) -> None:
  if batch_size < 2:
    raise VarianceError(
        f"a gradient variance needs at least 2 examples per batch, got a "
        f"batch of {batch_size} (Balles §4.3: m = 1 gives no estimate)")


def finalize_moments(count: Array, mean, sq_sum, ddof: int = 1) -> BatchMoments:
  """Builds :class:`BatchMoments` from ``m``, ``g`` and ``Σ w G²``.

  ``s = max(Q − m g², 0) / (m − ddof)``; for ``m < 2`` the variance is 0
  (documented, never NaN).
  """
  _check_ddof(ddof)
  count = jnp.asarray(count, jnp.float32)
  ddof = jnp.asarray(ddof, jnp.float32)
  # A reduction only: the variance pytree itself is never written out here.
  trace = sum(jnp.sum(_variance(count, ddof, g, q)) for g, q in
              zip(jax.tree.leaves(mean), jax.tree.leaves(sq_sum)))
  return BatchMoments(count, mean, sq_sum, jnp.asarray(trace, jnp.float32),
                      ddof)


def moments_from_per_example(per_example_grads, weights: Array | None = None,
                             ddof: int = 1) -> BatchMoments:
  """Moments of explicit per-example gradients (leading batch axis)."""
  leaves = jax.tree.leaves(per_example_grads)
  batch = leaves[0].shape[0]
  _check_static_batch(batch)
  w = jnp.ones((batch,), jnp.float32) if weights is None else weights.astype(
      jnp.float32)
  count = jnp.sum(w)
  bw = lambda x: w.reshape((-1,) + (1,) * (x.ndim - 1))
  mean = jax.tree.map(
      lambda x: jnp.sum(bw(x) * x, 0) / jnp.maximum(count, 1.0),
      per_example_grads)
  sq_sum = jax.tree.map(lambda x: jnp.sum(bw(x) * x * x, 0), per_example_grads)
  return finalize_moments(count, mean, sq_sum, ddof)


def per_example_grads(example_loss: Callable[..., Array], params, *batch):
  """``vmap(grad(example_loss))``: one gradient per example (leading axis).

  Args:
    example_loss: ``(params, *example) -> scalar`` for ONE unbatched example.
    params: parameters (shared by all examples).
    *batch: arrays with a leading batch axis, one per argument.
  """
  return jax.vmap(jax.grad(example_loss), in_axes=(None,) + (0,) * len(batch))(
      params, *batch)


def model_example_loss(model: nn.Module, loss: Loss) -> Callable[..., Array]:
  """``(params, x, y) -> ℓ`` of one example for a batched flax model."""

  def example_loss(params, x, y):
    outputs = model.apply({"params": params}, x[None])
    return loss.per_example(outputs, y[None])[0]

  return example_loss


def batch_moments(example_loss: Callable[..., Array], params, inputs: Array,
                  targets: Array, *, weights: Array | None = None,
                  ddof: int = 1, chunk_size: int | None = None) -> BatchMoments:
  """Reference moments via ``vmap(grad)`` (any differentiable model).

  Args:
    example_loss: ``(params, x, y) -> scalar`` for one example, e.g.
      :func:`model_example_loss`. Use the DATA loss only: a regularizer has
      the same gradient for every example and no variance (spec §1.1).
    params: parameters.
    inputs, targets: the batch (leading axis m).
    weights: 0/1 mask of a padded batch (or frequency weights).
    ddof: 1 (unbiased, default) or 0.
    chunk_size: accumulate over chunks of this many examples with
      ``lax.scan`` (memory ``chunk_size × |params|`` instead of ``m × …``).

  Raises:
    VarianceError: the batch has fewer than 2 rows, or a bad ``ddof``.
  """
  _check_ddof(ddof)
  batch = inputs.shape[0]
  _check_static_batch(batch)
  w = jnp.ones((batch,), jnp.float32) if weights is None else weights.astype(
      jnp.float32)
  if chunk_size is None or chunk_size >= batch:
    grads = per_example_grads(example_loss, params, inputs, targets)
    return moments_from_per_example(grads, w, ddof)
  chunks = -(-batch // chunk_size)
  pad = chunks * chunk_size - batch
  pad_rows = lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, 0)], 0)
  xs = jax.tree.map(
      lambda a: pad_rows(a).reshape((chunks, chunk_size) + a.shape[1:]),
      (inputs, targets))
  xs = (*xs, jnp.concatenate([w, jnp.zeros((pad,), w.dtype)]).reshape(
      chunks, chunk_size))

  def body(carry, chunk):
    s1, s2 = carry
    x, y, cw = chunk
    g = per_example_grads(example_loss, params, x, y)
    bw = lambda a: cw.reshape((-1,) + (1,) * (a.ndim - 1))
    s1 = jax.tree.map(lambda acc, a: acc + jnp.sum(bw(a) * a, 0), s1, g)
    s2 = jax.tree.map(lambda acc, a: acc + jnp.sum(bw(a) * a * a, 0), s2, g)
    return (s1, s2), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  (sum_g, sq_sum), _ = jax.lax.scan(body, (zeros, zeros), xs)
  count = jnp.sum(w)
  mean = jax.tree.map(lambda a: a / jnp.maximum(count, 1.0), sum_g)
  return finalize_moments(count, mean, sq_sum, ddof)


# -- fast path from capture statistics -------------------------------------


def _subtree(tree, path: str):
  node = tree
  for key in path.split("/"):
    node = node[key]
  return node


def _set_subtree(tree: dict, path: str, value) -> None:
  keys = path.split("/")
  node = tree
  for key in keys[:-1]:
    node = node.setdefault(key, {})
  node[keys[-1]] = value


def _layer_infos(stats: Mapping[str, LayerStats], grads,
                 layers: Mapping[str, LayerInfo] | None
                 ) -> dict[str, LayerInfo]:
  """The :class:`LayerInfo` of every captured layer; checks coverage.

  Raises:
    VarianceError: no statistics, fewer than 2 rows, parameters outside
      tagged layers, or a conv layer whose geometry cannot be inferred.
  """
  if not stats:
    raise VarianceError("moments_from_stats needs capture statistics; run "
                        "capture(..., with_stats=True) / "
                        "CaptureSpec(stats=True)")
  first = next(iter(stats.values()))
  _check_static_batch(first.inputs.shape[0])
  infos = {}
  covered = 0
  for name, st in stats.items():
    layer_grads = _subtree(grads, name)
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
  sq_sum: dict = {}
  for name, st in stats.items():
    _set_subtree(sq_sum, name,
                 layer_sq_sum(st, infos[name], weights, chunk_size))
  sq_sum = jax.tree.map(lambda g, q: q.astype(g.dtype), grads,
                        jax.tree.unflatten(jax.tree.structure(grads),
                                           _leaves_like(grads, sq_sum)))
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
  _check_ddof(ddof)
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


def _leaves_like(grads, nested: dict) -> list[Array]:
  """Leaves of ``nested`` in the order of ``grads``' leaves."""
  paths = jax.tree_util.tree_flatten_with_path(grads)[0]
  out = []
  for path, _ in paths:
    node = nested
    for key in path:
      node = node[key.key]
    out.append(node)
  return out


def capture_moments(model: nn.Module, params, inputs: Array, targets: Array,
                    loss: Loss, *, weights: Array | None = None,
                    ddof: int = 1, chunk_size: int | None = None):
  """One forward/backward: ``(loss, BatchMoments)`` by the fast path."""
  cap = capture(model, params, inputs, targets, loss, weights=weights)
  from nnopt.stats.capture import layer_info  # pylint: disable=import-outside-toplevel
  layers = layer_info(model, params, inputs)
  return cap.loss, moments_from_stats(cap.stats, cap.grads, weights=weights,
                                      layers=layers, ddof=ddof,
                                      chunk_size=chunk_size)


# -- EMA estimators (§1.3, §1.4) ---------------------------------------------


def check_beta(beta: Any, name: str = "beta") -> None:
  """Raises :class:`VarianceError` for a concrete β outside [0, 1)."""
  try:
    value = float(beta)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return  # traced (e.g. under inject_hyperparams): cannot check here
  if not (0.0 <= value < 1.0) or math.isnan(value):
    raise VarianceError(f"{name} must lie in [0, 1), got {beta!r}")


def ema_rho(beta, t) -> Array:
  """``ρ(β, t) = (1−β)(1+β^{t+1}) / ((1+β)(1−β^{t+1}))`` (5.15, B.26).

  The variance of the bias-corrected EMA ``m_t`` in units of one step's
  variance; ``ρ(β, 0) = 1`` and ``ρ ≡ 1`` for ``β = 0`` (then ``1 − ρ = 0``).
  """
  beta = jnp.asarray(beta, jnp.float32)
  bt = beta ** (jnp.asarray(t, jnp.float32) + 1.0)
  denom = (1.0 + beta) * (1.0 - bt)
  rho = (1.0 - beta) * (1.0 + bt) / jnp.where(denom > 0, denom, 1.0)
  return jnp.where(denom > 0, jnp.minimum(rho, 1.0), 1.0)


def ema_variance(mean, second, beta, t):
  """Bias-corrected EMA variance ``ŝ_t = (v_t − m_t²) / (1 − ρ(β,t))`` (5.16).

  ``mean`` and ``second`` are the bias-corrected EMAs ``m_t`` and ``v_t``
  (pytrees). Where ``1 − ρ = 0`` (t = 0, or β = 0 at every t) no estimate
  exists and ŝ = 0; ŝ is clamped at 0 against float round-off.
  """
  rho = ema_rho(beta, t)
  one_minus = 1.0 - rho
  ok = one_minus > 0
  safe = jnp.where(ok, one_minus, 1.0)
  return jax.tree.map(
      lambda m, v: jnp.where(ok, jnp.maximum(v - m * m, 0.0) / safe, 0.0),
      mean, second)


def debias(ema, decay, t):
  """``x̃_t / (1 − decay^{t+1})`` for an EMA started at 0 (t from 0)."""
  corr = 1.0 - jnp.asarray(decay, jnp.float32) ** (
      jnp.asarray(t, jnp.float32) + 1.0)
  corr = jnp.where(corr > 0, corr, 1.0)
  return jax.tree.map(lambda x: x / corr.astype(x.dtype), ema)


__all__ = [
    "BatchMoments", "BatchTrace", "VarianceError", "batch_moments",
    "capture_moments",
    "check_beta", "debias", "ema_rho", "ema_variance", "finalize_moments",
    "infer_conv_info", "layer_sq_sum", "model_example_loss",
    "moments_from_per_example", "moments_from_stats", "per_example_grads",
    "trace_from_stats",
]
