"""Per-example gradient moments of a mini-batch: the type and the reference.

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

:class:`BatchMoments` holds them; :func:`batch_moments` computes them by the
reference path, ``vmap(grad)`` of a one-example loss (any differentiable
model, optionally in chunks with ``lax.scan`` to bound memory).
:mod:`nnopt.stats.captured_moments` computes the same numbers from
:func:`nnopt.stats.capture.capture`'s layer statistics without forming
per-example gradients (the fast path).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from nnopt.losses import Loss
from nnopt.stats.layer_moments import VarianceError

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


def check_ddof(ddof: int) -> None:
  """Raises :class:`VarianceError` unless ``ddof`` is 0 or 1 (a traced
  ``ddof``, e.g. under ``optax.inject_hyperparams``, cannot be checked)."""
  try:
    valid = bool(ddof in (0, 1))
  except jax.errors.ConcretizationTypeError:
    return
  if not valid:
    raise VarianceError(f"ddof must be 0 or 1, got {ddof!r}")


def check_batch_size(batch_size: int) -> None:
  """Raises :class:`VarianceError` for a static batch of fewer than 2 rows."""
  if batch_size < 2:
    raise VarianceError(
        f"a gradient variance needs at least 2 examples per batch, got a "
        f"batch of {batch_size} (Balles §4.3: m = 1 gives no estimate)")


def finalize_moments(count: Array, mean, sq_sum, ddof: int = 1) -> BatchMoments:
  """Builds :class:`BatchMoments` from ``m``, ``g`` and ``Σ w G²``.

  ``s = max(Q − m g², 0) / (m − ddof)``; for ``m < 2`` the variance is 0
  (documented, never NaN).
  """
  check_ddof(ddof)
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
  check_batch_size(batch)
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
  check_ddof(ddof)
  batch = inputs.shape[0]
  check_batch_size(batch)
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

  zeros = optax.tree_utils.tree_zeros_like(params)
  (sum_g, sq_sum), _ = jax.lax.scan(body, (zeros, zeros), xs)
  count = jnp.sum(w)
  mean = jax.tree.map(lambda a: a / jnp.maximum(count, 1.0), sum_g)
  return finalize_moments(count, mean, sq_sum, ddof)


__all__ = [
    "BatchMoments", "VarianceError", "batch_moments", "check_batch_size",
    "check_ddof", "finalize_moments", "model_example_loss",
    "moments_from_per_example", "per_example_grads",
]
