"""MG/Opt's coarse-grid correction as an optax transformation.

:func:`coarse_grid_correction` wraps a fine optimizer (the smoother) and a
coarse optimizer (any optax transformation: SGD as in the thesis, Adam,
M-SVAG, ...). On most steps it returns the fine optimizer's update; on a cgc
step (every ``every`` steps, never twice in a row, and only when the κ-gate
passes) it instead restricts θ and the gradient, runs ``num_coarse_steps``
steps of the coarse optimizer on

.. math::
   h(θ̄) = f_H(θ̄) + ⟨R_g g − ∇f_H(R_pθ), θ̄⟩ + \\tfrac{λ}{2}‖θ̄ − R_pθ‖²

(Kreis (2.46)/(3.5), Algorithms 2/5) and returns the update α_cgc P_p(θ̄* −
R_pθ) under a step rule (``'fixed'``, ``'accept_if_descent'``,
``'backtracking'``). A non-finite correction is rejected (zero update).

The coarse objective f_H comes from, in this order:

1. the extra arg ``coarse_value_fn`` (a closure θ̄ → coarse loss on the
   current batch; a plain JAX loop passes it to ``update``),
2. the constructor's ``coarse_loss`` (θ̄ → loss, e.g. a fixed data set),
3. the constructor's ``coarse_batch_loss`` ((θ̄, batch) → loss, e.g. a coarse
   network's loss, :mod:`nnopt.multilevel.coarse_network`) on the extra arg
   ``batch`` (nnopt's engine passes ``{'x', 'y', 'weights'}``; without it the
   update raises),
4. the engine's ``value_fn`` (θ → fine loss on the current batch) through
   f_H(θ̄) = f(θ + P_p(θ̄ − R_pθ)), the ideal (Galerkin) coarse model, which is
   exact but costs fine evaluations.

What the transform needs from nnopt's step it declares in its state
(:mod:`nnopt.stats.needs`): ``Needs(batch=True)`` with a ``coarse_batch_loss``
(and no ``coarse_loss``), ``Needs(value_fn=True)`` when f_H is the Galerkin
objective (neither constructor objective given) or the step rule is
``'backtracking'``. A hand-written loop that passes ``coarse_value_fn`` meets
the Galerkin need by that instead. The fine optimizer's needs are found in its
state inside this one's; the coarse optimizer sees only ``value_fn``, ``value``
and ``grad`` of h.

The gradient g is the extra arg ``grad`` if given, else the incoming updates
(so put this transformation first in a chain). The gate uses g, a mini-batch
estimate unless the caller passes the exact gradient: outside the theory of
Remark 3.5. All inner steps see the same batch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from nnopt.multilevel.cgc import (STEP_RULES, CGCInfo, apply_correction,
                                  cgc_objective, coarse_solve, gate)
from nnopt.multilevel.transfer import Transfer
from nnopt.stats.needs import Needs, NeedsMarker, needs_marker

PyTree = Any


class CoarseCorrectionState(NamedTuple):
  """State of :func:`coarse_grid_correction`.

  Attributes:
    count: steps taken.
    fine_state: the fine optimizer's state.
    prev_cgc: whether the last step was a cgc.
    num_cgc: cgcs taken.
    info: diagnostics of the last attempted cgc.
    needs: what the coarse objective and the step rule need from the step
      (see the module doc).
  """

  count: jax.Array
  fine_state: Any
  prev_cgc: jax.Array
  num_cgc: jax.Array
  info: CGCInfo
  needs: NeedsMarker


def coarse_correction_needs(*, rule: str, coarse_loss=None,
                            coarse_batch_loss=None) -> Needs:
  """What :func:`coarse_grid_correction` with these options needs from the step."""
  galerkin = coarse_loss is None and coarse_batch_loss is None
  return Needs(value_fn=galerkin or rule == "backtracking",
               batch=coarse_loss is None and coarse_batch_loss is not None)


def _empty_info() -> CGCInfo:
  z = jnp.zeros((), jnp.float32)
  return CGCInfo(jnp.zeros((), bool), z, z, z, z, z, jnp.ones((), bool))


def coarse_grid_correction(
    fine: optax.GradientTransformation,
    coarse: optax.GradientTransformation, transfer: Transfer, *,
    num_coarse_steps: int, every: int = 1, lam: float = 0.0,
    alpha_cgc: float = 1.0, rule: str = "fixed", gate_mode: str = "none",
    kappa: float = 0.25, kappa2: float = 0.0,
    coarse_loss: Callable[[PyTree], jax.Array] | None = None,
    coarse_batch_loss: Callable[[PyTree, Mapping[str, jax.Array]], jax.Array]
    | None = None,
) -> optax.GradientTransformationExtraArgs:
  """MG/Opt with any fine and coarse optax optimizers (see module doc).

  Args:
    fine: the smoother (e.g. ``optax.sgd(lr)``).
    coarse: the coarse-level optimizer on h (e.g. ``optax.sgd(ᾱ)``,
      ``optax.adam(1e-3)``).
    transfer: R_p, R_g, P_p between the fine and coarse parameters.
    num_coarse_steps: K inner steps per cgc.
    every: attempt a cgc every this many steps (≥ 2 keeps a fine step in
      between; a cgc never follows a cgc).
    lam: λ ≥ 0.
    alpha_cgc: α_cgc (initial trial for ``'backtracking'``).
    rule: ``'fixed'``, ``'accept_if_descent'`` or ``'backtracking'``.
    gate_mode / kappa / kappa2: the κ-gate (:func:`nnopt.multilevel.cgc.gate`).
    coarse_loss: optional fixed coarse objective θ̄ → f_H(θ̄).
    coarse_batch_loss: optional ``(θ̄, batch) -> f_H(θ̄)`` on the ``batch``
      extra arg of each update.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` accepts
    ``value_fn``, ``coarse_value_fn``, ``batch`` and ``grad`` (others, and
    ``batch``, also go to ``fine``).
  """
  if rule not in STEP_RULES:
    raise ValueError(f"cgc step rule must be one of {STEP_RULES}, got {rule!r}")
  if every < 1 or num_coarse_steps < 1:
    raise ValueError("every and num_coarse_steps must be >= 1")
  fine = optax.with_extra_args_support(fine)
  coarse = optax.with_extra_args_support(coarse)
  marker = needs_marker(coarse_correction_needs(
      rule=rule, coarse_loss=coarse_loss, coarse_batch_loss=coarse_batch_loss))

  def init_fn(params):
    return CoarseCorrectionState(
        jnp.zeros((), jnp.int32), fine.init(params), jnp.zeros((), bool),
        jnp.zeros((), jnp.int32), _empty_info(), marker)

  def coarse_objective(params, value_fn, coarse_value_fn, batch):
    if coarse_value_fn is not None:
      return coarse_value_fn
    if coarse_loss is not None:
      return coarse_loss
    if coarse_batch_loss is not None:
      if batch is None:
        raise ValueError(
            "coarse_grid_correction with a coarse_batch_loss (e.g. mgopt's "
            "coarse_objective='network') needs the batch: call update(..., "
            "batch={'x': ..., 'y': ..., 'weights': ...}) as nnopt's engine "
            "does, or pass coarse_value_fn=")
      return lambda theta_c: coarse_batch_loss(theta_c, batch)
    if value_fn is not None:
      ref = transfer.restrict_params(params)

      def galerkin(theta_c):
        step = transfer.prolong(otu.tree_sub(theta_c, ref))
        return value_fn(otu.tree_add(params, step))
      return galerkin
    raise ValueError(
        "coarse_grid_correction needs a coarse objective: pass "
        "coarse_value_fn= or value_fn= to update, or coarse_loss= to the "
        "constructor")

  def update_fn(updates, state, params=None, *, value_fn=None,
                coarse_value_fn=None, grad=None, batch=None, **extra):
    if params is None:
      raise ValueError("coarse_grid_correction needs params")
    g = updates if grad is None else grad
    f_H = coarse_objective(params, value_fn, coarse_value_fn, batch)
    if batch is not None:
      extra["batch"] = batch
    passed, ratio = gate(g, transfer, gate_mode, kappa, kappa2)
    due = ((state.count % every) == every - 1) & ~state.prev_cgc & passed

    def cgc_branch(_):
      ref = transfer.restrict_params(params)
      h = cgc_objective(f_H, transfer.restrict_grad(g), ref, lam)
      grad_h = jax.grad(h)

      def inner_grad(theta_c, _):
        return grad_h(theta_c)

      inner = _with_value(coarse, h)
      theta_c = coarse_solve(inner_grad, ref, jnp.arange(num_coarse_steps),
                             inner)
      e = transfer.prolong(otu.tree_sub(theta_c, ref))
      new, info = apply_correction(params, e, g, rule=rule, alpha=alpha_cgc,
                                   value_fn=value_fn, gate_ratio=ratio)
      return otu.tree_sub(new, params), state.fine_state, info

    def fine_branch(_):
      u, fs = fine.update(updates, state.fine_state, params,
                          value_fn=value_fn, grad=grad, **extra)
      return u, fs, state.info._replace(gate_ratio=ratio.astype(jnp.float32))

    new_updates, fine_state, info = jax.lax.cond(due, cgc_branch, fine_branch,
                                                 None)
    taken = due & info.taken
    return new_updates, CoarseCorrectionState(
        state.count + 1, fine_state, due, state.num_cgc + taken.astype(jnp.int32),
        info, state.needs)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _with_value(opt: optax.GradientTransformationExtraArgs, h):
  """Passes the cgc objective to the coarse optimizer as ``value_fn``."""

  def update(updates, state, params=None, **extra):
    return opt.update(updates, state, params, value_fn=h, value=h(params),
                      grad=updates, **extra)

  return optax.GradientTransformationExtraArgs(opt.init, update)
