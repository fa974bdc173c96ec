"""MLSGD's level-l search direction and its angle condition as optax transforms.

:func:`mlsgd_direction` turns the level's mini-batch gradient into the MLSGD
direction of spec-mlsgd §1.6 (gradient correction, λ-regularization and
SVRG-style variance reduction); :func:`angle_guard` wraps any transformation
and zeroes an update that would violate the angle condition (3.3) on the top
level. Both read their per-level settings (reference point, shift, λ, the fine
gradient) from their states, which :class:`nnopt.multilevel.hook.MLSGDHook`
sets at every level switch.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from nnopt.multilevel.mlsgd import angle_ok
from nnopt.stats.needs import Needs, NeedsMarker, needs_marker


class MLSGDDirectionState(NamedTuple):
  """State of :func:`mlsgd_direction`.

  Attributes:
    ref: the level's reference point w0_l.
    shift: v_l (gradient correction) or c_l (with variance reduction).
    lam: λ of the step-size regularization.
    vr: whether variance reduction is on for this level.
    needs: ``value_fn`` when built with ``variance_reduction``.
  """

  ref: Any
  shift: Any
  lam: jax.Array
  vr: jax.Array
  needs: NeedsMarker


def mlsgd_direction(regularizer: Callable[[Any], jax.Array] | None = None, *,
                    variance_reduction: bool = False
                    ) -> optax.GradientTransformationExtraArgs:
  """The MLSGD direction of level l (MLSGD thesis (3.15)/(3.16)/(3.21)).

  .. math::
     d = g + ∇r(w) + s + λ(w − w_0) \\;[−\\, ∇(f_B + r)(w_0)\\ \\text{if vr}],

  with g the incoming mini-batch gradient, r the regularizer, s the state's
  shift, w_0 its reference point and f_B the batch loss, read from the step's
  ``value_fn`` extra arg. With zero shift, λ = 0 and vr off only the
  regularizer gradient is added.

  Args:
    regularizer: params → extra loss whose gradient is added (None: none).
    variance_reduction: whether the state's ``vr`` flag can switch on the
      SVRG term; then the transform declares ``Needs(value_fn=True)`` and its
      ``update`` requires ``value_fn``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; the caller sets ``ref``,
    ``shift``, ``lam`` and ``vr`` in its state.
  """
  reg = regularizer or (lambda p: jnp.zeros(()))
  marker = needs_marker(Needs(value_fn=variance_reduction))

  def init_fn(params):
    zeros = otu.tree_zeros_like(params)
    return MLSGDDirectionState(zeros, zeros, jnp.zeros(()),
                               jnp.zeros((), bool), marker)

  def update_fn(updates, state, params=None, *, value_fn=None, **extra):
    del extra
    d = otu.tree_add(updates, jax.grad(reg)(params))
    d = otu.tree_add(d, state.shift)
    d = otu.tree_add_scale(d, state.lam, otu.tree_sub(params, state.ref))
    if variance_reduction:
      if value_fn is None:
        raise ValueError("mlsgd_direction(variance_reduction=True) needs the "
                         "step's value_fn extra arg (the batch loss as a "
                         "function of the parameters)")
      ref_grad = jax.lax.cond(
          state.vr, lambda r: jax.grad(lambda p: value_fn(p) + reg(p))(r),
          otu.tree_zeros_like, state.ref)
      d = otu.tree_sub(d, ref_grad)
    # λ is a float32 scalar: the direction keeps the gradient's dtype.
    d = jax.tree.map(lambda di, u: di.astype(u.dtype), d, updates)
    return d, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class AngleGuardState(NamedTuple):
  """State of :func:`angle_guard`.

  Attributes:
    inner: the wrapped transformation's state.
    ref: the level's start point w0_l.
    fine_grad: G_L, the fine gradient at the cycle start.
    active: False once a step was rejected.
    accepted: accepted steps.
  """

  inner: Any
  ref: Any
  fine_grad: Any
  active: jax.Array
  accepted: jax.Array


def angle_guard(inner: optax.GradientTransformation,
                prolong_to_top: Callable[[Any], Any], mu: float
                ) -> optax.GradientTransformationExtraArgs:
  """Keeps an update u only if w + u − w0_l satisfies (3.3) on the top level.

  .. math::
     −⟨G_L, P(w + u − w0_l)⟩ ≥ μ ‖G_L‖ ‖P(w + u − w0_l)‖,

  with P the prolongation to the finest level. A rejected update becomes
  zero (the inner state is kept) and clears ``active``; while ``active`` is
  False every update is zero (Algorithm 5: the level returns its last
  accepted iterate).
  The caller sets ``ref``, ``fine_grad`` and ``active`` in the state.

  References:
    MLSGD thesis (3.3), spec-mlsgd §1.6.
  """
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return AngleGuardState(
        inner.init(params), params,
        otu.tree_zeros_like(prolong_to_top(params)), jnp.ones((), bool),
        jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None, **extra):
    u, inner_state = inner.update(updates, state.inner, params, **extra)
    step = otu.tree_sub(optax.apply_updates(params, u), state.ref)
    ok = state.active & angle_ok(state.fine_grad, prolong_to_top(step), mu)
    u = otu.tree_where(ok, u, otu.tree_zeros_like(u))
    inner_state = otu.tree_where(ok, inner_state, state.inner)
    return u, state._replace(inner=inner_state, active=ok,
                             accepted=state.accepted + ok.astype(jnp.int32))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


__all__ = ["AngleGuardState", "MLSGDDirectionState", "angle_guard",
           "mlsgd_direction"]
