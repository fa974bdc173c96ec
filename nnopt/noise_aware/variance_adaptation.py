"""Variance adaptation with moving-average estimates (Balles ch. 5): SVAG,
M-SVAG and ADAM*, as optax transforms.

All three keep the EMAs m̃ and ṽ of the gradients and their squares with ONE
constant β (§5.4.1), bias-correct them with ``β^{t+1}`` and estimate the
gradient variance in-graph as ``ŝ_t = (v_t − m_t²) / (1 − ρ(β, t))``
(:func:`nnopt.noise_aware.ema.ema_variance`), with ŝ = 0 where ``1 − ρ = 0``
(t = 0, or β = 0), so the first step is an SGD (ADAM*: sign) step. They differ
in the factor γ and the direction it multiplies:

==========  =================================  =========================
method      γ                                  update direction u
==========  =================================  =========================
SVAG        ``m² / (m² + ŝ)``       (5.17)      ``γ ⊙ g``     (Alg. 4)
M-SVAG      ``m² / (m² + ρ ŝ)``     (5.19)      ``γ ⊙ m``     (Alg. 2)
ADAM*       ``sqrt(m² / (m² + ρ ŝ))``            ``γ ⊙ sign(m)`` (Alg. 5)
==========  =================================  =========================

No ε is used: γ is 0 where its denominator is 0 and is clipped to [0, 1].
The EMAs are kept in at least float32 (:mod:`nnopt.noise_aware.common`); the
updates come back in the gradients' dtype.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

from nnopt.noise_aware.common import (accumulator_dtype, safe_ratio,
                                      skip_if_nonfinite, with_learning_rate,
                                      zeros_accumulator)
from nnopt.noise_aware.ema import check_beta, ema_rho, ema_variance

Array = jax.Array

# γ-and-direction of one leaf: (g, m, ŝ, ρ) -> u
_Direction = Callable[[Array, Array, Array, Array], Array]


class VarianceAdaptationState(NamedTuple):
  """State of :func:`scale_by_svag`, :func:`scale_by_msvag`,
  :func:`scale_by_adam_star`.

  Attributes:
    count: steps taken (int32).
    mu: EMA of the gradients m̃.
    nu: EMA of the squared gradients ṽ (same β).
  """

  count: Array
  mu: Any
  nu: Any


def _scale_by_variance_adaptation(beta: float, direction: _Direction
                                  ) -> optax.GradientTransformationExtraArgs:
  check_beta(beta)

  def init_fn(params):
    zeros = zeros_accumulator(params)
    return VarianceAdaptationState(jnp.zeros([], jnp.int32), zeros, zeros)

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    dtype = accumulator_dtype(state.mu)
    b = jnp.asarray(beta, dtype)
    g = otu.tree_cast(updates, dtype)
    mu = otu.tree_update_moment(g, state.mu, b, 1)
    nu = otu.tree_update_moment_per_elem_norm(g, state.nu, b, 2)
    count = optax.safe_increment(state.count)
    m = otu.tree_bias_correction(mu, b, count)
    v = otu.tree_bias_correction(nu, b, count)
    s = ema_variance(m, v, b, state.count)
    rho = ema_rho(b, state.count, dtype)
    out = jax.tree.map(lambda g, m, s: direction(g, m, s, rho), g, m, s)
    new = VarianceAdaptationState(count, mu, nu)
    return skip_if_nonfinite(updates, out, state, new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_svag(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """SVAG direction: variance-adapted stochastic gradient (Alg. 4).

  .. math::

     \\hat\\gamma = \\frac{m_t^2}{m_t^2 + \\hat s_t},\\qquad
     u = \\hat\\gamma \\odot g_t

  No ρ here: the update is along g, whose variance is ŝ itself.

  Args:
    beta: EMA constant in [0, 1) of both moments.

  References:
    Balles (2021), (5.11), (5.17), Alg. 4.
  """
  return _scale_by_variance_adaptation(
      beta, lambda g, m, s, rho: safe_ratio(m * m, m * m + s) * g)


def scale_by_msvag(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """M-SVAG direction: variance-adapted momentum (Alg. 2).

  .. math::

     \\hat\\gamma = \\frac{m_t^2}{m_t^2 + \\rho(\\beta,t)\\,\\hat s_t},\\qquad
     u = \\hat\\gamma \\odot m_t

  ŝ_0 = 0, so the first step is the SGD step ``g_0``.

  Args:
    beta: EMA constant in [0, 1) of both moments.

  References:
    Balles (2021), (5.18)–(5.19), Alg. 2, §5.4.4.
  """
  return _scale_by_variance_adaptation(
      beta, lambda g, m, s, rho: safe_ratio(m * m, m * m + rho * s) * m)


def scale_by_adam_star(beta: float = 0.9
                       ) -> optax.GradientTransformationExtraArgs:
  """ADAM* direction: Adam with a shared β, bias-corrected variance, the
  momentum factor ρ and no ε (Alg. 5).

  .. math::

     u = \\sqrt{\\frac{m_t^2}{m_t^2 + \\rho(\\beta,t)\\,\\hat s_t}}
         \\odot \\operatorname{sign}(m_t)

  β = 0 is SIGN-SGD at every step (then ρ ≡ 1 and ŝ ≡ 0).

  Args:
    beta: EMA constant in [0, 1) of both moments.

  References:
    Balles (2021), (5.5)–(5.6), Alg. 5 (with (1+η²)^{-1/2}, fixing the
    printed (1+η)^{-1/2}).
  """
  return _scale_by_variance_adaptation(
      beta, lambda g, m, s, rho:
      jnp.sqrt(safe_ratio(m * m, m * m + rho * s)) * jnp.sign(m))


def svag(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9
         ) -> optax.GradientTransformationExtraArgs:
  """SVAG: ``θ ← θ − α γ̂ ⊙ g`` (Alg. 4); see :func:`scale_by_svag`."""
  return with_learning_rate(scale_by_svag(beta), learning_rate)


def msvag(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9
          ) -> optax.GradientTransformationExtraArgs:
  """M-SVAG: ``θ ← θ − α γ̂ ⊙ m`` with γ̂ = m²/(m² + ρŝ) (Alg. 2).

  Example::

    opt = nnopt.msvag(0.1)
    state = opt.init(params)
    updates, state = opt.update(grads, state)
    params = optax.apply_updates(params, updates)

  Args:
    learning_rate: α, a float or an optax schedule.
    beta: EMA constant in [0, 1) (thesis default 0.9).
  """
  return with_learning_rate(scale_by_msvag(beta), learning_rate)


def adam_star(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9
              ) -> optax.GradientTransformationExtraArgs:
  """ADAM*: ``θ ← θ − α sqrt(m²/(m²+ρŝ)) ⊙ sign(m)`` (Alg. 5); see
  :func:`scale_by_adam_star`."""
  return with_learning_rate(scale_by_adam_star(beta), learning_rate)


__all__ = ["VarianceAdaptationState", "adam_star", "msvag", "scale_by_adam_star",
           "scale_by_msvag", "scale_by_svag", "svag"]
