"""MG/Opt chapter 3 (Kreis): Figs. 3.1/3.2 and the checks R3–R7 of spec-mgopt §7.6.

* R1/R2 (Figs. 3.1, 3.2): the B.2 quadratic (n = 50, eigenvalues U(0.1, 0.5)
  ×25 and U(1, 5) ×25, Haar rotation, b ~ N(0, I)), θ⁰ ~ N(0, I) (pitfall P1),
  literal uniform noise of the B.2 snippet (P2), 50 SGD steps, one cgc gated
  by (3.4) with κ1 = 0.5, κ2 = 1e-3 on the exact gradient, 50 coarse SGD steps
  on the Galerkin cgc problem with the exact shift and noisy coarse gradients
  (P3), α_cgc = 1, 150 more SGD steps; lr 0.01 (3.1) and 0.001 (3.2). One seed
  and a many-seed mean (50 seeds; quick: 4). Curves show f − f*.
* R3 Thm 3.10 / Lemma 3.9, R4 Lemmas 3.2/3.3/3.7, R5 Thm 3.12 (κ-gated
  contraction), R6 Thm 2.36 (descent bound), R7 Thms 3.24/3.31 (behaviour of
  Algorithm 5 on a non-convex problem with fixed and Robbins–Monro steps).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.multilevel import (Quadratic, algorithm4, algorithm5,
                              coarse_solve, eigen_restriction,
                              eigen_transfer, exact_quadratic_cgc,
                              galerkin_quadratic, gate, matrix_transfer)
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


def b2_claims(claims: Claims, out_dir: Path, quick: bool):
  seeds = list(range(4 if quick else 50))
  # -- Fig 3.1 -------------------------------------------------------------
  curves, taken, ratios = figure_b2(out_dir, 0.01, seeds, "Fig 3.1")
  mean_cgc = {w: float(c[:, 51].mean()) for w, c in curves.items()}
  mean_200 = {w: float(c[:, -1].mean()) for w, c in curves.items()}
  single = {w: float(c[0, 51]) for w, c in curves.items()}
  same = max(float(np.abs(c[:, :51] - curves["sgd"][:, :51]).max())
             for c in curves.values())
  gate_log = {LABELS[w]: f"{sum(taken[w])}/{len(seeds)}" for w in OPERATORS[1:]}
  claims.check("Fig 3.1", "all methods coincide up to iteration 50", same == 0.0,
               max_abs_difference=same)
  claims.check(
      "Fig 3.1", "lr 0.01: after the cgc smallev < randomev < largeev <= SGD "
      f"(mean of {len(seeds)} seeds, f - f*)",
      mean_cgc["smallest"] < mean_cgc["random"] < mean_cgc["largest"]
      <= mean_cgc["sgd"], after_cgc=mean_cgc, gate_passed=gate_log,
      spec_check_50_seeds=dict(smallev=35.0, randomev=37.9, largeev=40.9, sgd=43.3))
  claims.check("Fig 3.1", "lr 0.01: after the cgc smallev < randomev < largeev "
               f"<= SGD (single seed {seeds[0]})",
               single["smallest"] < single["random"] < single["largest"]
               <= single["sgd"], after_cgc=single)
  claims.check("Fig 3.1", "lr 0.01: the smallev gain persists to iteration 200 "
               "(mean)", mean_200["smallest"] < mean_200["sgd"],
               at_200=mean_200, spec_check=dict(smallev=16.3, sgd=20.2))
  # -- Fig 3.2 -------------------------------------------------------------
  curves, taken, ratios = figure_b2(out_dir, 0.001, seeds, "Fig 3.2")
  mean_cgc = {w: float(c[:, 51].mean()) for w, c in curves.items()}
  mean_200 = {w: float(c[:, -1].mean()) for w, c in curves.items()}
  single = {w: float(c[0, 51]) for w, c in curves.items()}
  claims.check(
      "Fig 3.2", "lr 0.001: the smallev cgc is skipped by gate (3.4) in every "
      "seed, so its curve equals SGD", not any(taken["smallest"]) and np.array_equal(
          curves["smallest"], curves["sgd"]),
      smallev_cgc_taken=sum(taken["smallest"]), seeds=len(seeds),
      smallev_gate_ratio_mean=float(np.mean(ratios["smallest"])),
      kappa1=0.5)
  claims.check(
      "Fig 3.2", f"lr 0.001: largeev < randomev < smallev = SGD after the cgc "
      f"(mean of {len(seeds)} seeds)",
      mean_cgc["largest"] < mean_cgc["random"] < mean_cgc["smallest"]
      and mean_cgc["smallest"] == mean_cgc["sgd"], after_cgc=mean_cgc,
      spec_check=dict(largeev=72.7, randomev=76.2, smallev=80.9, sgd=81.0))
  claims.check("Fig 3.2", "lr 0.001: largeev < randomev < smallev = SGD "
               f"(single seed {seeds[0]})",
               single["largest"] < single["random"] < single["smallest"]
               == single["sgd"], after_cgc=single)
  claims.check("Fig 3.2", "lr 0.001: largeev is lowest at iteration 200 (mean)",
               mean_200["largest"] == min(mean_200.values()), at_200=mean_200)


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
                 "(to machine precision)", worst < 1e-10, max_errors=errs)
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
                 min_eig > 0 and sym < 1e-10, min_eigenvalue=min_eig, asymmetry=sym)
    claims.check("Lemma 3.3", "R_g∇f(θ) = -R_p A e at an exact cgc", l33 < 1e-9,
                 max_error=l33)
    claims.check("Lemma 3.7", "PR is a projection and RP = I for Def. 3.6",
                 max(proj, rp) < 1e-12, projection_error=proj, rp_error=rp)
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
                 bound=bound, algorithm4_cgcs=int(np.asarray(hist.cgc).sum()))
    # R6: Thm 2.36 — ⟨∇f, e⟩ <= −(μ_H + λ)‖ē‖² + rᵀē for strongly convex f_H
    worst_gap, n_inst = -np.inf, 50 if quick else 300
    for i in range(n_inst):
      r6 = np.random.default_rng(100 + i)
      n, m = 12, 5
      P = r6.normal(size=(n, m))
      M = r6.normal(size=(m, m))
      AH = M @ M.T + 0.5 * np.eye(m)
      mu_H = float(np.linalg.eigvalsh(AH).min())
      bH = r6.normal(size=m)
      Mf = r6.normal(size=(n, n))
      f_grad = lambda th: Mf @ Mf.T @ th + np.sin(th)  # arbitrary smooth f  # noqa: E731
      th = r6.normal(size=n)
      lam_r = float(r6.uniform(0, 2))
      g = f_grad(th)
      ref = r6.normal(size=m)  # R_p unrestricted
      shift = P.T @ g - (AH @ ref - bH)
      grad_h = lambda tc: AH @ tc - bH + shift + lam_r * (tc - ref)  # noqa: E731
      tc = ref.copy()
      for _ in range(int(r6.integers(1, 30))):  # approximate coarse solve
        tc = tc - 0.5 / (np.linalg.eigvalsh(AH).max() + lam_r) * grad_h(tc)
      ebar = tc - ref
      r = grad_h(tc)
      gap = g @ (P @ ebar) - (-(mu_H + lam_r) * ebar @ ebar + r @ ebar)
      worst_gap = max(worst_gap, float(gap / max(1.0, abs(g @ (P @ ebar)))))
    claims.check("Thm 2.36", "<∇f, e> <= -(μ_H + λ)|ē|² + rᵀē for μ_H-strongly "
                 f"convex f_H, R_g = Pᵀ ({n_inst} random instances, inexact solves)",
                 worst_gap <= 1e-10, worst_relative_gap=worst_gap)


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

  def run(lr, alpha_cgc, seed):
    _, hist = jax.jit(lambda th: algorithm5(
        th, jax.random.key(seed), fine_grad=fine_grad, coarse_grad=coarse_grad,
        exact_grad=jax.grad(full), transfer=t, num_iters=iters, lr=lr,
        coarse_lr=0.02, alpha_cgc=alpha_cgc, kappa=0.3, lam=2.0,
        num_coarse_steps=5))(jnp.zeros(d))
    return np.asarray(hist.grad_norm2), np.asarray(hist.cgc)

  big, cgc_big = run(0.05, 1.0, 0)
  small, _ = run(0.0125, 0.25, 0)
  rm, cgc_rm = run(lambda k: 0.05 / (1 + k / 200.0) ** 0.75,
                   lambda k: 1.0 / (1 + k / 50.0) ** 0.75, 0)
  tail = slice(iters // 2, None)
  plateau_big, plateau_small = float(big[tail].mean()), float(small[tail].mean())
  # the fixed-step running mean plateaus: second and last quarter agree ±50 %
  q2, q4 = big[iters // 4:iters // 2].mean(), big[3 * iters // 4:].mean()
  claims.check("Thm 3.24", "Algorithm 5 with fixed steps: the mean |∇f|² "
               "plateaus at a level that shrinks with α and α_cgc "
               "(α, α_cgc) = (0.05, 1) vs (0.0125, 0.25)",
               plateau_small < plateau_big and abs(q4 / q2 - 1) < 0.5,
               plateau_large_steps=plateau_big, plateau_small_steps=plateau_small,
               quarter2=float(q2), quarter4=float(q4),
               cgcs=int(cgc_big.sum()), iterations=iters)
  running_min = np.minimum.accumulate(rm)
  last = float(rm[-iters // 10:].min())
  claims.check("Thm 3.31", "Algorithm 5 with Robbins–Monro steps: min_k |∇f|² "
               "keeps decreasing (running min at J < at J/2) and ends below the "
               "fixed-step run's plateau",
               running_min[-1] < running_min[iters // 2] and last < plateau_big,
               running_min_half=float(running_min[iters // 2]),
               running_min_end=float(running_min[-1]), min_last_tenth=last,
               fixed_plateau=plateau_big, cgcs=int(cgc_rm.sum()))
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
           "Lemma 3.7", "Thm 3.12", "Thm 2.36", "Thm 3.24", "Thm 3.31"),
    run=run, title="MG/Opt quadratic figures and theory checks (Kreis ch. 3)",
    cost="~5 min CPU (quick: ~1 min)",
    smoke="the same quadratics with 4 seeds, 50 instances and 2,000 iterations")
