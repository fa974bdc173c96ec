"""MG/Opt theory checks (Kreis chs. 2–3) through nnopt's multilevel API,
float64, for :mod:`experiments.reproduce_mgopt`.

* R3 Thm 3.10 / Lemma 3.9 (exact cgc with Def. 3.6 operators), R4 Lemmas
  3.2/3.3/3.7 (random P, R = ½Pᵀ), R5 Thm 3.12 (κ-gated contraction) on the
  B.2 quadratic and a well-conditioned one;
* Cor 3.13 (approximate cgc: coarse GD steps on nnopt's cgc objective) and
  Cor 3.14 (orthonormal, non-eigen restrictions) on Thm 3.12's quadratic;
* R6 Thms 2.36/2.38 (descent bounds through nnopt's cgc with a non-quadratic
  f_H and inexact coarse solves).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.mgopt_b2 import b2_problem
from nnopt.multilevel import (Quadratic, algorithm4, cgc_gradient,
                              cgc_objective, coarse_solve, eigen_restriction,
                              eigen_transfer, exact_quadratic_cgc,
                              galerkin_quadratic, gate, matrix_transfer)
from nnopt.reproduce import Claims


def theory_claims(claims: Claims, quick: bool):
  """R3–R5 on the B.2 quadratic of seed 1000, then R6 and Cors 3.13/3.14."""
  with jax.enable_x64(True):
    quad, theta = b2_problem(1000)
    star = quad.minimizer()
    # R3: Thm 3.10 / Lemma 3.9
    errs = {}
    for which in ("largest", "smallest", "random"):
      t = eigen_transfer(quad.A, 25, which, jax.random.key(0))
      R = eigen_restriction(quad.A, 25, which, jax.random.key(0))
      e = exact_quadratic_cgc(quad, t, theta)
      PR = R.T @ R
      coarse = galerkin_quadratic(quad, t)
      errs[which] = dict(
          thm_3_10=float(jnp.abs(theta + e - star - (jnp.eye(50) - PR) @ (theta - star)).max()),
          shift=float(jnp.abs(R @ quad.grad(theta) - coarse.grad(R @ theta)).max()),
          restricted_minimizer=float(jnp.abs(R @ star - R @ (theta + e)).max()),
          complement=float(jnp.abs((jnp.eye(50) - PR) @ quad.A @ e).max()))
    worst = max(max(v.values()) for v in errs.values())
    claims.check("Thm 3.10", "an exact cgc with Def. 3.6 operators leaves "
                 "(1 - PR)(θ - θ*): equality, v̄ = 0, Rθ* = θ̄*, (1 - PR)Ae = 0 "
                 "(to machine precision)", worst < 1e-10, max_errors=errs,
                 quote=("Assume that the restriction operator is defined as in "
                        "Definition 3.6 and let θ^{k+1} = θ^k + e be with an "
                        "exact computation of the cgc. Then, the distance to "
                        "the minimizer of the fine objective decreases"))
    # R4: Lemmas 3.2/3.3/3.7 with random P and R = ½Pᵀ
    rng = np.random.default_rng(5)
    P = jnp.asarray(rng.normal(size=(50, 20)))
    t = matrix_transfer(0.5 * P.T, P=P, R_g=0.5 * P.T)
    coarse = galerkin_quadratic(quad, t)
    e = exact_quadratic_cgc(quad, t, theta)
    l33 = float(jnp.abs(0.5 * P.T @ quad.grad(theta) + 0.5 * P.T @ quad.A @ e).max())
    min_eig = float(jnp.linalg.eigvalsh(0.5 * (coarse.A + coarse.A.T)).min())
    sym = float(jnp.abs(coarse.A - coarse.A.T).max())
    R = eigen_restriction(quad.A, 25, "largest")
    proj = float(jnp.abs((R.T @ R) @ (R.T @ R) - R.T @ R).max())
    rp = float(jnp.abs(R @ R.T - jnp.eye(25)).max())
    claims.check("Lemma 3.2", "A_c = R A P is s.p.d. for R = cPᵀ, full-rank P",
                 min_eig > 0 and sym < 1e-10, min_eigenvalue=min_eig, asymmetry=sym,
                 quote=("If A_fine is symmetric and positive definite (s.p.d.) "
                        "and assumption 3.1 holds, then A_coarse as defined in "
                        "(3.2) is s.p.d.."))
    claims.check("Lemma 3.3", "R_g∇f(θ) = -R_p A e at an exact cgc", l33 < 1e-9,
                 max_error=l33,
                 quote=("If θ̄*_cgc is a stationary point of the cgc objective "
                        "h, which is used to compute the cgc e as defined in "
                        "(2.45), then [...]"))
    claims.check("Lemma 3.7", "PR is a projection and RP = I for Def. 3.6",
                 max(proj, rp) < 1e-12, projection_error=proj, rp_error=rp,
                 quote=("Then, P_pR_g is the orthogonal projection (w.r.t. the "
                        "Euclidean inner product) onto the subspace spanned by "
                        "the eigenvectors of A_fine, corresponding to the n_ΘH "
                        "largest eigenvalues. Also, R_pP_p = id."))
    # R5: Thm 3.12 — κ > 1 − μ²/L² gives contraction (L²/μ²)(1 − κ)
    lam = np.concatenate([np.linspace(1.0, 1.3, 50)])
    Q = np.linalg.qr(rng.normal(size=(50, 50)))[0]
    q5 = Quadratic(jnp.asarray(Q @ np.diag(lam) @ Q.T), jnp.asarray(rng.normal(size=50)))
    kappa = 0.6
    bound = (1.3 / 1.0) ** 2 * (1 - kappa)
    t5 = eigen_transfer(q5.A, 40, "largest")
    star5 = q5.minimizer()
    thetas = star5 + jnp.asarray(rng.normal(size=(400, 50)))
    passed, _ = jax.vmap(lambda th: gate(q5.grad(th), t5, "alg4", kappa))(thetas)
    after = jax.vmap(lambda th: th + exact_quadratic_cgc(q5, t5, th))(thetas)
    factor = (jnp.sum((after - star5) ** 2, 1) / jnp.sum((thetas - star5) ** 2, 1))
    factor = np.asarray(factor)[np.asarray(passed)]
    noise = lambda th, k: q5.grad(th) + 0.05 * jax.random.normal(k, th.shape)  # noqa: E731
    _, hist = algorithm4(q5, t5, thetas[0], jax.random.key(0), num_iters=200,
                         lr=0.1, stochastic_grad=noise, kappa=kappa)
    claims.check("Thm 3.12", "with κ = 0.6 > 1 - μ²/L² = 0.408 every gated exact "
                 "cgc contracts the error by <= (L²/μ²)(1 - κ) = 0.676",
                 len(factor) > 0 and float(factor.max()) <= bound,
                 gated=int(len(factor)), of=400, max_factor=float(factor.max()) if len(factor) else None,
                 bound=bound, algorithm4_cgcs=int(np.asarray(hist.cgc).sum()),
                 quote=("Then, the distance to the minimizer of the fine "
                        "objective decreases for κ > 1 − μ²/L², i.e. "
                        "‖θ^{k+1} − θ*‖² ≤ (L²/μ²)(1 − κ)‖θ^k − θ*‖²"))
  with jax.enable_x64(True):
    descent_claims(claims, quick)
    approximate_cgc_claims(claims, quick)
    orthonormal_claims(claims, quick)


# -- R6: Thms 2.36 / 2.38 through nnopt's cgc -----------------------------------

QUOTE_236 = ("If the cgc is computed approximately, i.e. ∇h(θ̄*_cgc) = r, and "
             "R_g(∇f(θ^k)) ≠ 0, then the cgc e = P_p(ē) with ē := θ̄*_cgc − "
             "θ̄^k satisfies ∇f(θ^k)^T e ≤ −(μ_H + λ)‖ē‖² + r^T ē")
QUOTE_238 = ("If the cgc is computed such that h(θ̄*_cgc) ≤ h(θ̄^k), and "
             "R_g(∇f(θ^k)) ≠ 0, then the cgc e = P_p(ē) is a descent direction "
             "of the fine objective f at θ^k, i.e. ∇f(θ^k)^T e ≤ −tμ_H‖ē‖², for "
             "some 0 < t ≤ 1.")
#: Relative rounding slack of the inequalities in float64.
TOL = 1e-9


def _descent_instance(seed: int):
  """A non-quadratic fine f, a μ_H-strongly convex non-quadratic f_H
  (½θ̄ᵀA_Hθ̄ − b_Hᵀθ̄ + Σ log cosh θ̄_i: ∇²f_H ⪰ A_H), R_g = P_pᵀ and an
  unrelated R_p (Remark 2.37), an inexact coarse SGD solve of h through
  nnopt (cgc_gradient, coarse_solve); returns the quantities of Thms
  2.36/2.38."""
  r6 = np.random.default_rng(100 + seed)
  n, m = 12, 5
  P = jnp.asarray(r6.normal(size=(n, m)))
  R_p = jnp.asarray(r6.normal(size=(m, n)))
  transfer = matrix_transfer(R_p, P=P, R_g=P.T)
  M = r6.normal(size=(m, m))
  A_H = jnp.asarray(M @ M.T + 0.5 * np.eye(m))
  mu_H = float(jnp.linalg.eigvalsh(A_H).min())
  b_H = jnp.asarray(r6.normal(size=m))
  f_H = lambda tc: 0.5 * tc @ A_H @ tc - b_H @ tc + jnp.sum(  # noqa: E731
      jnp.log(jnp.cosh(tc)))
  X = jnp.asarray(r6.normal(size=(30, n)))
  y = jnp.asarray(r6.normal(size=30))
  f = lambda th: jnp.mean(jnp.log1p((X @ th - y) ** 2))  # noqa: E731
  theta = jnp.asarray(r6.normal(size=n))
  lam = float(r6.uniform(0, 2))
  steps = int(r6.integers(1, 30))
  # Step sizes from stable to too large, so that some solves raise h.
  lr = float(r6.uniform(0.1, 3.0)) / (float(jnp.linalg.eigvalsh(A_H).max())
                                       + 1.0 + lam)
  exact = lambda fn: (lambda th, _: jax.grad(fn)(th))  # noqa: E731
  grad_h = cgc_gradient(exact(f_H), exact(f), transfer, theta, lam=lam,
                        mode="exact")
  ref = transfer.restrict_params(theta)
  theta_c = coarse_solve(grad_h, ref, jnp.zeros(steps), optax.sgd(lr))
  ebar = theta_c - ref
  e = transfer.prolong(ebar)
  h = cgc_objective(f_H, transfer.restrict_grad(jax.grad(f)(theta)), ref, lam)
  g = jax.grad(f)(theta)
  return dict(directional=float(g @ e), ebar2=float(ebar @ ebar),
              r_ebar=float(grad_h(theta_c, None) @ ebar), mu_H=mu_H, lam=lam,
              h_decrease=float(h(theta_c) - h(ref)), scale=float(
                  jnp.linalg.norm(g) * jnp.linalg.norm(e) + 1e-300))


def descent_claims(claims: Claims, quick: bool) -> None:
  n_inst = 50 if quick else 300
  inst = [_descent_instance(i) for i in range(n_inst)]
  gaps = [(d["directional"] - (-(d["mu_H"] + d["lam"]) * d["ebar2"]
                               + d["r_ebar"])) / d["scale"] for d in inst]
  claims.check("Thm 2.36", "for a μ_H-strongly convex non-quadratic f_H, "
               "R_g = P_pᵀ, an unrelated R_p and inexact coarse SGD solves of "
               "nnopt's cgc objective h (cgc_gradient, coarse_solve), ⟨∇f, e⟩ "
               "≤ −(μ_H + λ)‖ē‖² + rᵀē with r = ∇h(θ̄*) "
               f"({n_inst} random instances, relative slack {TOL:g})",
               max(gaps) <= TOL, worst_relative_gap=max(gaps),
               median_relative_gap=float(np.median(gaps)), quote=QUOTE_236)
  # Thm 2.38 (with λ: the B.1 proof gives −(tμ_H + λ/2)‖ē‖²): for the solves
  # that did not raise h, ⟨∇f, e⟩ + (λ/2)‖ē‖² < 0, i.e. some t ∈ (0, 1]
  # exists; the largest such t is recorded.
  down = [d for d in inst if d["h_decrease"] <= 0 and d["ebar2"] > 0]
  t_max = [-(d["directional"] + 0.5 * d["lam"] * d["ebar2"])
           / (d["mu_H"] * d["ebar2"]) for d in down]
  claims.check("Thm 2.38", "every cgc whose (inexact) coarse solve did not "
               "raise h is a descent direction with ⟨∇f, e⟩ ≤ −(tμ_H + λ/2)"
               "‖ē‖² for some t ∈ (0, 1] (i.e. the largest such t is > 0; B.1's "
               "proof keeps the λ/2 term); needs ≥ 10 such instances",
               len(down) >= 10 and min(t_max) > 0, instances=len(down),
               raised_h=n_inst - len(down), min_t=min(t_max, default=None),
               fraction_t_at_least_half=float(np.mean(np.array(t_max) >= 0.5))
               if t_max else None, quote=QUOTE_238)


# -- Cor 3.13 / 3.14 on the κ-gated quadratic of Thm 3.12 -----------------------

QUOTE_313 = ("Then, the distance to the minimizer of the fine objective changes "
             "for κ > 1 − μ²/L² by the relation ‖θ^{k+1} − θ*‖² ≤ (L²/μ²)(1 − "
             "κ)‖θ^k − θ*‖² + C_k(r)/μ², where C_k(r) depends on r := "
             "∇h(θ̄*_cgc).")
QUOTE_314 = ("Then, the distance to the minimizer of the fine objective "
             "decreases for κ > (1 − μ²/L²)/(1 + η), i.e. ‖θ^{k+1} − θ*‖² ≤ "
             "(L²/μ²)(1 − κ(1 + η))‖θ^k − θ*‖², if we additionally assume that "
             "‖(1 − P_pR_g)A_fine e‖² ≤ η‖P_pR_g A_fine e‖² and (∇f(θ^k), (1 − "
             "P_pR_g)A_fine e) ≤ η(∇f(θ^k), P_pR_g A_fine e), for some η > 0.")


def _thm312_problem(rng):
  """Thm 3.12's quadratic: eigenvalues in [1, 1.3] (μ = 1, L = 1.3)."""
  lam = np.linspace(1.0, 1.3, 50)
  Q = np.linalg.qr(rng.normal(size=(50, 50)))[0]
  return (Quadratic(jnp.asarray(Q @ np.diag(lam) @ Q.T),
                    jnp.asarray(rng.normal(size=50))), 1.0, 1.3)


