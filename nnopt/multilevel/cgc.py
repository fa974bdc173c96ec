"""The coarse-grid correction (cgc) of MG/Opt, as pure functions.

At a fine iterate θᵏ with (restricted) gradient information, the cgc objective
is (Kreis (2.43)/(2.46), (3.5))

.. math::
   h(θ̄) = f_H(θ̄) + ⟨R_g ∇f(θ^k) − ∇f_H(θ̄^k), θ̄⟩ + \\tfrac{λ}{2}‖θ̄ − θ̄^k‖²,
   \\qquad θ̄^k = R_p θ^k,

which is first-order coherent: ∇h(θ̄ᵏ) = R_g∇f(θᵏ) (Lemma 2.34). A few steps
of any optax optimizer on h from θ̄ᵏ give θ̄*, and the correction is the
prolonged *difference* e = P_p(θ̄* − θ̄ᵏ) (2.45), applied as θ + α_cgc e with
one of the step rules ``'fixed'``, ``'accept_if_descent'`` (Thm 2.39) or
``'backtracking'`` (Armijo on f; an extension, the thesis names no rule).
A correction that is not finite is rejected (θ unchanged).

Gradient oracles take ``(params, sample)``; ``sample`` is whatever selects a
mini-batch (a PRNG key, a batch) and is ignored by exact oracles. The
stochastic cgc gradient (3.6) uses one sample for all three data terms.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from nnopt.multilevel.transfer import Transfer

Array = jax.Array
PyTree = Any
GradOracle = Callable[[PyTree, Any], PyTree]

STEP_RULES = ("fixed", "accept_if_descent", "backtracking")
GATE_MODES = ("alg4", "alg5", "exp_B2", "none")


class CGCInfo(NamedTuple):
  """Diagnostics of one coarse-grid correction (arrays, so they jit).

  Attributes:
    taken: whether θ changed (gate passed and step accepted).
    gate_ratio: ‖R_g g‖/‖g‖ (or ‖P R_g g‖/‖g‖ for the 'alg4' gate).
    e_norm: ‖e‖.
    directional: ⟨∇f(θᵏ), e⟩ (negative for a descent direction).
    cos_angle: cos∠(−e, ∇f) = −⟨∇f, e⟩/(‖∇f‖‖e‖) (spec-mgopt §2.4 fix).
    step_size: the α_cgc applied (0 when rejected).
    finite: whether e was finite.
  """

  taken: Array
  gate_ratio: Array
  e_norm: Array
  directional: Array
  cos_angle: Array
  step_size: Array
  finite: Array


def cgc_shift(restricted_grad: PyTree, coarse_grad_at_ref: PyTree) -> PyTree:
  """v̄ = R_g∇f(θᵏ) − ∇f_H(θ̄ᵏ), the linear term of h (2.44)."""
  return otu.tree_sub(restricted_grad, coarse_grad_at_ref)


def cgc_objective(coarse_value: Callable[[PyTree], Array], restricted_grad,
                  coarse_ref, lam: float = 0.0) -> Callable[[PyTree], Array]:
  """h(θ̄) of (2.46) for a deterministic coarse objective f_H (``jax.grad`` once)."""
  shift = cgc_shift(restricted_grad, jax.grad(coarse_value)(coarse_ref))

  def h(theta_c):
    diff = otu.tree_sub(theta_c, coarse_ref)
    return (coarse_value(theta_c) + otu.tree_vdot(shift, theta_c)
            + 0.5 * lam * otu.tree_vdot(diff, diff))

  return h


def cgc_gradient(coarse_grad: GradOracle, fine_grad: GradOracle,
                 transfer: Transfer, fine_params: PyTree, *, lam: float = 0.0,
                 mode: str = "stochastic", frozen_sample: Any = None
                 ) -> GradOracle:
  """Gradient oracle of h at sample s.

  Args:
    coarse_grad: ``(θ̄, s) -> G_fH(θ̄, s)``.
    fine_grad: ``(θ, s) -> G_f(θ, s)`` (only evaluated at θᵏ).
    transfer: the level transfer.
    fine_params: θᵏ.
    lam: λ of (3.5).
    mode: ``'stochastic'`` (3.6: one sample for all three data terms, K fine
      gradients per cgc), ``'frozen'`` (the shift computed once with
      ``frozen_sample``; a cheaper deviation) or ``'exact'`` (the same with
      exact oracles, (2.43)).

  Returns:
    ``(θ̄, s) -> G_cgc(θ̄, s)``.
  """
  ref = transfer.restrict_params(fine_params)
  if mode == "stochastic":
    def grad(theta_c, sample):
      shift = cgc_shift(transfer.restrict_grad(fine_grad(fine_params, sample)),
                        coarse_grad(ref, sample))
      return _add_terms(coarse_grad(theta_c, sample), shift, theta_c, ref, lam)
  elif mode in ("frozen", "exact"):
    shift = cgc_shift(
        transfer.restrict_grad(fine_grad(fine_params, frozen_sample)),
        coarse_grad(ref, frozen_sample))

    def grad(theta_c, sample):
      return _add_terms(coarse_grad(theta_c, sample), shift, theta_c, ref, lam)
  else:
    raise ValueError(f"cgc mode must be 'stochastic', 'frozen' or 'exact', "
                     f"got {mode!r}")
  return grad


def _add_terms(g, shift, theta_c, ref, lam):
  out = otu.tree_add(g, shift)
  if lam:
    out = otu.tree_add_scale(out, lam, otu.tree_sub(theta_c, ref))
  return out


def coarse_solve(grad: GradOracle, start: PyTree, samples: Any,
                 optimizer: optax.GradientTransformation) -> PyTree:
  """Runs one optimizer step per sample (leading axis) on h from ``start``."""
  optimizer = optax.with_extra_args_support(optimizer)

  def step(carry, sample):
    theta, state = carry
    g = grad(theta, sample)
    updates, state = optimizer.update(g, state, theta)
    return (optax.apply_updates(theta, updates), state), None

  (theta, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), samples)
  return theta


def gate(grad: PyTree, transfer: Transfer, mode: str = "alg5",
         kappa: float = 0.25, kappa2: float = 0.0) -> tuple[Array, Array]:
  """The κ-test of Algorithms 4/5 and of the B.2 experiment (3.4).

  Modes: ``'alg4'`` ‖P R_g g‖² > κ‖g‖²; ``'alg5'`` ‖R_g g‖² > κ‖g‖²;
  ``'exp_B2'`` ‖R_g g‖ ≥ κ‖g‖ and ‖R_g g‖ ≥ κ₂; ``'none'`` always passes.
  The theory wants the exact gradient here (Remark 3.5).

  Returns:
    ``(passed, ratio)`` with ratio = ‖(P) R_g g‖ / ‖g‖.
  """
  if mode not in GATE_MODES:
    raise ValueError(f"gate mode must be one of {GATE_MODES}, got {mode!r}")
  rg = transfer.restrict_grad(grad)
  norm = otu.tree_norm(grad)
  coarse_norm = otu.tree_norm(transfer.prolong(rg) if mode == "alg4" else rg)
  ratio = coarse_norm / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny)
  if mode in ("alg4", "alg5"):
    passed = ratio ** 2 > kappa
  elif mode == "exp_B2":
    passed = (ratio >= kappa) & (coarse_norm >= kappa2)
  else:
    passed = jnp.ones((), bool)
  return passed, ratio


def apply_correction(params: PyTree, e: PyTree, grad: PyTree, *,
                     rule: str = "fixed", alpha: float | Array = 1.0,
                     value_fn: Callable[[PyTree], Array] | None = None,
                     armijo: float = 1e-4, shrink: float = 0.5,
                     max_backtracks: int = 10, gate_ratio=jnp.nan,
                     passed=True) -> tuple[PyTree, CGCInfo]:
  """θ + α e under a step rule; rejects (θ unchanged) non-finite e.

  Args:
    params: θᵏ.
    e: the prolonged correction.
    grad: ∇f(θᵏ) (or its estimate) for the descent test and Armijo.
    rule: ``'fixed'``, ``'accept_if_descent'`` or ``'backtracking'``.
    alpha: α_cgc (initial trial step for backtracking).
    value_fn: θ → f(θ), needed for ``'backtracking'``.
    passed: whether the gate passed (False: θ unchanged).
  """
  if rule not in STEP_RULES:
    raise ValueError(f"cgc step rule must be one of {STEP_RULES}, got {rule!r}")
  directional = otu.tree_vdot(grad, e)
  e_norm = otu.tree_norm(e)
  finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(x))
                              for x in jax.tree.leaves(e)]))
  cos = -directional / jnp.maximum(otu.tree_norm(grad) * e_norm, 1e-30)
  alpha = jnp.asarray(alpha, jnp.result_type(float))
  if rule == "fixed":
    accept, step = jnp.ones((), bool), alpha
  elif rule == "accept_if_descent":
    accept, step = directional < 0, alpha
  else:
    if value_fn is None:
      raise ValueError("the 'backtracking' cgc rule needs value_fn")
    f0 = value_fn(params)

    def trial(carry):
      t, _, n = carry
      return t * shrink, None, n + 1

    def not_ok(carry):
      t, _, n = carry
      ok = value_fn(otu.tree_add_scale(params, t, e)) <= (
          f0 + armijo * t * directional)
      return (~ok) & (n < max_backtracks)

    t, _, n = jax.lax.while_loop(
        lambda c: not_ok(c), trial, (alpha, None, jnp.zeros((), jnp.int32)))
    accept = (n < max_backtracks) & (directional < 0)
    step = t
  take = accept & finite & jnp.asarray(passed)
  step = jnp.where(take, step, 0.0)
  new = jax.tree.map(
      lambda p, d: jnp.where(take, p + step.astype(p.dtype) * jnp.where(
          jnp.isfinite(d), d, 0.0), p), params, e)
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  return new, CGCInfo(take, f32(gate_ratio), f32(e_norm), f32(directional),
                      f32(cos), f32(step), finite)


def coarse_grid_correction(params: PyTree, grad: PyTree, transfer: Transfer,
                           cgc_grad: GradOracle, samples: Any, *,
                           coarse_optimizer: optax.GradientTransformation,
                           rule: str = "fixed", alpha: float | Array = 1.0,
                           value_fn: Callable[[PyTree], Array] | None = None,
                           gate_mode: str = "none", kappa: float = 0.25,
                           kappa2: float = 0.0) -> tuple[PyTree, CGCInfo]:
  """One gated cgc: restrict, solve h, prolong the difference, step.

  Args:
    params: θᵏ.
    grad: ∇f(θᵏ) (exact in the theory) for the gate and the step rule.
    transfer: the level transfer.
    cgc_grad: gradient oracle of h (:func:`cgc_gradient`).
    samples: one sample per inner step (leading axis K).
    coarse_optimizer: optax optimizer on h (``optax.sgd(ᾱ)`` in the thesis).
    rule / alpha / value_fn: see :func:`apply_correction`.
    gate_mode / kappa / kappa2: see :func:`gate`.
  """
  passed, ratio = gate(grad, transfer, gate_mode, kappa, kappa2)
  ref = transfer.restrict_params(params)

  def correction(_):
    theta_c = coarse_solve(cgc_grad, ref, samples, coarse_optimizer)
    return transfer.prolong(otu.tree_sub(theta_c, ref))

  # A closed gate skips the coarse solve entirely.
  e = jax.lax.cond(passed, correction, lambda _: otu.tree_zeros_like(params),
                   None)
  return apply_correction(params, e, grad, rule=rule, alpha=alpha,
                          value_fn=value_fn, gate_ratio=ratio, passed=passed)
