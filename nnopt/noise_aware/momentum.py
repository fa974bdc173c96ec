"""The baselines of Balles ch. 5 without variance adaptation: M-SGD, SIGN-SGD
and M-SSD (M-SIGN-SGD), as optax transforms (Alg. 3, (6.2)).

"Momentum" here is the bias-corrected EMA of the gradients (3.25), not heavy
ball: ``optax.sgd(momentum=β)`` differs by 1/(1−β) and has no bias
correction. The EMA is kept in the parameters' dtype, as ``optax.ema`` does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

from nnopt.noise_aware.common import skip_if_nonfinite, with_learning_rate
from nnopt.noise_aware.ema import check_beta

Array = jax.Array


class MomentumState(NamedTuple):
  """State of :func:`scale_by_msgd` / :func:`scale_by_msign`.

  Attributes:
    count: steps taken (int32).
    mu: EMA of the gradients m̃ (not bias-corrected).
  """

  count: Array
  mu: Any


def scale_by_msgd(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """Bias-corrected EMA of the gradients (M-SGD direction, Alg. 3 left).

  .. math::

     \\tilde m_t = \\beta \\tilde m_{t-1} + (1-\\beta) g_t,\\qquad
     m_t = \\tilde m_t / (1 - \\beta^{t+1})

  Equals ``optax.ema(beta, debias=True)``.

  Args:
    beta: EMA constant in [0, 1).

  References:
    Balles (2021), Alg. 3 and (3.25).
  """
  check_beta(beta)

  def init_fn(params):
    return MomentumState(jnp.zeros([], jnp.int32), otu.tree_zeros_like(params))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    mu = otu.tree_update_moment(updates, state.mu, beta, 1)
    count = optax.safe_increment(state.count)
    m = otu.tree_bias_correction(mu, beta, count)
    return skip_if_nonfinite(updates, m, state, MomentumState(count, mu))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def msgd(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9
         ) -> optax.GradientTransformationExtraArgs:
  """M-SGD: ``θ ← θ − α m_t`` with the bias-corrected EMA m_t (Alg. 3).

  Args:
    learning_rate: α, a float or an optax schedule.
    beta: EMA constant in [0, 1) (thesis default 0.9).
  """
  return with_learning_rate(scale_by_msgd(beta), learning_rate)


def scale_by_sign() -> optax.GradientTransformationExtraArgs:
  """Elementwise sign of the gradient: SIGN-SGD's direction (6.2).

  .. math::  u = \\operatorname{sign}(g)  \\qquad (\\operatorname{sign} 0 = 0)

  References:
    Balles (2021), (6.1)–(6.2).
  """

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    return skip_if_nonfinite(updates, jax.tree.map(jnp.sign, updates), state,
                             state)

  return optax.GradientTransformationExtraArgs(
      lambda params: optax.EmptyState(), update_fn)


def sign_sgd(learning_rate: optax.ScalarOrSchedule
             ) -> optax.GradientTransformationExtraArgs:
  """SIGN-SGD: ``θ ← θ − α sign(g)`` (6.2)."""
  return with_learning_rate(scale_by_sign(), learning_rate)


def scale_by_msign(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """Sign of the gradient EMA: M-SSD's direction (Alg. 3 right).

  .. math::  \\tilde m_t = \\beta \\tilde m_{t-1} + (1-\\beta) g_t,\\qquad
             u = \\operatorname{sign}(\\tilde m_t)

  The bias correction cannot change the sign; β = 0 is SIGN-SGD.

  References:
    Balles (2021), Alg. 3 (right), §5.6 "M-SSD".
  """
  momentum = scale_by_msgd(beta)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    # sign(m̃ / (1 − β^{t+1})) = sign(m̃); a skipped step's zeros stay zero.
    m, new = momentum.update(updates, state, params)
    return jax.tree.map(jnp.sign, m), new

  return optax.GradientTransformationExtraArgs(momentum.init, update_fn)


def msign_sgd(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9
              ) -> optax.GradientTransformationExtraArgs:
  """M-SSD (M-SIGN-SGD): ``θ ← θ − α sign(m̃_t)`` (Alg. 3).

  Args:
    learning_rate: α, a float or an optax schedule.
    beta: EMA constant in [0, 1) (thesis default 0.9).
  """
  return with_learning_rate(scale_by_msign(beta), learning_rate)


__all__ = ["MomentumState", "msgd", "msign_sgd", "scale_by_msgd",
           "scale_by_msign", "scale_by_sign", "sign_sgd"]
