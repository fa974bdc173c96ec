"""MG/Opt chapter 3 (Kreis): Figs. 3.1/3.2 and the checks R3–R7 of spec-mgopt §7.6.

* R1/R2 (Figs. 3.1, 3.2): the B.2 quadratic (n = 50, eigenvalues U(0.1, 0.5)
  ×25 and U(1, 5) ×25, Haar rotation, b ~ N(0, I)), θ⁰ ~ N(0, I) (pitfall P1),
  literal uniform noise of the B.2 snippet (P2), 50 SGD steps, one cgc gated
  by (3.4) with κ1 = 0.5, κ2 = 1e-3 on the exact gradient, 50 coarse SGD steps
  on the Galerkin cgc problem with the exact shift and noisy coarse gradients
  (P3), α_cgc = 1, 150 more SGD steps; lr 0.01 (3.1) and 0.001 (3.2). One seed
  and a many-seed mean (50 seeds; quick: 4). Curves show f − f*.
  The four methods of one seed share θ⁰ and the noise: comparisons of means
  are paired by seed (Claims.compare); statements the thesis makes of its one
  run are reported as the fraction of seeds where they hold (INFO).
* R3 Thm 3.10 / Lemma 3.9, R4 Lemmas 3.2/3.3/3.7, R5 Thm 3.12 (κ-gated
  contraction), Cor 3.13 (approximate cgc: coarse GD steps on nnopt's cgc
  objective), Cor 3.14 (orthonormal, non-eigen restrictions), R6 Thms
  2.36/2.38 (descent bounds through nnopt's cgc with a non-quadratic f_H),
  R7 Thms 3.24/3.31 (Algorithm 5 on a non-convex problem with fixed and
  Robbins–Monro steps, 8 seeds, paired comparisons).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.multilevel import (Quadratic, algorithm4, algorithm5,
                              cgc_gradient, cgc_objective, coarse_solve,
                              eigen_restriction, eigen_transfer,
                              exact_quadratic_cgc, galerkin_quadratic, gate,
                              matrix_transfer)
from nnopt.reproduce import Claims, Reproduction

OPERATORS = ("sgd", "largest", "smallest", "random")
LABELS = {"sgd": "SGD", "largest": "largeev", "smallest": "smallev",
          "random": "randomev"}
COLORS = {"sgd": "tab:blue", "largest": "tab:red", "smallest": "tab:green",
          "random": "tab:orange"}
SIGA = SIGB = 0.1


def b2_problem(seed: int):
  """The B.2 quadratic (eigenvectors are the rows of Q) and θ⁰ ~ N(0, I)."""
  from scipy.stats import special_ortho_group
  rng = np.random.default_rng(seed)
  lam = np.concatenate([rng.uniform(0.1, 0.5, 25), rng.uniform(1.0, 5.0, 25)])
  Q = special_ortho_group.rvs(50, random_state=rng)
  A = Q.T @ np.diag(lam) @ Q
  b = rng.normal(size=50)
  theta0 = rng.normal(size=50)
  return Quadratic(jnp.asarray(A), jnp.asarray(b)), jnp.asarray(theta0)


def noisy_data(quad: Quadratic, key):
  """B.2's literal snippet: Ã = A + θᵀθ (a scalar!) − (2/3)σ_a I, b̃ = b + ε."""
  k1, k2 = jax.random.split(key)
  t = jax.random.uniform(k1, (50,), minval=-SIGA, maxval=SIGA)
  eps = jax.random.uniform(k2, (), minval=-SIGB, maxval=SIGB)
  return quad.A + t @ t - 2.0 / 3.0 * SIGA * jnp.eye(50), quad.b + eps


