"""A pass-through transform that records the batch's gradient-noise statistics.

Methods that act between steps (CABS, :mod:`nnopt.noise_aware.cabs`) need the gradient
variance of the step that was just taken. The engine hands every transform the
layer statistics (``stats``), the mask (``weights``), the mean gradient
(``grad``) and the loss (``value``) as extra args; :func:`track_batch_variance`
turns them into the trace of the per-example covariance by
:func:`nnopt.stats.moments.trace_from_stats` (per-example squared gradient norms,
each layer by its cheaper exact path; nothing per coordinate) and keeps it in
its state, where a hook reads it (:func:`find_batch_variance`). The updates
pass through unchanged, so it goes in front of any optimizer:

.. code-block:: python

    opt = optax.chain(track_batch_variance(), optax.sgd(0.1))

With data parallelism every quantity is a reduction over the GLOBAL batch
(the stats are sharded arrays inside one jitted step).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nnopt.stats.moments import VarianceError, trace_from_stats

Array = jax.Array


class BatchVarianceState(NamedTuple):
  """Noise statistics of the last batch (arrays; zeros before the first step).

  Attributes:
    count: steps recorded (int32).
    batch_size: number of real examples m of the last batch.
    loss: the last batch loss f (``value`` extra arg).
    trace: ``Σ_j s_j``, the trace of the per-example gradient covariance
      estimate (3.30), used by CABS (4.20).
    grad_sq_norm: ``‖g‖²`` of the last mean gradient (competitor rule (4.18)).
  """

  count: Array
  batch_size: Array
  loss: Array
  trace: Array
  grad_sq_norm: Array


def track_batch_variance(ddof: int = 1, *, layers=None,
                         chunk_size: int | None = None, method: str = "auto"
                         ) -> optax.GradientTransformationExtraArgs:
  """Records ``tr Σ̂``, ``‖g‖²``, ``f`` and ``m`` of each batch; identity update.

  .. math::  \\operatorname{tr}\\hat\\Sigma = \\sum_j s_j,\\quad
             s = \\frac{\\sum_n w_n G_n^2 - m g^2}{m - \\mathrm{ddof}}

  Needs the engine's ``stats`` (``CaptureSpec(stats=True)``); a batch with
  fewer than 2 real examples records trace 0.

  Args:
    ddof: 1 (unbiased) or 0 (the CABS reference code's ξ).
    layers: optional ``layer_info`` dict (conv geometry).
    chunk_size: examples per chunk of the per-example paths (memory bound).
    method: per-example norm path of shared-weight layers, ``'auto'``
      (cheaper per layer), ``'patches'`` or ``'gram'``; see
      :func:`nnopt.stats.moments.trace_from_stats`.

  References:
    Balles (2021), (3.30), Alg. 1 line 4.
  """

  def init_fn(params):
    del params
    zero = jnp.zeros([], jnp.float32)
    return BatchVarianceState(jnp.zeros([], jnp.int32), zero, zero, zero, zero)

  def update_fn(updates, state, params=None, *, stats=None, weights=None,
                grad=None, value=None, **extra_args):
    del params, extra_args
    if not stats:
      raise VarianceError(
          "track_batch_variance needs the layer statistics stats=capture(...)"
          ".stats (in the Trainer: capture=CaptureSpec(stats=True))")
    tr = trace_from_stats(stats, updates if grad is None else grad,
                          weights=weights, layers=layers, ddof=ddof,
                          chunk_size=chunk_size, method=method)
    loss = jnp.zeros([], jnp.float32) if value is None else jnp.asarray(
        value, jnp.float32)
    new = BatchVarianceState(optax.safe_increment(state.count),
                             tr.count.astype(jnp.float32), loss,
                             tr.trace, tr.grad_sq_norm)
    ok = jnp.isfinite(new.trace) & jnp.isfinite(new.grad_sq_norm)
    new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
    return updates, new

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def find_batch_variance(opt_state: Any) -> BatchVarianceState | None:
  """The first :class:`BatchVarianceState` inside an optimizer state, or None."""
  if isinstance(opt_state, BatchVarianceState):
    return opt_state
  if isinstance(opt_state, (tuple, list)):
    for item in opt_state:
      found = find_batch_variance(item)
      if found is not None:
        return found
  if isinstance(opt_state, dict):
    for item in opt_state.values():
      found = find_batch_variance(item)
      if found is not None:
        return found
  inner = getattr(opt_state, "inner_state", None)
  if inner is not None:
    return find_batch_variance(inner)
  return None


def cabs_sgd(learning_rate: optax.ScalarOrSchedule, ddof: int = 1, *,
             layers=None, chunk_size: int | None = None, method: str = "auto"):
  """Plain SGD that also records the batch variance for :class:`nnopt.noise_aware.cabs.CABS`."""
  return optax.chain(
      track_batch_variance(ddof, layers=layers, chunk_size=chunk_size,
                           method=method),
      optax.sgd(learning_rate))


__all__ = ["BatchVarianceState", "cabs_sgd", "find_batch_variance",
           "track_batch_variance"]
