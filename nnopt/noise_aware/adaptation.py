"""Noise-aware optimizers of Balles ch. 5: M-SGD, (M-)SIGN-SGD, SVAG, M-SVAG,
M-SVAG-mb and ADAM*, as optax transforms.

All methods share one EMA constant β for the first and second moments
(Balles §5.4.1), bias-correct with ``β^{t+1}`` (t counted from 0, optax's
convention) and estimate the gradient variance in-graph as

.. math::

   \\hat s_t = \\frac{v_t - m_t^2}{1 - \\rho(\\beta, t)}, \\qquad
   \\rho(\\beta,t) = \\frac{(1-\\beta)(1+\\beta^{t+1})}{(1+\\beta)(1-\\beta^{t+1})}

(5.15)–(5.16), with ŝ = 0 where ``1 − ρ = 0`` (t = 0, or β = 0), so the first
M-SVAG step is an SGD step. No ε is used; the variance-adaptation factor γ is 0
where its denominator is 0 and is clipped to [0, 1].

Every transform here skips a step whose incoming update is not finite: it
returns zero updates and leaves its state unchanged (no NaN ever enters the
state). A concrete β outside [0, 1) raises :class:`nnopt.stats.moments.VarianceError`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from nnopt.stats.moments import (BatchMoments, VarianceError, check_beta, debias,
                            ema_rho, ema_variance, moments_from_stats)

Array = jax.Array


# -- shared helpers ------------------------------------------------------------


def zeros_like_tree(params):
  """Zeros shaped like ``params``; also accepts ``jax.ShapeDtypeStruct`` leaves."""
  return jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), params)


def all_finite(tree) -> Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def skip_if_nonfinite(updates, new_updates, state, new_state):
  """``(new_updates, new_state)`` if ``updates`` is finite, else (0, state)."""
  ok = all_finite(updates)
  out = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), new_updates)
  kept = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
  return out, kept


def _ema(tree, ema, beta):
  return jax.tree.map(lambda g, e: beta * e + (1.0 - beta) * g, tree, ema)


def _safe_ratio(num, den):
  """``num / den`` where ``den > 0``, else 0; then clipped to [0, 1]."""
  ok = den > 0
  return jnp.clip(jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0), 0.0, 1.0)


def _alias(direction: optax.GradientTransformation, learning_rate):
  return optax.chain(direction, optax.scale_by_learning_rate(learning_rate))


# -- M-SGD -------------------------------------------------------------------


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

  Equals ``optax.ema(beta, debias=True)``. Not heavy-ball momentum:
  ``optax.sgd(momentum=β)`` differs by 1/(1−β) and has no bias correction.

  References:
    Balles (2021), Alg. 3 and (3.25).
  """
  check_beta(beta)

  def init_fn(params):
    return MomentumState(jnp.zeros([], jnp.int32), zeros_like_tree(params))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    mu = _ema(updates, state.mu, beta)
    new = MomentumState(optax.safe_increment(state.count), mu)
    return skip_if_nonfinite(updates, debias(mu, beta, state.count), state, new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def msgd(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9):
  """M-SGD: ``θ ← θ − α m_t`` with the bias-corrected EMA m_t (Alg. 3)."""
  return _alias(scale_by_msgd(beta), learning_rate)


# -- sign descent --------------------------------------------------------------


def scale_by_sign() -> optax.GradientTransformationExtraArgs:
  """Elementwise sign of the gradient: SIGN-SGD's direction (6.2).

  .. math::  u = \\operatorname{sign}(g)  \\qquad (\\operatorname{sign} 0 = 0)

  References:
    Balles (2021), (6.1)–(6.2).
  """

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    new = jax.tree.map(jnp.sign, updates)
    return skip_if_nonfinite(updates, new, state, state)

  return optax.GradientTransformationExtraArgs(
      lambda params: optax.EmptyState(), update_fn)


def sign_sgd(learning_rate: optax.ScalarOrSchedule):
  """SIGN-SGD: ``θ ← θ − α sign(g)`` (6.2)."""
  return _alias(scale_by_sign(), learning_rate)


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


def msign_sgd(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9):
  """M-SSD (M-SIGN-SGD): ``θ ← θ − α sign(m̃_t)`` (Alg. 3)."""
  return _alias(scale_by_msign(beta), learning_rate)


# -- variance adaptation with EMA estimates -------------------------------------


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


def _ema_moments(updates, state, beta):
  """New state and the bias-corrected ``m, v`` and ``ŝ``, ``ρ`` at step t."""
  mu = _ema(updates, state.mu, beta)
  nu = _ema(jax.tree.map(jnp.square, updates), state.nu, beta)
  m, v = debias(mu, beta, state.count), debias(nu, beta, state.count)
  s = ema_variance(m, v, beta, state.count)
  rho = ema_rho(beta, state.count)
  new = VarianceAdaptationState(optax.safe_increment(state.count), mu, nu)
  return new, m, s, rho


def _variance_adaptation(direction: str, beta: float):
  check_beta(beta)

  def init_fn(params):
    zeros = zeros_like_tree(params)
    return VarianceAdaptationState(jnp.zeros([], jnp.int32), zeros, zeros)

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    new, m, s, rho = _ema_moments(updates, state, beta)
    if direction == "svag":  # γ = m²/(m²+ŝ) along g (5.17)
      out = jax.tree.map(lambda g, m, s: _safe_ratio(m * m, m * m + s) * g,
                         updates, m, s)
    elif direction == "msvag":  # γ = m²/(m²+ρŝ) along m (5.19)
      out = jax.tree.map(
          lambda m, s: _safe_ratio(m * m, m * m + rho * s) * m, m, s)
    else:  # ADAM*: sqrt(m²/(m²+ρŝ)) sign(m) (Alg. 5)
      out = jax.tree.map(
          lambda m, s: jnp.sqrt(_safe_ratio(m * m, m * m + rho * s))
          * jnp.sign(m), m, s)
    return skip_if_nonfinite(updates, out, state, new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_svag(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """SVAG direction: variance-adapted stochastic gradient (Alg. 4).

  .. math::

     \\hat\\gamma = \\frac{m_t^2}{m_t^2 + \\hat s_t},\\qquad
     u = \\hat\\gamma \\odot g_t

  No ρ here: the update is along g, whose variance is ŝ itself.

  References:
    Balles (2021), (5.11), (5.17), Alg. 4.
  """
  return _variance_adaptation("svag", beta)


def scale_by_msvag(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """M-SVAG direction: variance-adapted momentum (Alg. 2).

  .. math::

     \\hat\\gamma = \\frac{m_t^2}{m_t^2 + \\rho(\\beta,t)\\,\\hat s_t},\\qquad
     u = \\hat\\gamma \\odot m_t

  ŝ_0 = 0, so the first step is the SGD step ``g_0``.

  References:
    Balles (2021), (5.18)–(5.19), Alg. 2, §5.4.4.
  """
  return _variance_adaptation("msvag", beta)


def scale_by_adam_star(beta: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """ADAM* direction: Adam with a shared β, bias-corrected variance, the
  momentum factor ρ and no ε (Alg. 5).

  .. math::

     u = \\sqrt{\\frac{m_t^2}{m_t^2 + \\rho(\\beta,t)\\,\\hat s_t}}
         \\odot \\operatorname{sign}(m_t)

  β = 0 is SIGN-SGD at every step (then ρ ≡ 1 and ŝ ≡ 0).

  References:
    Balles (2021), (5.5)–(5.6), Alg. 5 (with (1+η²)^{-1/2}, fixing the
    printed (1+η)^{-1/2}).
  """
  return _variance_adaptation("adam_star", beta)


def svag(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9):
  """SVAG: ``θ ← θ − α γ̂ ⊙ g`` (Alg. 4)."""
  return _alias(scale_by_svag(beta), learning_rate)


def msvag(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9):
  """M-SVAG: ``θ ← θ − α γ̂ ⊙ m`` with γ̂ = m²/(m² + ρŝ) (Alg. 2).

  Example::

    opt = nnopt.msvag(0.1)
    state = opt.init(params)
    updates, state = opt.update(grads, state)
    params = optax.apply_updates(params, updates)
  """
  return _alias(scale_by_msvag(beta), learning_rate)


def adam_star(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9):
  """ADAM*: ``θ ← θ − α sqrt(m²/(m²+ρŝ)) ⊙ sign(m)`` (Alg. 5)."""
  return _alias(scale_by_adam_star(beta), learning_rate)


# -- M-SVAG with mini-batch variance estimates ---------------------------------


class MsvagMbState(NamedTuple):
  """State of :func:`scale_by_msvag_mb`.

  Attributes:
    count: steps taken (int32).
    mu: EMA of the gradients m̃ (decay β).
    r: EMA of the mini-batch variance estimates r̃ (decay β²).
  """

  count: Array
  mu: Any
  r: Any


def batch_variance_from_extra_args(updates, *, variance=None, stats=None,
                                   weights=None, grad=None, layers=None,
                                   chunk_size=None) -> Any:
  """Variance of the mean gradient from a transform's extra args.

  ``variance`` (a pytree, or a :class:`nnopt.stats.moments.BatchMoments`) wins;
  else the engine's ``stats``/``weights``/``grad`` give it by the fast path.
  """
  if variance is not None:
    return variance.mean_variance if isinstance(variance, BatchMoments) else variance
  moments = moments_from_extra_args(updates, stats=stats, weights=weights,
                                    grad=grad, layers=layers,
                                    chunk_size=chunk_size, who="msvag_mb")
  return moments.mean_variance


def moments_from_extra_args(updates, *, stats=None, weights=None, grad=None,
                            layers=None, chunk_size=None,
                            who: str = "this transform") -> BatchMoments:
  """:class:`BatchMoments` from the engine's extra args (fast path)."""
  if not stats:
    raise VarianceError(
        f"{who} needs per-example gradient information: pass variance=... "
        "(e.g. nnopt.stats.moments.batch_moments(...)) or the layer statistics "
        "stats=capture(...).stats (in the Trainer: "
        "capture=CaptureSpec(stats=True))")
  return moments_from_stats(stats, updates if grad is None else grad,
                            weights=weights, layers=layers,
                            chunk_size=chunk_size)


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
  a ``BatchMoments``), or is computed from the engine's ``stats``,
  ``weights`` and ``grad`` extra args (``CaptureSpec(stats=True)``).

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
    zeros = zeros_like_tree(params)
    return MsvagMbState(jnp.zeros([], jnp.int32), zeros, zeros)

  def update_fn(updates, state, params=None, *, variance=None, stats=None,
                weights=None, grad=None, **extra_args):
    del params, extra_args
    s_mb = batch_variance_from_extra_args(
        updates, variance=variance, stats=stats, weights=weights, grad=grad,
        layers=layers, chunk_size=chunk_size)
    chex.assert_trees_all_equal_structs(s_mb, updates)
    mu = _ema(updates, state.mu, beta)
    r = _ema(s_mb, state.r, beta * beta)
    m = debias(mu, beta, state.count)
    rr = debias(r, beta * beta, state.count)
    rho = ema_rho(beta, state.count)
    out = jax.tree.map(lambda m, r: _safe_ratio(m * m, m * m + rho * r) * m,
                       m, rr)
    new = MsvagMbState(optax.safe_increment(state.count), mu, r)
    return skip_if_nonfinite((updates, s_mb), out, state, new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def msvag_mb(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9, *,
             layers=None, chunk_size: int | None = None):
  """M-SVAG-mb: M-SVAG with per-batch variance estimates (Alg. 6)."""
  return _alias(scale_by_msvag_mb(beta, layers=layers, chunk_size=chunk_size),
                learning_rate)


__all__ = [
    "MomentumState", "MsvagMbState", "VarianceAdaptationState", "adam_star",
    "batch_variance_from_extra_args", "moments_from_extra_args", "msgd",
    "msign_sgd", "msvag", "msvag_mb", "scale_by_adam_star", "scale_by_msgd",
    "scale_by_msign", "scale_by_msvag", "scale_by_msvag_mb", "scale_by_sign",
    "scale_by_svag", "sign_sgd", "svag",
]
