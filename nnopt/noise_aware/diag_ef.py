"""The diagonal empirical-Fisher preconditioned step (Balles ch. 7), an optax
transform.

The empirical Fisher of the mean loss uses the training labels, so it is not
an estimate of the Fisher (§7.3); its diagonal is the non-central second
moment of the per-example gradients (7.22). This transform preconditions with
it, the object whose failure modes ch. 7 studies and the one Adam's second
moment resembles (without the square root).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

from nnopt.noise_aware.batch_variance import STATS, moments_from_extra_args
from nnopt.noise_aware.common import (accumulator_dtype, skip_if_nonfinite,
                                      with_learning_rate, zeros_accumulator)
from nnopt.noise_aware.ema import check_beta
from nnopt.stats.layer_moments import VarianceError
from nnopt.stats.moments import BatchMoments
from nnopt.stats.needs import NeedsMarker

Array = jax.Array


class DiagEFState(NamedTuple):
  """State of :func:`scale_by_diag_ef`.

  Attributes:
    count: steps taken (int32).
    nu: EMA of the second gradient moment q (the current q when ``decay`` is
      None).
    needs: declares ``Needs(stats=True)``.
  """

  count: Array
  nu: Any
  needs: NeedsMarker = STATS


def _check_damping(damping: Any) -> None:
  try:
    value = float(damping)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return  # traced (inject_hyperparams under jit)
  if not value >= 0:
    raise VarianceError(f"damping must be >= 0, got {damping!r}")


def scale_by_diag_ef(damping: float = 1e-8, decay: float | None = None,
                     sqrt: bool = False, *, layers=None,
                     chunk_size: int | None = None
                     ) -> optax.GradientTransformationExtraArgs:
  """Diagonal empirical-Fisher preconditioning.

  .. math::

     d_{EF} = q = \\frac{1}{m}\\sum_n G_n^2,\\qquad
     u = \\frac{g}{d_{EF} + \\lambda}\\quad
     \\Big(\\text{or } \\frac{g}{\\sqrt{d_{EF}} + \\lambda}
     \\text{ with } \\texttt{sqrt}\\Big)

  ``q`` is the diagonal of the empirical Fisher of the mean loss, (7.7) with
  the 1/N of App. D.3; by (7.22) it is the non-central second moment of the
  per-example gradients. It arrives as ``sq_grad_mean=`` (a pytree, or a
  ``BatchMoments``) or is computed from the step's ``stats``/``weights``
  (declared: ``Needs(stats=True)``). With ``decay`` it is averaged by an EMA,
  bias-corrected with ``decay^{t+1}``.

  Args:
    damping: λ ≥ 0.
    decay: optional EMA constant in [0, 1) for q.
    sqrt: precondition with √q (Adam-like, §7.5) instead of q.
    layers, chunk_size: see
      :func:`nnopt.stats.captured_moments.moments_from_stats`.

  References:
    Balles (2021), (7.7), (7.22), (D.32) (diagonal version).
  """
  if decay is not None:
    check_beta(decay, "decay")
  _check_damping(damping)

  def init_fn(params):
    return DiagEFState(jnp.zeros([], jnp.int32), zeros_accumulator(params))

  def update_fn(updates, state, params=None, *, sq_grad_mean=None, stats=None,
                weights=None, grad=None, **extra_args):
    del params, extra_args
    if sq_grad_mean is None:
      sq_grad_mean = moments_from_extra_args(
          updates, stats=stats, weights=weights, grad=grad, layers=layers,
          chunk_size=chunk_size, who="diag_ef",
          alternative="pass sq_grad_mean=... or ").sq_mean
    elif isinstance(sq_grad_mean, BatchMoments):
      sq_grad_mean = sq_grad_mean.sq_mean
    dtype = accumulator_dtype(state.nu)
    q_now = otu.tree_cast(sq_grad_mean, dtype)
    count = optax.safe_increment(state.count)
    if decay is None:
      nu = q = q_now
    else:
      b = jnp.asarray(decay, dtype)
      nu = otu.tree_update_moment(q_now, state.nu, b, 1)
      q = otu.tree_bias_correction(nu, b, count)
    lam = jnp.asarray(damping, dtype)
    pre = jnp.sqrt if sqrt else (lambda d: d)
    out = jax.tree.map(lambda g, d: g.astype(dtype) / (pre(d) + lam),
                       updates, q)
    new = DiagEFState(count, nu)
    return skip_if_nonfinite((updates, sq_grad_mean), out, state, new,
                             like=updates)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def diag_ef(learning_rate: optax.ScalarOrSchedule, damping: float = 1e-8,
            decay: float | None = None, sqrt: bool = False, *, layers=None,
            chunk_size: int | None = None
            ) -> optax.GradientTransformationExtraArgs:
  """Diagonal empirical-Fisher descent ``θ ← θ − α g / (q + λ)``; see
  :func:`scale_by_diag_ef`.

  Args:
    learning_rate: α, a float or an optax schedule.
    damping, decay, sqrt, layers, chunk_size: see :func:`scale_by_diag_ef`.
  """
  return with_learning_rate(
      scale_by_diag_ef(damping, decay, sqrt, layers=layers,
                       chunk_size=chunk_size), learning_rate)


__all__ = ["DiagEFState", "diag_ef", "scale_by_diag_ef"]