def approximate_cgc_claims(claims: Claims, quick: bool) -> None:
  """Cor 3.13: Def. 3.6 operators, α_cgc = 1, the κ-gate (alg4) on the exact
  gradient, K coarse GD steps (ᾱ ≤ 1/L_H) on nnopt's cgc objective."""
  rng = np.random.default_rng(13)
  quad, mu, L = _thm312_problem(rng)
  kappa = 0.6
  transfer = eigen_transfer(quad.A, 40, "largest")
  coarse = galerkin_quadratic(quad, transfer)
  L_H = float(jnp.linalg.eigvalsh(coarse.A).max())
  star = quad.minimizer()
  n_inst = 40 if quick else 200
  gaps, gated, r_norms = [], 0, []
  for i in range(n_inst):
    theta = star + jnp.asarray(rng.normal(size=50))
    g = quad.grad(theta)
    passed, _ = gate(g, transfer, "alg4", kappa)
    if not bool(passed):
      continue
    gated += 1
    grad_h = cgc_gradient(lambda tc, _: coarse.grad(tc),
                          lambda th, _: quad.grad(th), transfer, theta,
                          mode="exact")
    ref = transfer.restrict_params(theta)
    steps = 1 + i % 10
    theta_c = coarse_solve(grad_h, ref, jnp.zeros(steps),
                           optax.sgd(float(rng.uniform(0.2, 1.0)) / L_H))
    e = transfer.prolong(theta_c - ref)
    r = grad_h(theta_c, None)
    Pr, PRg = transfer.prolong(r), transfer.prolong(transfer.restrict_grad(g))
    c_k = 2 * g @ Pr + Pr @ Pr + 2 * PRg @ Pr
    lhs = float(jnp.sum((theta + e - star) ** 2))
    rhs = float((L / mu) ** 2 * (1 - kappa) * jnp.sum((theta - star) ** 2)
                + c_k / mu ** 2)
    gaps.append((lhs - rhs) / max(rhs, 1e-300))
    r_norms.append(float(jnp.linalg.norm(r) / jnp.linalg.norm(g)))
  claims.check("Cor 3.13", "with κ = 0.6 > 1 − μ²/L² = 0.408, Def. 3.6 "
               "operators, the exact-gradient κ-gate and 1–10 coarse GD steps "
               "(ᾱ ≤ 1/L_H) on nnopt's cgc objective: ‖θ^{k+1} − θ*‖² ≤ "
               "(L²/μ²)(1 − κ)‖θ^k − θ*‖² + C_k(r)/μ² in every gated instance "
               f"(relative slack {TOL:g}); needs ≥ 10 gated instances",
               gated >= 10 and max(gaps) <= TOL, gated=gated, of=n_inst,
               worst_relative_gap=max(gaps, default=None),
               residual_over_gradient=[min(r_norms, default=None),
                                       max(r_norms, default=None)],
               quote=QUOTE_313)


