"""The gradient noise of the step's batch, inside an optimizer.

Transforms that adapt to the noise of the current batch (M-SVAG-mb, the
diagonal empirical Fisher) and methods that act between steps (CABS,
:mod:`nnopt.noise_aware.cabs`) need the per-example gradient moments of the
batch. The step hands every transform the layer statistics (``stats``), the
mask (``weights``), the mean gradient (``grad``) and the loss (``value``) as
extra args; :func:`moments_from_extra_args` turns them into
:class:`~nnopt.stats.moments.BatchMoments` by the fast path of
:mod:`nnopt.stats.captured_moments`.

:func:`track_batch_variance` records the trace of the per-example covariance
(:func:`nnopt.stats.captured_moments.trace_from_stats`: per-example squared
gradient norms, each layer by its cheaper exact path, nothing per coordinate)
in its state, where a hook reads it (:func:`find_batch_variance`). The updates
pass through unchanged, so it goes in front of any optimizer:

.. code-block:: python

    opt = optax.chain(track_batch_variance(), optax.sgd(0.1))

Every transform here declares ``Needs(stats=True)`` in its state, so the
engine captures the statistics (``nnopt.required_needs(opt, params)`` tells a
hand-written loop the same). With data parallelism every quantity is a
reduction over the GLOBAL batch (the stats are sharded arrays inside one
jitted step).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

from nnopt.stats.captured_moments import moments_from_stats, trace_from_stats
from nnopt.stats.layer_moments import VarianceError
from nnopt.stats.moments import BatchMoments
from nnopt.stats.needs import Needs, NeedsMarker, needs_marker

Array = jax.Array

STATS = needs_marker(Needs(stats=True))


def _no_stats(who: str, alternative: str) -> VarianceError:
  return VarianceError(
      f"{who} needs per-example gradient information: {alternative}the layer "
      "statistics stats=capture(...).stats (the engine passes them when the "
      "optimizer declares Needs(stats=True), as this one does; in a "
      "hand-written loop ask nnopt.required_needs(optimizer, params))")


def moments_from_extra_args(updates, *, stats=None, weights=None, grad=None,
                            layers=None, chunk_size=None,
                            who: str = "this transform",
                            alternative: str = "") -> BatchMoments:
  """:class:`BatchMoments` from the step's ``stats``/``weights``/``grad``.

  Raises:
    VarianceError: no ``stats``; the message names ``who`` and an
      ``alternative`` input.
  """
  if not stats:
    raise _no_stats(who, alternative)
  return moments_from_stats(stats, updates if grad is None else grad,
                            weights=weights, layers=layers,
                            chunk_size=chunk_size)


def batch_variance_from_extra_args(updates, *, variance=None, stats=None,
                                   weights=None, grad=None, layers=None,
                                   chunk_size=None) -> Any:
  """Variance of the mean gradient ``ŝ_mb = s / m`` from a transform's extra
  args: ``variance`` (a pytree, or a ``BatchMoments``) wins; else the step's
  ``stats``/``weights``/``grad`` give it by the fast path."""
  if variance is not None:
    return (variance.mean_variance if isinstance(variance, BatchMoments)
            else variance)
  return moments_from_extra_args(
      updates, stats=stats, weights=weights, grad=grad, layers=layers,
      chunk_size=chunk_size, who="msvag_mb",
      alternative="pass variance=... (e.g. "
      "nnopt.stats.moments.batch_moments(...).mean_variance) or ").mean_variance


class BatchVarianceState(NamedTuple):
  """Noise statistics of the last batch (arrays; zeros before the first step).

  Attributes:
    count: steps recorded (int32).
    batch_size: number of real examples m of the last batch.
    loss: the last batch loss f (``value`` extra arg).
    trace: ``Σ_j s_j``, the trace of the per-example gradient covariance
      estimate (3.30), used by CABS (4.20).
    grad_sq_norm: ``‖g‖²`` of the last mean gradient (competitor rule (4.18)).
    needs: declares ``Needs(stats=True)``.
  """

  count: Array
  batch_size: Array
  loss: Array
  trace: Array
  grad_sq_norm: Array
  needs: NeedsMarker = STATS


def track_batch_variance(ddof: int = 1, *, layers=None,
                         chunk_size: int | None = None, method: str = "auto"
                         ) -> optax.GradientTransformationExtraArgs:
  """Records ``tr Σ̂``, ``‖g‖²``, ``f`` and ``m`` of each batch; identity update.

  .. math::  \\operatorname{tr}\\hat\\Sigma = \\sum_j s_j,\\quad
             s = \\frac{\\sum_n w_n G_n^2 - m g^2}{m - \\mathrm{ddof}}

  Needs the step's ``stats`` (declared); a batch with fewer than 2 real
  examples records trace 0, a non-finite one leaves the record unchanged.

  Args:
    ddof: 1 (unbiased) or 0 (the CABS reference code's ξ).
    layers: optional ``layer_info`` dict (conv geometry).
    chunk_size: examples per chunk of the per-example paths (memory bound).
    method: per-example norm path of shared-weight layers, ``'auto'``
      (cheaper per layer), ``'patches'`` or ``'gram'``; see
      :func:`nnopt.stats.captured_moments.trace_from_stats`.

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
      raise _no_stats("track_batch_variance", "")
    tr = trace_from_stats(stats, updates if grad is None else grad,
                          weights=weights, layers=layers, ddof=ddof,
                          chunk_size=chunk_size, method=method)
    loss = jnp.zeros([], jnp.float32) if value is None else jnp.asarray(
        value, jnp.float32)
    new = BatchVarianceState(optax.safe_increment(state.count),
                             tr.count.astype(jnp.float32), loss,
                             tr.trace, tr.grad_sq_norm)
    ok = jnp.isfinite(new.trace) & jnp.isfinite(new.grad_sq_norm)
    return updates, otu.tree_where(ok, new, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def find_batch_variance(opt_state: Any) -> BatchVarianceState | None:
  """The first :class:`BatchVarianceState` inside an optimizer state (through
  any optax wrapper), or None."""
  found = otu.tree_get_all_with_path(
      opt_state, BatchVarianceState.__name__,
      filtering=lambda _, value: isinstance(value, BatchVarianceState))
  return found[0][1] if found else None


def cabs_sgd(learning_rate: optax.ScalarOrSchedule, ddof: int = 1, *,
             layers=None, chunk_size: int | None = None, method: str = "auto"
             ) -> optax.GradientTransformationExtraArgs:
  """Plain SGD that also records the batch variance for
  :class:`nnopt.noise_aware.cabs.CABS` (SGD with CABS is Alg. 1).

  Args:
    learning_rate: the constant SGD step α (pass the same α to the hook).
    ddof, layers, chunk_size, method: see :func:`track_batch_variance`.
  """
  return optax.chain(
      track_batch_variance(ddof, layers=layers, chunk_size=chunk_size,
                           method=method),
      optax.sgd(learning_rate))


__all__ = ["BatchVarianceState", "batch_variance_from_extra_args", "cabs_sgd",
           "find_batch_variance", "moments_from_extra_args",
           "track_batch_variance"]
