"""MG/Opt R7 (Kreis Thms 3.24/3.31): Algorithm 5 on a non-convex problem
(Cauchy loss on 400 points, d = 20, an orthonormal 8-row restriction) with
fixed and Robbins–Monro steps, the seeds of one setting as one vmapped
program, paired comparisons over seeds, and the running-mean figure.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nnopt.multilevel import algorithm5, matrix_transfer
from nnopt.reproduce import Claims


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
  """Thms 3.24/3.31 from Algorithm 5's ‖∇f‖² histories (call in float64)."""
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