def run_b2(quad: Quadratic, theta0, key, lr: float, which: str):
  """f − f* over 50 + cgc + 150 steps, the gate decision and ratio."""
  fstar = quad.value(quad.minimizer())

  def sgd(theta, keys):
    def body(t, k):
      A, b = noisy_data(quad, k)
      t = t - lr * (A @ t - b)
      return t, quad.value(t) - fstar
    return jax.lax.scan(body, theta, keys)

  keys = jax.random.split(key, 3)
  theta, pre = sgd(theta0, jax.random.split(keys[0], 50))
  if which == "sgd":
    taken, ratio = jnp.zeros((), bool), jnp.nan
    after = theta
  else:
    transfer = eigen_transfer(quad.A, 25, which, jax.random.key(99))
    R = eigen_restriction(quad.A, 25, which, jax.random.key(99))
    passed, ratio = gate(quad.grad(theta), transfer, "exp_B2", 0.5, 1e-3)
    coarse = galerkin_quadratic(quad, transfer)
    ref = R @ theta
    shift = R @ quad.grad(theta) - coarse.grad(ref)  # exact v̄ (P3)

    def coarse_grad(tc, k):
      A, b = noisy_data(quad, k)
      return R @ (A @ (R.T @ tc)) - R @ b + shift

    theta_c = coarse_solve(coarse_grad, ref, jax.random.split(keys[1], 50),
                           optax.sgd(lr))
    after = jnp.where(passed, theta + R.T @ (theta_c - ref), theta)
    taken = passed
  _, post = sgd(after, jax.random.split(keys[2], 150))
  start = quad.value(theta0) - fstar
  curve = jnp.concatenate([start[None], pre, (quad.value(after) - fstar)[None],
                           post])
  return curve, taken, ratio


def figure_b2(out_dir: Path, lr: float, seeds, name: str):
  curves = {w: [] for w in OPERATORS}
  taken = {w: [] for w in OPERATORS}
  ratios = {w: [] for w in OPERATORS}
  with jax.enable_x64(True):
    for seed in seeds:
      quad, theta0 = b2_problem(seed)
      key = jax.random.key(seed)
      for w in OPERATORS:
        c, t, r = jax.jit(run_b2, static_argnums=(3, 4))(quad, theta0, key, lr, w)
        curves[w].append(np.asarray(c))
        taken[w].append(bool(t))
        ratios[w].append(float(r))
  curves = {w: np.stack(v) for w, v in curves.items()}
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  x = np.concatenate([np.arange(51), [50], np.arange(51, 201)])
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, data, title in [(axes[0], {w: c[0] for w, c in curves.items()},
                           f"seed {seeds[0]}"),
                          (axes[1], {w: c.mean(0) for w, c in curves.items()},
                           f"mean of {len(seeds)} seeds")]:
    for w in OPERATORS:
      ax.plot(x, data[w], color=COLORS[w], label=LABELS[w])
    ax.set_yscale("log")
    ax.set_xlabel("SGD iteration")
    ax.set_ylabel("f - f*")
    ax.set_title(f"{name}, lr={lr}: {title}")
    ax.legend()
  fig.tight_layout()
  fig.savefig(out_dir / f"{name.replace(' ', '_').replace('.', '_')}.png", dpi=120)
  plt.close(fig)
  return curves, taken, ratios


QUOTE_31 = ("We observe in Figure 3.1 that for the moderate learning rate, the "
            "restriction operator consisting of rows of the eigenvectors of "
            "A_fine corresponding to the smallest eigenvalues leads to the "
            "fastest decrease of the objective function after the cgc update "
            "at iteration 50.")
QUOTE_32 = ("In Figure 3.2, for the small learning rate, the opposite behavior "
            "can be observed, as is expected from [132].")
QUOTE_32_GATE = ("Further, we observe that for the small learning rate "
                 "scenario, the cgc is not computed for the restriction "
                 "operator smalleev, since the condition (3.4) for computing "
                 "the cgc is not even satisfied.")
QUOTE_SAME = ("Up until iteration 50 all methods behave the same, since no cgc "
              "update is performed before.")
#: Index of f − f* right after the cgc (x = 50 after the pre-smoothing) and at
#: iteration 200 in the curves of :func:`run_b2`.
AFTER_CGC, AT_200 = 51, -1


def _by_seed(curves, seeds, index):
  return {w: {s: float(c[i, index]) for i, s in enumerate(seeds)}
          for w, c in curves.items()}


def _best(curves, seeds, index, best):
  """Per seed: ``best`` has the lowest f − f* of the four (one-run claim)."""
  return {s: all(curves[best][i, index] < curves[w][i, index]
                 for w in OPERATORS if w != best)
          for i, s in enumerate(seeds)}


