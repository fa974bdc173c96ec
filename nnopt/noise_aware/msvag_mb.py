"""M-SVAG with mini-batch variance estimates (Balles Alg. 6), an optax
transform.

Where M-SVAG (:mod:`nnopt.noise_aware.variance_adaptation`) estimates the
gradient variance from the EMAs of the gradients and their squares, M-SVAG-mb
takes it from the current batch's per-example gradients, ``ŝ_mb = (q − g²) /
(m − 1)`` (the corrected (B.31)), and tracks the variance of the momentum
exactly by a second EMA with decay β² (B.33)–(B.34).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

from nnopt.noise_aware.batch_variance import (STATS,
                                              batch_variance_from_extra_args)
from nnopt.noise_aware.common import (accumulator_dtype, safe_ratio,
                                      skip_if_nonfinite, with_learning_rate,
                                      zeros_accumulator)
from nnopt.noise_aware.ema import check_beta, ema_rho
from nnopt.stats.needs import NeedsMarker

Array = jax.Array


class MsvagMbState(NamedTuple):
  """State of :func:`scale_by_msvag_mb`.

  Attributes:
    count: steps taken (int32).
    mu: EMA of the gradients m̃ (decay β).
    r: EMA of the mini-batch variance estimates r̃ (decay β²).
    needs: declares ``Needs(stats=True)`` (the engine captures the layer
      statistics the variance comes from).
  """

  count: Array
  mu: Any
  r: Any
  needs: NeedsMarker = STATS


def scale_by_msvag_mb(beta: float = 0.9, *, layers=None,
                      chunk_size: int | None = None
                      ) -> optax.GradientTransformationExtraArgs:
  """M-SVAG with mini-batch variance estimates (Alg. 6).

  .. math::

     \\tilde m_t = \\beta \\tilde m_{t-1} + (1-\\beta) g_t,\\quad
     \\tilde r_t = \\beta^2 \\tilde r_{t-1} + (1-\\beta^2) \\hat s^{mb}_t,\\\\
     m_t = \\frac{\\tilde m_t}{1-\\beta^{t+1}},\\quad
     r_t = \\frac{\\tilde r_t}{1-\\beta^{2(t+1)}},\\quad
     u = \\frac{m_t^2}{m_t^2 + \\rho(\\beta,t) r_t} \\odot m_t

  where ``ŝ^mb = (q − g²)/(m − 1)`` is the variance of the mini-batch mean
  (corrected (B.31)). It arrives as the extra arg ``variance=`` (a pytree or
  a ``BatchMoments``), or is computed from the step's ``stats``, ``weights``
  and ``grad`` extra args (declared: ``Needs(stats=True)``). At t = 0,
  ρ = 1 and r = ŝ^mb_0, so the first step is already variance-adapted.

  Args:
    beta: EMA constant in [0, 1).
    layers: optional ``layer_info`` dict for conv layers whose geometry
      cannot be inferred.
    chunk_size: examples per chunk in the exact conv variance path.

  References:
    Balles (2021), Alg. 6, (B.30)–(B.34).
  """
  check_beta(beta)

  def init_fn(params):
    zeros = zeros_accumulator(params)
    return MsvagMbState(jnp.zeros([], jnp.int32), zeros, zeros)

  def update_fn(updates, state, params=None, *, variance=None, stats=None,
                weights=None, grad=None, **extra_args):
    del params, extra_args
    s_mb = batch_variance_from_extra_args(
        updates, variance=variance, stats=stats, weights=weights, grad=grad,
        layers=layers, chunk_size=chunk_size)
    chex.assert_trees_all_equal_structs(s_mb, updates)
    dtype = accumulator_dtype(state.mu)
    b = jnp.asarray(beta, dtype)
    mu = otu.tree_update_moment(otu.tree_cast(updates, dtype), state.mu, b, 1)
    r = otu.tree_update_moment(otu.tree_cast(s_mb, dtype), state.r, b * b, 1)
    count = optax.safe_increment(state.count)
    m = otu.tree_bias_correction(mu, b, count)
    rr = otu.tree_bias_correction(r, b * b, count)
    rho = ema_rho(b, state.count, dtype)
    out = jax.tree.map(lambda m, r: safe_ratio(m * m, m * m + rho * r) * m,
                       m, rr)
    new = MsvagMbState(count, mu, r)
    return skip_if_nonfinite((updates, s_mb), out, state, new, like=updates)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def msvag_mb(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9, *,
             layers=None, chunk_size: int | None = None
             ) -> optax.GradientTransformationExtraArgs:
  """M-SVAG-mb: M-SVAG with per-batch variance estimates (Alg. 6); see
  :func:`scale_by_msvag_mb`.

  Args:
    learning_rate: α, a float or an optax schedule.
    beta: EMA constant in [0, 1) (thesis default 0.9).
    layers, chunk_size: see :func:`scale_by_msvag_mb`.
  """
  return with_learning_rate(
      scale_by_msvag_mb(beta, layers=layers, chunk_size=chunk_size),
      learning_rate)


__all__ = ["MsvagMbState", "msvag_mb", "scale_by_msvag_mb"]
