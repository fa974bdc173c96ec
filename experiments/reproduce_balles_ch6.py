"""Balles ch. 6 Tier A: 2-D geometry (Fig 6.1/6.2, A9), the d = 10 quadratic
experiment (Fig 6.3, A10) and the smoothness bounds on random matrices (A11),
with :mod:`nnopt.noise_aware.geometry` (brute-force L∞ over {±1}^d)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from nnopt.noise_aware import geometry as G  # pylint: disable=wrong-import-position
from nnopt.reproduce import Claims, Reproduction  # pylint: disable=wrong-import-position


def two_d(claims: Claims, out: Path) -> None:
  item = "Fig 6.1, 6.2"
  lams = [2.0, 5.0, 10.0, 50.0]
  omegas = np.linspace(0, np.pi / 2, 19)
  err_closed, err_abd, inside, lmax_ok = 0.0, 0.0, True, True
  for lam in lams:
    for om in omegas:
      h = G.hessian_2d(lam, om)
      brute = G.linf_matrix_norm(h)
      err_closed = max(err_closed, abs(brute - G.linf_2d_rotated(lam, om)) / brute)
      err_abd = max(err_abd, abs(brute - G.linf_2d(h)) / brute)
      _, l = G.lsep_2d(h)
      inside &= np.linalg.eigvalsh(np.diag(l) - h).min() >= -1e-9
      lmax_ok &= l.max() >= lam - 1e-9
  claims.check(item, "brute-force L∞ = λmax+1+(λmax−1)|sin 2ω| = a+d+2|b|",
               max(err_closed, err_abd) < 1e-12, rel_err_closed=err_closed,
               rel_err_abd=err_abd)
  claims.check(item, "the separable-smoothness ellipse lies inside the "
               "H-ellipse (diag(l) ⪰ H) and l_max ≥ λmax", inside and lmax_ok)
  _, l = G.lsep_2d(G.hessian_2d(10, 0.3))
  claims.check(item, "example λmax = 10, ω = 0.3: l = (11.75, 4.33)",
               np.allclose(l, [11.75, 4.33], atol=0.01), l=l)
  fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
  t = np.linspace(0, 2 * np.pi, 200)
  circle = np.stack([np.cos(t), np.sin(t)])
  for ax, om in zip(axes, (0.0, np.pi / 12, np.pi / 6, np.pi / 4)):
    h = G.hessian_2d(10.0, om)
    _, l = G.lsep_2d(h)
    for mat, label in ((h, "H"), (np.diag(l), "diag(l)"),
                       (10.0 * np.eye(2), "λmax I")):
      w, v = np.linalg.eigh(mat)
      pts = v @ (circle / np.sqrt(w)[:, None])
      ax.plot(pts[0], pts[1], label=label)
    ax.set_aspect("equal")
    ax.set_title(f"ω={om:.2f}, L∞={G.linf_matrix_norm(h):.1f}", fontsize=8)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out / "fig6_1_6_2.png", dpi=80)
  plt.close(fig)


def quadratics(claims: Claims, out: Path, inits: int, lams, phis) -> None:
  item = "Fig 6.3"
  d = 10
  rot = G.random_rotation(d, 0)
  rng = np.random.default_rng(0)
  ratio = np.zeros((len(phis), len(lams)))
  lratio = np.zeros_like(ratio)
  for i, phi in enumerate(phis):
    for j, lam in enumerate(lams):
      h = G.rotated_hessian(d, lam, phi, rot)
      h = 0.5 * (h + h.T)
      lratio[i, j] = G.linf_matrix_norm(h) / G.l2_norm(h)
      gd, sg = [], []
      for _ in range(inits):
        a, b = G.run_gd_vs_sign(h, rng.normal(size=d))
        gd.append(a)
        sg.append(b)
      ratio[i, j] = np.mean(gd) / np.mean(sg)
  lam_bar = [(d - 1 + lam) / d for lam in lams]
  x = [lam / lb for lam, lb in zip(lams, lam_bar)]
  fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
  im = ax[0].imshow(lratio, origin="lower", aspect="auto")
  fig.colorbar(im, ax=ax[0])
  ax[0].set_title("L∞ / L2")
  im = ax[1].imshow(np.clip(np.log10(ratio), -3, 3), origin="lower",
                    aspect="auto", cmap="coolwarm")
  ax[1].contour(np.log10(ratio), levels=[0], colors="k", linestyles="--")
  fig.colorbar(im, ax=ax[1])
  ax[1].set_title("log10(dist_GD / dist_sign)")
  for a in ax:
    a.set_xticks(range(len(lams)), [f"{v:.1f}" for v in x])
    a.set_yticks(range(len(phis)), [str(p) for p in phis])
    a.set_xlabel("λmax / λ̄")
    a.set_ylabel("φ")
  fig.tight_layout()
  fig.savefig(out / "fig6_3_quadratics.png", dpi=80)
  plt.close(fig)
  j10, j100, j2 = lams.index(10.0), lams.index(100.0), lams.index(2.0)
  claims.check(item, "φ = 0 (H = Λ, independent of the rotation): sign GD wins, "
               "dist_GD/dist_sign ≈ 100 at λmax = 10 and ≈ 82 at λmax = 100 "
               "(within a factor 2)", 50 < ratio[0, j10] < 200
               and 41 < ratio[0, j100] < 164, at_10=ratio[0, j10],
               at_100=ratio[0, j100])
  claims.check(item, "GD wins by huge factors at small λmax/λ̄ (λmax = 2: "
               "dist ratio ~1e-40 at every φ)", ratio[:, j2].max() < 1e-20,
               max_ratio_at_2=ratio[:, j2].max())
  big_phi = [i for i, p in enumerate(phis) if p >= 0.3]
  claims.check(item, "sign GD wins only for large λmax/λ̄ and small φ: it "
               "loses (ratio < 1) everywhere with φ ≥ 0.3",
               ratio[big_phi].max() < 1, max_ratio_phi_ge_03=ratio[big_phi].max())
  expect = (d - 1 + 100.0) / 100.0
  claims.check(item, "L∞/L2 = (d−1+λmax)/λmax at φ = 0 (1.09 at λmax = 100) "
               "and 4–7 for φ ≥ 0.3 at λmax = 100",
               abs(lratio[0, j100] - expect) < 1e-9
               and 3.5 <= lratio[big_phi, j100].min()
               and lratio[big_phi, j100].max() <= 7.5,
               phi0=lratio[0, j100], phi_ge_03=lratio[big_phi, j100])


def properties(claims: Claims, n: int) -> None:
  item = "(6.21)-(6.26), Props 6.4-6.6"
  rng = np.random.default_rng(5)
  fails = {k: 0 for k in ("6.22", "6.26", "6.4", "6.5", "6.21")}
  for _ in range(n):
    d = int(rng.integers(2, 9))
    a = rng.normal(size=(d, d)) * rng.uniform(0.1, 3, size=d)
    h = a @ a.T
    l2, linf = G.l2_norm(h), G.linf_matrix_norm(h)
    tol = 1e-9 * linf
    fails["6.22"] += not (l2 <= linf + tol and linf <= d * l2 + tol)
    lsep_upper = G.separable_bound(h).sum()
    fails["6.26"] += not (linf <= lsep_upper + tol and abs(
        lsep_upper - np.trace(h) / G.rho_diag(h)) < tol + 1e-9)
    fails["6.4"] += not linf <= G.prop64_bound(h) + tol
    s = rng.normal(size=(d, d))
    sym = s + s.T
    ls = G.linf_matrix_norm(sym)
    fails["6.5"] += not (ls <= G.prop65_bound(sym) + 1e-9 * ls
                         and linf <= G.prop65_bound(h) + tol)
    fails["6.21"] += not (G.eigen_lower_bound(h) <= linf + tol
                          and G.eigen_lower_bound(sym) <= ls + 1e-9 * ls)
  claims.check(item, f"L2 ≤ L∞ ≤ dL2; L∞ ≤ Σ_i l_i = ρ_diag^{{-1}} tr H; Props "
               f"6.4, 6.5 and (6.21) hold on {n} random matrices",
               sum(fails.values()) == 0, violations=fails, matrices=n)


def run(out_dir: Path, quick: bool) -> Claims:
  out = Path(out_dir)
  claims = Claims("balles")
  two_d(claims, out)
  lams = [2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
  phis = [0.0, 0.1, 0.3, 0.5, 1.0] if quick else [0.0, 0.05, 0.1, 0.2, 0.3,
                                                  0.5, 0.7, 1.0]
  quadratics(claims, out, inits=5 if quick else 20, lams=lams, phis=phis)
  properties(claims, 50 if quick else 500)
  return claims


REPRODUCTION = Reproduction(
    id="balles_ch6", thesis="balles",
    items=("Fig 6.1, 6.2", "Fig 6.3", "(6.21)-(6.26), Props 6.4-6.6"), run=run,
    title="Balles ch. 6: ℓ∞ smoothness, separable bounds, GD vs sign GD",
    cost="8 s measured (quick: 15 s)",
    smoke=("the same quadratics with 5 initializations, 5 values of φ and 50"
           " random matrices"))