def b2_claims(claims: Claims, out_dir: Path, quick: bool):
  seeds = list(range(4 if quick else 50))
  # The four methods of one seed share θ⁰ and the noise keys: paired by seed.
  # -- Fig 3.1 -------------------------------------------------------------
  curves, taken, ratios = figure_b2(out_dir, 0.01, seeds, "Fig 3.1")
  same = max(float(np.abs(c[:, :51] - curves["sgd"][:, :51]).max())
             for c in curves.values())
  gate_log = {LABELS[w]: f"{sum(taken[w])}/{len(seeds)}" for w in OPERATORS[1:]}
  claims.check("Fig 3.1", "all methods coincide up to iteration 50 (same θ⁰ "
               "and noise, no cgc before)", same == 0.0,
               max_abs_difference=same, quote=QUOTE_SAME)
  cgc = _by_seed(curves, seeds, AFTER_CGC)
  end = _by_seed(curves, seeds, AT_200)
  for w in ("random", "largest", "sgd"):
    claims.compare(
        "Fig 3.1", f"lr 0.01: right after the cgc, smallev has a lower f − f* "
        f"than {LABELS[w]} (mean over {len(seeds)} seeds)", cgc["smallest"],
        cgc[w], relation="<", names=("smallev", LABELS[w]),
        quantity="f − f* right after the cgc at iteration 50", quote=QUOTE_31,
        measured={"gate_passed": gate_log,
                  "spec_check_50_seed_means": dict(
                      smallev=35.0, randomev=37.9, largeev=40.9, sgd=43.3)})
  claims.compare("Fig 3.1", "lr 0.01: the smallev gain over SGD persists to "
                 f"iteration 200 (mean over {len(seeds)} seeds)",
                 end["smallest"], end["sgd"], relation="<",
                 names=("smallev", "SGD"), quantity="f − f* at iteration 200",
                 quote=QUOTE_31,
                 measured={"spec_check": dict(smallev=16.3, sgd=20.2)})
  claims.fraction("Fig 3.1", "lr 0.01, per seed: smallev has the lowest "
                  "f − f* of the four right after the cgc (the thesis shows "
                  "one run)", _best(curves, seeds, AFTER_CGC, "smallest"),
                  quote=QUOTE_31)
  # -- Fig 3.2 -------------------------------------------------------------
  curves, taken, ratios = figure_b2(out_dir, 0.001, seeds, "Fig 3.2")
  cgc = _by_seed(curves, seeds, AFTER_CGC)
  end = _by_seed(curves, seeds, AT_200)
  claims.fraction(
      "Fig 3.2", "lr 0.001, per seed: gate (3.4) skips the smallev cgc (κ1 = "
      "0.5, κ2 = 1e-3), so its curve is SGD's (the thesis shows one run)",
      {s: not t for s, t in zip(seeds, taken["smallest"])},
      quote=QUOTE_32_GATE,
      measured={"smallev_gate_ratio_by_seed": dict(zip(seeds, ratios[
          "smallest"])), "kappa1": 0.5,
                "smallev_curve_equals_sgd_by_seed": {
                    s: bool(np.array_equal(curves["smallest"][i],
                                           curves["sgd"][i]))
                    for i, s in enumerate(seeds)}})
  for w in ("random", "smallest", "sgd"):
    claims.compare(
        "Fig 3.2", f"lr 0.001: right after the cgc, largeev has a lower f − f* "
        f"than {LABELS[w]} (mean over {len(seeds)} seeds)", cgc["largest"],
        cgc[w], relation="<", names=("largeev", LABELS[w]),
        quantity="f − f* right after the cgc at iteration 50", quote=QUOTE_32,
        measured={"spec_check_50_seed_means": dict(
            largeev=72.7, randomev=76.2, smallev=80.9, sgd=81.0)})
  claims.compare("Fig 3.2", "lr 0.001: largeev stays below SGD at iteration "
                 f"200 (mean over {len(seeds)} seeds)", end["largest"],
                 end["sgd"], relation="<", names=("largeev", "SGD"),
                 quantity="f − f* at iteration 200", quote=QUOTE_32)
  claims.fraction("Fig 3.2", "lr 0.001, per seed: largeev has the lowest "
                  "f − f* of the four right after the cgc (the thesis shows "
                  "one run)", _best(curves, seeds, AFTER_CGC, "largest"),
                  quote=QUOTE_32)


