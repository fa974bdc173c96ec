"""MG/Opt drivers: Galerkin quadratics, Algorithms 2, 4, 5 and a V-cycle.

* :func:`galerkin_quadratic` — A_c = R_p A P_p, b_c = R_p b (Kreis (3.2)/(3.3)).
* :func:`algorithm4` — SGD smoothing on a strongly convex quadratic with an
  exact Galerkin cgc gated by ‖P R_g ∇f‖² > κ‖∇f‖² (exact gradient) and no cgc
  at k − 1; a cgc replaces the SGD step of its iteration.
* :func:`algorithm5` — SGD smoothing with the stochastic, λ-regularized cgc of
  (3.5)/(3.6): K coarse SGD steps, gate ‖R_g∇f‖² > κ‖∇f‖²; fixed step sizes
  or optax schedules (Robbins–Monro, Assumption 3.30).
* :func:`two_level` — the generic loop of Algorithm 2: n_pre smoothing steps,
  one cgc, n_post smoothing steps, per cycle.
* :func:`vcycle` — a recursive V-cycle over more levels (an extension: the
  coarse solve on level l is itself MG/Opt on that level's cgc objective).

Everything is pure and jits; histories are arrays indexed by iteration.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from nnopt.multilevel.cgc import (CGCInfo, GradOracle, apply_correction,
                                  cgc_gradient, coarse_solve, gate)
from nnopt.multilevel.transfer import Transfer

Array = jax.Array
PyTree = Any
ScalarOrSchedule = float | Callable[[Array], Array]


class Quadratic(NamedTuple):
  """f(θ) = ½ θᵀAθ − bᵀθ with s.p.d. A."""

  A: Array
  b: Array

  def value(self, theta):
    return 0.5 * theta @ self.A @ theta - self.b @ theta

  def grad(self, theta):
    return self.A @ theta - self.b

  def minimizer(self):
    return jnp.linalg.solve(self.A, self.b)


def galerkin_quadratic(quad: Quadratic, transfer: Transfer) -> Quadratic:
  """The Galerkin coarse problem (3.1): A_c = R_p A P_p, b_c = R_p b."""
  n_coarse = transfer.restrict_params(quad.b).shape[-1]
  eye = jnp.eye(n_coarse, dtype=quad.b.dtype)
  ap_rows = jax.vmap(lambda v: quad.A @ transfer.prolong(v))(eye)  # (AP)ᵀ
  A_c = jax.vmap(transfer.restrict_params)(ap_rows).T
  return Quadratic(A_c, transfer.restrict_params(quad.b))


def exact_quadratic_cgc(quad: Quadratic, transfer: Transfer, theta: Array,
                        grad: Array | None = None) -> Array:
  """e = P(θ̄* − θ̄ᵏ) with θ̄* the exact minimizer of h_k (2.43), f_H Galerkin.

  ``grad`` replaces ∇f(θᵏ) in the shift (default: the exact gradient).
  """
  coarse = galerkin_quadratic(quad, transfer)
  ref = transfer.restrict_params(theta)
  g = quad.grad(theta) if grad is None else grad
  shift = transfer.restrict_grad(g) - coarse.grad(ref)
  theta_c = jnp.linalg.solve(coarse.A, coarse.b - shift)
  return transfer.prolong(theta_c - ref)


def _schedule(value: ScalarOrSchedule) -> Callable[[Array], Array]:
  return value if callable(value) else (lambda _: jnp.asarray(value))


class History(NamedTuple):
  """Per-iteration record of the drivers.

  Attributes:
    value: f(θᵏ) (NaN when no value function was given).
    grad_norm2: ‖∇f(θᵏ)‖² (exact gradient).
    cgc: whether iteration k was a (taken) cgc.
    gate_ratio: the gate's ratio at θᵏ.
  """

  value: Array
  grad_norm2: Array
  cgc: Array
  gate_ratio: Array


def algorithm4(quad: Quadratic, transfer: Transfer, theta0: Array, key: Array,
               *, num_iters: int, lr: ScalarOrSchedule,
               stochastic_grad: Callable[[Array, Array], Array],
               alpha_cgc: float = 1.0, kappa: float = 0.5
               ) -> tuple[Array, History]:
  """Kreis Algorithm 4 (quadratic, SGD smoothing, exact Galerkin cgc).

  Args:
    quad: the fine quadratic.
    transfer: R_p, R_g, P_p (Def. 3.6 operators in the theory).
    theta0: θ⁰.
    key: PRNG key for the stochastic gradients.
    num_iters: iterations k (cgcs count as iterations).
    lr: SGD step α (or a schedule of k).
    stochastic_grad: ``(θ, key) -> G(θ, ξ)``.
    alpha_cgc: α_cgc.
    kappa: κ of ‖P R_g ∇f‖² > κ‖∇f‖².
  """
  lr = _schedule(lr)

  def step(carry, k):
    theta, prev_cgc, key = carry
    key, sub = jax.random.split(key)
    g = quad.grad(theta)
    passed, ratio = gate(g, transfer, "alg4", kappa)
    do_cgc = passed & ~prev_cgc
    new = jax.lax.cond(
        do_cgc,
        lambda t: t + alpha_cgc * exact_quadratic_cgc(quad, transfer, t),
        lambda t: t - lr(k) * stochastic_grad(t, sub), theta)
    return (new, do_cgc, key), History(quad.value(theta), g @ g, do_cgc, ratio)

  (theta, _, _), hist = jax.lax.scan(
      step, (theta0, jnp.zeros((), bool), key), jnp.arange(num_iters))
  return theta, hist


def algorithm5(theta0: PyTree, key: Array, *, fine_grad: GradOracle,
               coarse_grad: GradOracle, exact_grad: Callable[[PyTree], PyTree],
               transfer: Transfer, num_iters: int, lr: ScalarOrSchedule,
               coarse_lr: float, alpha_cgc: ScalarOrSchedule = 1.0,
               kappa: float = 0.25, lam: float = 0.0, num_coarse_steps: int = 1,
               value_fn: Callable[[PyTree], Array] | None = None,
               cgc_mode: str = "stochastic") -> tuple[PyTree, History]:
  """Kreis Algorithm 5 (non-convex, stochastic λ-regularized cgc).

  Oracles take ``(params, key)``; the same key gives the same mini-batch, so
  the three data terms of (3.6) share their sample.

  Args:
    theta0: θ⁰.
    key: PRNG key.
    fine_grad / coarse_grad: stochastic gradient oracles of f and f_H.
    exact_grad: θ → ∇f(θ) for the κ-gate (Remark 3.5).
    transfer: the level transfer.
    num_iters: iterations J (cgcs count as iterations).
    lr: α (float or schedule of the SGD-step counter).
    coarse_lr: ᾱ.
    alpha_cgc: α_cgc (float or schedule of the cgc counter).
    kappa: κ of ‖R_g∇f‖² > κ‖∇f‖².
    lam: λ (Assumption 3.18 wants λ > L̄).
    num_coarse_steps: K (K steps, pitfall P5).
    value_fn: f for the history.
    cgc_mode: ``'stochastic'`` (3.6) or ``'frozen'`` (see :func:`cgc_gradient`).
  """
  lr, alpha_cgc = _schedule(lr), _schedule(alpha_cgc)
  nan = jnp.asarray(jnp.nan)

  def cgc_branch(args):
    theta, g, key, counts = args
    k_shift, k_inner = jax.random.split(key)
    grad_h = cgc_gradient(coarse_grad, fine_grad, transfer, theta, lam=lam,
                          mode=cgc_mode, frozen_sample=k_shift)
    ref = transfer.restrict_params(theta)
    theta_c = coarse_solve(grad_h, ref,
                           jax.random.split(k_inner, num_coarse_steps),
                           optax.sgd(coarse_lr))
    e = transfer.prolong(otu.tree_sub(theta_c, ref))
    new, _ = apply_correction(theta, e, g, alpha=alpha_cgc(counts[1]))
    return new, counts + jnp.array([0, 1], jnp.int32)

  def sgd_branch(args):
    theta, _, key, counts = args
    new = otu.tree_add_scale(theta, -lr(counts[0]), fine_grad(theta, key))
    return new, counts + jnp.array([1, 0], jnp.int32)

  def step(carry, _):
    theta, prev_cgc, key, counts = carry
    key, sub = jax.random.split(key)
    g = exact_grad(theta)
    passed, ratio = gate(g, transfer, "alg5", kappa)
    do_cgc = passed & ~prev_cgc
    new, counts = jax.lax.cond(do_cgc, cgc_branch, sgd_branch,
                               (theta, g, sub, counts))
    value = nan if value_fn is None else value_fn(theta)
    return (new, do_cgc, key, counts), History(
        value, otu.tree_vdot(g, g), do_cgc, ratio)

  carry = (theta0, jnp.zeros((), bool), key, jnp.zeros(2, jnp.int32))
  (theta, *_), hist = jax.lax.scan(step, carry, None, length=num_iters)
  return theta, hist


def two_level(theta: PyTree, key: Array, *,
              smoother: Callable[[PyTree, Array], PyTree],
              correction: Callable[[PyTree, Array], tuple[PyTree, CGCInfo]],
              num_pre: int, num_post: int, num_cycles: int = 1,
              record: Callable[[PyTree], Any] | None = None):
  """Algorithm 2: per cycle, ``num_pre`` smoother steps, a cgc, ``num_post``.

  Args:
    theta: θ⁰.
    key: PRNG key.
    smoother: ``(θ, key) -> θ`` one fine step.
    correction: ``(θ, key) -> (θ, CGCInfo)`` one (gated) cgc.
    num_pre / num_post: smoothing steps before / after the cgc.
    num_cycles: cycles.
    record: θ → per-step record (e.g. f(θ)); one per fine step and cgc.

  Returns:
    ``(θ, records, infos)``: records stacked over all steps (pre, cgc, post per
    cycle, the state *after* each step) and the CGCInfo of each cycle.
  """
  record = record or (lambda _: jnp.zeros(()))

  def smooth(theta, key, n):
    def body(t, k):
      t = smoother(t, k)
      return t, record(t)
    return jax.lax.scan(body, theta, jax.random.split(key, n))

  def cycle(theta, key):
    k1, k2, k3 = jax.random.split(key, 3)
    theta, pre = smooth(theta, k1, num_pre)
    theta, info = correction(theta, k2)
    mid = jax.tree.map(lambda x: x[None], record(theta))
    theta, post = smooth(theta, k3, num_post)
    recs = jax.tree.map(lambda *x: jnp.concatenate(x), pre, mid, post)
    return theta, (recs, info)

  theta, (recs, infos) = jax.lax.scan(cycle, theta,
                                      jax.random.split(key, num_cycles))
  return theta, jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), recs), infos


def vcycle(theta: PyTree, key: Array, *, grads: Sequence[GradOracle],
           transfers: Sequence[Transfer], lrs: Sequence[float],
           num_pre: int, num_post: int, num_coarsest: int, lam: float = 0.0,
           alpha_cgc: float = 1.0, rule: str = "fixed") -> PyTree:
  """A recursive MG/Opt V-cycle over ``len(grads)`` levels (an extension).

  Level 0 is the finest. On level l the objective's gradient is ``G_l``
  (``grads[0]`` on the finest level, the cgc gradient of h_l below); a cycle
  smooths ``num_pre`` SGD steps, builds h_{l+1} with the stochastic shift of
  (3.6) around R θ, recurses, adds α_cgc P(θ̄ − Rθ) under ``rule`` (with the
  current sample's gradient estimate), and smooths ``num_post`` steps. The
  coarsest level runs ``num_coarsest`` SGD steps.

  Args:
    theta: fine parameters.
    key: PRNG key; oracles get keys as samples.
    grads: stochastic gradient oracle of f_l per level.
    transfers: ``transfers[l]`` maps level l to l + 1.
    lrs: SGD step per level.
  """
  if len(transfers) != len(grads) - 1 or len(lrs) != len(grads):
    raise ValueError("vcycle needs len(grads) - 1 transfers and len(grads) lrs")

  def smooth(G, theta, key, lr, n):
    def body(t, k):
      return otu.tree_add_scale(t, -lr, G(t, k)), None
    return jax.lax.scan(body, theta, jax.random.split(key, n))[0] if n else theta

  def level(G, l, theta, key):
    if l == len(grads) - 1:
      return smooth(G, theta, key, lrs[l], num_coarsest)
    k_pre, k_cgc, k_rec, k_post = jax.random.split(key, 4)
    theta = smooth(G, theta, k_pre, lrs[l], num_pre)
    grad_h = cgc_gradient(grads[l + 1], G, transfers[l], theta, lam=lam)
    ref = transfers[l].restrict_params(theta)
    theta_c = level(grad_h, l + 1, ref, k_rec)
    e = transfers[l].prolong(otu.tree_sub(theta_c, ref))
    theta, _ = apply_correction(theta, e, G(theta, k_cgc), rule=rule,
                                alpha=alpha_cgc)
    return smooth(G, theta, k_post, lrs[l], num_post)

  return level(grads[0], 0, theta, key)
