"""Balles ch. 7: the runs and measurements behind the claims of
:mod:`experiments.reproduce_balles_ch7` (path deviations, the (γ, λ)
selection of Figs 7.3/D.1, cosines along the EFGD path, Fig 7.4's runs from
scaled starts) and the Figs 7.3/D.1 plot.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from nnopt.noise_aware import fisher as F  # pylint: disable=wrong-import-position
from nnopt.noise_aware.fisher_data import TABLE_D5  # pylint: disable=wrong-import-position

#: Iterations of every real-data run (ref-code, spec D.3.3).
ITERS = 100


def deviation(path, star):
  """Max distance of a path from the straight segment θ0 → θ*, relative."""
  p0 = path[0]
  seg = star - p0
  t = np.clip((path - p0) @ seg / (seg @ seg), 0, 1)
  return float(np.max(np.linalg.norm(path - (p0 + t[:, None] * seg), axis=1))
               / np.linalg.norm(seg))


def accuracy(case: str, seeds: int = 20) -> float:
  """In-sample accuracy of the fitted logistic model, mean over seeds."""
  accs = []
  for seed in range(seeds):
    prob = F.fig7_2_logistic(case, seed=seed)
    star = prob.fit()
    accs.append(np.mean(((prob.x @ star) > 0) == (prob.y > 0.5)))
  return float(np.mean(accs))


def select(prob: F.GLM, gammas, lambdas) -> dict:
  """Per method, the (γ, λ) with the lowest loss after 100 iterations from
  θ0 = 0, and that run's loss curve."""
  theta0 = np.zeros(prob.x.shape[1])
  best = {}
  for method in ("gd", "ngd", "ef"):
    cand = None
    for lam in ([0.0] if method == "gd" else lambdas):
      finals = F.run_preconditioned_grid(prob, method, theta0, gammas, lam,
                                         ITERS)
      k = int(np.argmin(finals))
      if np.isfinite(finals[k]) and (cand is None or finals[k] < cand[0]):
        cand = (finals[k], gammas[k], lam)
    if cand is None:
      raise RuntimeError(f"every {method} run diverged")
    losses, _ = F.run_preconditioned(prob, method, theta0, cand[1], cand[2],
                                     ITERS)
    best[method] = dict(final=float(losses[-1]), gamma=float(cand[1]),
                        damping=float(cand[2]), losses=losses)
  return best


def undamped_step(mat, g) -> np.ndarray:
  """``mat⁺ g``, the minimum-norm least-squares solution.

  a1a's one-hot groups sum to the bias column (and some of its features are
  never set), so its Fisher and EF are singular and ``solve`` would return
  rounding noise along their common null space; on the full-rank sets this
  is ``mat⁻¹ g`` (BreastCancer and Wine: cosines equal to 1e-8).
  """
  return np.linalg.lstsq(mat, g, rcond=None)[0]


def path_cosines(prob: F.GLM, path) -> list[float]:
  """cos(F̃⁻¹∇R, F⁻¹∇R) (no damping) at every point of ``path``."""
  out = []
  with np.errstate(all="ignore"):
    for theta in path:
      g = prob.grad(theta)
      out.append(F.cosine(undamped_step(prob.empirical_fisher(theta), g),
                          undamped_step(prob.fisher(theta), g)))
  return out


def plot_optim(path: Path, names, res, title: str) -> None:
  if not names:
    return
  fig, axes = plt.subplots(2, len(names), figsize=(4.5 * len(names), 6.5),
                           squeeze=False)
  for col, name in enumerate(names):
    for method, label in (("gd", "GD"), ("ngd", "NGD"), ("ef", "EFGD")):
      b = res[name]["best"][method]
      lam = "" if method == "gd" else f", λ=1e{np.log10(b['damping']):.1f}"
      axes[0, col].semilogy(b["losses"], label=f"{label} γ=1e"
                            f"{np.log10(b['gamma']):.2f}{lam}")
    axes[0, col].set_title(name)
    axes[0, col].set_xlabel("iteration")
    axes[0, col].legend(fontsize=7)
    axes[1, col].plot(res[name]["cos"])
    axes[1, col].axhline(0.0, color="k", lw=0.5)
    axes[1, col].set_ylim(-1.05, 1.05)
    axes[1, col].set_xlabel("iteration (EFGD path)")
    axes[1, col].set_ylabel("cos(F̃⁻¹∇R, F⁻¹∇R)")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def table_d5(res) -> dict:
  """Selected log10 (γ; λ) per present data set next to Table D.5."""
  out = {}
  for name, r in res.items():
    sel = {}
    for method, b in r["best"].items():
      sel[method] = ([round(np.log10(b["gamma"]), 3)] if method == "gd" else
                     [round(np.log10(b["gamma"]), 3),
                      round(np.log10(b["damping"]), 3)])
    out[name] = dict(selected=sel, thesis=TABLE_D5.get(name))
  return out


def spearman(a, b) -> float:
  """Spearman's rank correlation (NaN if either sequence is constant)."""
  from scipy.stats import rankdata  # pylint: disable=import-outside-toplevel
  ra, rb = rankdata(a), rankdata(b)
  if np.ptp(ra) == 0 or np.ptp(rb) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def from_starts(prob: F.GLM, star, starts, hyper: dict) -> tuple[dict, dict]:
  """Per method, the fraction ``(R(θ100) − R*)/(R(θ0) − R*)`` left from each
  start (``inf``: diverged) and the curves ``R(θ_t) − R*``."""
  # R − R* exactly for least squares (no cancellation near θ*).
  gap = lambda th: 0.5 * float(np.mean((prob.x @ (th - star)) ** 2))
  frac, curves = {}, {}
  for method in ("ngd", "ef"):
    frac[method], curves[method] = [], []
    for theta0 in starts:
      _, path = F.run_preconditioned(prob, method, theta0,
                                     hyper[method]["gamma"],
                                     hyper[method]["damping"], ITERS,
                                     record_path=True)
      gaps = np.array([gap(th) for th in path])
      curves[method].append(gaps)
      frac[method].append(float(gaps[-1] / gaps[0]) if len(path) == ITERS + 1
                          else float("inf"))
  return frac, curves


def plot_init(path: Path, initial, curves: dict, best: dict) -> None:
  """Fig 7.4: R(θ_t) − R* from each start, coloured by the initial loss."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
  norm = matplotlib.colors.LogNorm(min(initial), max(initial))
  for ax, method in zip(axes, ("ngd", "ef")):
    for loss0, gaps in zip(initial, curves[method]):
      ax.semilogy(np.maximum(gaps, 1e-300), color=plt.cm.viridis(norm(loss0)))
    ax.set_title(f"{'NGD' if method == 'ngd' else 'EFGD'} (Boston), "
                 f"γ=1e{np.log10(best[method]['gamma']):.2f}")
    ax.set_xlabel("iteration")
  axes[0].set_ylabel("R(θ) − R*")
  fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes,
               label="initial loss")
  fig.savefig(path, dpi=80)
  plt.close(fig)