def orthonormal_claims(claims: Claims, quick: bool) -> None:
  """Cor 3.14: random orthonormal R (not an eigenbasis), R_g = R_p, P = Rᵀ,
  nnopt's exact cgc and alg4 gate; per instance the largest η that meets
  both assumptions (η ≤ −(∇f, (1−PR)Ae)/‖R∇f‖² since (∇f, PRAe) =
  −‖R∇f‖², and η ≥ ‖(1−PR)Ae‖²/‖PRAe‖²) gives the tightest bound."""
  rng = np.random.default_rng(14)
  quad, mu, L = _thm312_problem(rng)
  star = quad.minimizer()
  n_inst = 100 if quick else 600
  kappa = 0.3
  gaps, used, gated, contracting = [], 0, 0, 0
  for _ in range(n_inst):
    R = jnp.asarray(np.linalg.qr(rng.normal(size=(50, 45)))[0].T)
    transfer = matrix_transfer(R)
    theta = star + jnp.asarray(rng.normal(size=50))
    g = quad.grad(theta)
    passed, _ = gate(g, transfer, "alg4", kappa)
    if not bool(passed):
      continue
    gated += 1
    e = exact_quadratic_cgc(quad, transfer, theta)
    Ae = quad.A @ e
    PRAe = R.T @ (R @ Ae)
    rest = Ae - PRAe
    eta_low = float(rest @ rest / (PRAe @ PRAe))
    eta_high = float((g @ rest) / (g @ PRAe))  # (g, PRAe) < 0 flips ≤
    if not (eta_high > 0 and eta_high >= eta_low):
      continue
    used += 1
    eta = eta_high
    lhs = float(jnp.sum((theta + e - star) ** 2))
    rhs = float((L / mu) ** 2 * (1 - kappa * (1 + eta))
                * jnp.sum((theta - star) ** 2))
    gaps.append((lhs - rhs) / float(jnp.sum((theta - star) ** 2)))
    contracting += kappa > (1 - mu ** 2 / L ** 2) / (1 + eta)
  claims.check("Cor 3.14", "random orthonormal R_p = R_g, P_p = R_pᵀ (45 of "
               "50), κ = 0.3, nnopt's exact cgc: ‖θ^{k+1} − θ*‖² ≤ (L²/μ²)(1 − "
               "κ(1 + η))‖θ^k − θ*‖² with the largest η that meets both "
               f"assumptions, in every gated instance where one exists "
               f"(relative slack {TOL:g}); needs ≥ 10 such instances",
               used >= 10 and max(gaps) <= TOL, instances=used, gated=gated,
               of=n_inst, worst_relative_gap=max(gaps, default=None),
               contracting=int(contracting), quote=QUOTE_314)