def theory_claims(claims: Claims, quick: bool):
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


QUOTE_324 = ("Theorem 3.24 (Main Result with SGD as Solver for Non-Convex "
             "Problems). Let assumptions 3.16 to 3.23 hold. Then the iterates "
             "of the algorithm Algorithm 5 satisfy E[1/(J+1) Σ_k ‖∇f(θ^k)‖²] "
             "≤ […] + max[α²LM²/2, α_cgc² 2LA_k²ρ⁴M²‖P‖²/2 − α_cgc cε] / "
             "min[α/2, α_cgc cτd1κ/2]")
QUOTE_331 = ("Theorem 3.31 (Convergence for Diminishing Step Sizes). Replacing "
             "assumption 3.20 by assumption 3.30 and assuming ε ≥ 0 in "
             "assumption 3.21 in the assumptions of Theorem 3.24, we get "
             "liminf_{k→∞} E‖∇f(θ^k)‖² = 0.")


def r7_claims(claims: Claims, out_dir: Path, quick: bool):
  rng = np.random.default_rng(7)
  n, d = 400, 20
  X = jnp.asarray(rng.normal(size=(n, d)))
  y = jnp.asarray(X @ rng.normal(size=d) + rng.standard_cauchy(size=n))

  def f_batch(th, idx):
    r = X[idx] @ th - y[idx]
    return jnp.mean(jnp.log1p(r ** 2))  # Cauchy loss: non-convex

  full = lambda th: f_batch(th, jnp.arange(n))  # noqa: E731
  sample = lambda k: jax.random.choice(k, n, (10,))  # noqa: E731
  R = jnp.asarray(np.linalg.qr(rng.normal(size=(d, 8)))[0].T)
  t = matrix_transfer(R)
  fine_grad = lambda th, k: jax.grad(f_batch)(th, sample(k))  # noqa: E731
  coarse_grad = lambda tc, k: R @ jax.grad(f_batch)(R.T @ tc, sample(k))  # noqa: E731
  iters = 2000 if quick else 20000

  def runner(lr, alpha_cgc):
    """The seeds' runs of one step setting (one compilation, vmapped)."""
    def one(key):
      _, hist = algorithm5(
          jnp.zeros(d), key, fine_grad=fine_grad, coarse_grad=coarse_grad,
          exact_grad=jax.grad(full), transfer=t, num_iters=iters, lr=lr,
          coarse_lr=0.02, alpha_cgc=alpha_cgc, kappa=0.3, lam=2.0,
          num_coarse_steps=5)
      return hist.grad_norm2, hist.cgc
    norms, cgc = jax.jit(jax.vmap(one))(
        jax.vmap(jax.random.key)(jnp.asarray(seeds)))
    return ({s: np.asarray(norms[i]) for i, s in enumerate(seeds)},
            {s: np.asarray(cgc[i]) for i, s in enumerate(seeds)})

  seeds = list(range(3 if quick else 8))
  # The runs of one seed share θ⁰ = 0 and the key (paired by seed).
  big, cgcs = runner(0.05, 1.0)
  small, _ = runner(0.0125, 0.25)
  rm, _ = runner(lambda k: 0.05 / (1 + k / 200.0) ** 0.75,
                 lambda k: 1.0 / (1 + k / 50.0) ** 0.75)
  tail = slice(iters // 2, None)
  log_mean = lambda x, sl: float(np.log(np.mean(x[sl])))  # noqa: E731
  q2, q4 = slice(iters // 4, iters // 2), slice(3 * iters // 4, None)
  claims.compare(
      "Thm 3.24", "Algorithm 5 with fixed steps: the noise floor of ‖∇f‖² "
      "shrinks with α and α_cgc: (α, α_cgc) = (0.0125, 0.25) ends lower than "
      f"(0.05, 1) (log mean ‖∇f‖² over iterations J/2..J, J = {iters})",
      {s: log_mean(small[s], tail) for s in seeds},
      {s: log_mean(big[s], tail) for s in seeds}, relation="<",
      names=("small steps", "large steps"),
      quantity="log mean ‖∇f‖² over the second half", quote=QUOTE_324,
      measured={"cgcs_large_steps": {s: int(c.sum()) for s, c in
                                     cgcs.items()}, "iterations": iters})
  claims.compare(
      "Thm 3.24", "Algorithm 5 with fixed steps (0.05, 1): ‖∇f‖² plateaus "
      "instead of converging: its mean over the last quarter is within ±50 % "
      "of its mean over the second quarter (log means within log 1.5)",
      {s: log_mean(big[s], q4) for s in seeds},
      {s: log_mean(big[s], q2) for s in seeds}, relation="≈",
      margin=float(np.log(1.5)), names=("quarter 4", "quarter 2"),
      quantity="log mean ‖∇f‖² over a quarter of the run", quote=QUOTE_324)
  last, mid = slice(-iters // 10, None), slice(4 * iters // 10, iters // 2)
  claims.compare(
      "Thm 3.31", "Algorithm 5 with Robbins–Monro steps (α_k = 0.05/(1 + "
      "k/200)^0.75, α_cgc,k = 1/(1 + k/50)^0.75): E‖∇f‖² keeps decreasing: "
      "its mean over the last tenth is below its mean over the tenth before "
      "J/2 (log means)", {s: log_mean(rm[s], last) for s in seeds},
      {s: log_mean(rm[s], mid) for s in seeds}, relation="<",
      names=("last tenth", "tenth before J/2"),
      quantity="log mean ‖∇f‖² over a tenth of the run", quote=QUOTE_331)
  claims.compare(
      "Thm 3.31", "Algorithm 5 with Robbins–Monro steps ends below the noise "
      "floor of the fixed-step run (0.05, 1) (log mean ‖∇f‖² over the last "
      "tenth)", {s: log_mean(rm[s], last) for s in seeds},
      {s: log_mean(big[s], last) for s in seeds}, relation="<",
      names=("Robbins–Monro", "fixed steps"),
      quantity="log mean ‖∇f‖² over the last tenth", quote=QUOTE_331)
  big, small, rm = big[seeds[0]], small[seeds[0]], rm[seeds[0]]
  running_min = np.minimum.accumulate(rm)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  k = np.arange(1, iters + 1)
  for data, label in [(big, "fixed α=0.05, α_cgc=1"),
                      (small, "fixed α=0.0125, α_cgc=0.25"),
                      (rm, "Robbins–Monro")]:
    ax.plot(k, np.cumsum(data) / k, label=f"running mean, {label}")
  ax.plot(k, running_min, "k--", label="running min, Robbins–Monro")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("iteration k")
  ax.set_ylabel("|∇f|²")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_dir / "R7_algorithm5.png", dpi=120)
  plt.close(fig)


def run(out_dir: Path, quick: bool):
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  claims = Claims("kreis")
  b2_claims(claims, out_dir, quick)
  theory_claims(claims, quick)
  with jax.enable_x64(True):
    r7_claims(claims, out_dir, quick)
  return claims


REPRODUCTION = Reproduction(
    id="mgopt", thesis="kreis",
    items=("Fig 3.1", "Fig 3.2", "Thm 3.10", "Lemma 3.2", "Lemma 3.3",
           "Lemma 3.7", "Thm 3.12", "Cor 3.13", "Cor 3.14", "Thm 2.36",
           "Thm 2.38", "Thm 3.24", "Thm 3.31"),
    run=run, title="MG/Opt quadratic figures and theory checks (Kreis ch. 3)",
    cost="~5 min CPU (quick: ~1 min)",
    smoke=("the same problems, smaller: Figs 3.1/3.2 on 4 seeds instead of 50, "
           "40–100 theory instances instead of 200–600, Algorithm 5 for 2,000 "
           "iterations on 3 seeds instead of 20,000 on 8"))
