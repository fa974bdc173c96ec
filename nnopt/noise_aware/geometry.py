"""The geometry of sign descent (Balles ch. 6): ℓ∞ and separable smoothness.

For a quadratic with Hessian H, smoothness w.r.t. a norm is the induced matrix
norm (Prop 6.3). Sign descent is steepest descent w.r.t. ℓ∞, whose constant is

.. math::  L_\\infty = \\|H\\|_{\\infty,1} = \\max_{\\|\\theta\\|_\\infty \\le 1}
           \\|H\\theta\\|_1 = \\max_{\\theta,\\theta' \\in \\{\\pm1\\}^d}
           \\theta^T H \\theta'   (6.18, C.55)

(NP-hard; here by brute force over ``{±1}^d``, d ≤ 20). With λ_i, v^(i) the
eigenpairs and ``ρ_diag = Σ|H_ii| / Σ|H_ij|``:

* (6.22)  ``L2 ≤ L∞ ≤ d L2``,
* Prop 6.4 ``L∞ ≤ Σ_ij |H_ij| = ρ_diag^{-1} Σ λ_i`` (H PSD),
* Prop 6.5 ``L∞ ≤ Σ |λ_i| ‖v^(i)‖_1²``,
* (6.21)  ``L∞ ≥ |λ_i| ‖v^(i)‖_1 / ‖v^(i)‖_∞``,
* Prop 6.6 ``L∞ ≤ L_sep ≤ ρ_diag^{-1} tr H`` with
  ``L_sep = min Σ l_i s.t. H ⪯ diag(l)``.

In 2-D (App. C.2): ``L∞ = L_sep = a + d + 2|b|`` with the optimal separable
bound ``l = (a + |b|, d + |b|)``; for ``H = R(ω) diag(λmax, 1) R(ω)ᵀ``,
``L∞ = λmax + 1 + (λmax − 1)|sin 2ω|``.
"""

from __future__ import annotations

import itertools

import numpy as np


class GeometryError(ValueError):
  """Bad input for a geometry routine."""


def _square(h) -> np.ndarray:
  h = np.asarray(h, np.float64)
  if h.ndim != 2 or h.shape[0] != h.shape[1]:
    raise GeometryError(f"need a square matrix, got shape {h.shape}")
  return h


def sign_vectors(d: int) -> np.ndarray:
  """All of {±1}^d with the first entry +1 (θ ↔ −θ symmetry), 2^{d−1} × d."""
  if d > 20:
    raise GeometryError(f"brute force over 2^{d} sign vectors is too large "
                        "(d <= 20)")
  rest = np.array(list(itertools.product((1.0, -1.0), repeat=d - 1)))
  rest = rest.reshape(-1, d - 1)
  return np.concatenate([np.ones((len(rest), 1)), rest], axis=1)


def linf_matrix_norm(h) -> float:
  """``‖H‖_{∞,1} = max_{θ∈{±1}^d} ‖Hθ‖_1`` by brute force (6.18)."""
  h = _square(h)
  signs = sign_vectors(h.shape[0])
  return float(np.max(np.abs(signs @ h.T).sum(axis=1)))


def l2_norm(h) -> float:
  """Spectral norm (= λ_max for PSD H): the Euclidean smoothness L2."""
  return float(np.linalg.norm(_square(h), 2))


def rho_diag(h) -> float:
  """Diagonal concentration ``Σ|H_ii| / Σ_ij |H_ij|`` ∈ [1/d, 1] (Prop 6.4)."""
  h = _square(h)
  return float(np.abs(np.diag(h)).sum() / np.abs(h).sum())


def prop64_bound(h) -> float:
  """``Σ_ij |H_ij|`` (= ρ_diag^{-1} tr H for PSD H), Prop 6.4."""
  return float(np.abs(_square(h)).sum())


def prop65_bound(h) -> float:
  """``Σ_i |λ_i| ‖v^(i)‖_1²`` for symmetric H, Prop 6.5."""
  lam, vec = np.linalg.eigh(_square(h))
  return float(np.sum(np.abs(lam) * np.abs(vec).sum(axis=0) ** 2))


def eigen_lower_bound(h) -> float:
  """``max_i |λ_i| ‖v^(i)‖_1 / ‖v^(i)‖_∞`` (6.21)."""
  lam, vec = np.linalg.eigh(_square(h))
  ratio = np.abs(vec).sum(axis=0) / np.abs(vec).max(axis=0)
  return float(np.max(np.abs(lam) * ratio))


def separable_bound(h) -> np.ndarray:
  """``l_i = Σ_j |H_ij|``: diag(l) − H is diagonally dominant, so H ⪯ diag(l)
  (the upper bound of Prop 6.6)."""
  return np.abs(_square(h)).sum(axis=1)


def lsep_2d(h) -> tuple[float, np.ndarray]:
  """Closed-form ``L_sep`` and the optimal ``l = (a+|b|, d+|b|)`` in 2-D."""
  h = _square(h)
  if h.shape != (2, 2):
    raise GeometryError("lsep_2d needs a 2x2 matrix")
  a, b, d = h[0, 0], h[0, 1], h[1, 1]
  l = np.array([a + abs(b), d + abs(b)])
  return float(l.sum()), l


def linf_2d(h) -> float:
  """Closed form ``L∞ = a + d + 2|b|`` for a 2x2 PSD H (C.14)."""
  h = _square(h)
  return float(h[0, 0] + h[1, 1] + 2 * abs(h[0, 1]))


def rotation_2d(omega: float) -> np.ndarray:
  c, s = np.cos(omega), np.sin(omega)
  return np.array([[c, -s], [s, c]])


def hessian_2d(lam_max: float, omega: float) -> np.ndarray:
  """``R(ω) diag(λmax, 1) R(ω)ᵀ``."""
  r = rotation_2d(omega)
  return r @ np.diag([lam_max, 1.0]) @ r.T


def linf_2d_rotated(lam_max: float, omega) -> np.ndarray:
  """``L∞ = λmax + 1 + (λmax − 1)|sin 2ω|`` (App. C.2)."""
  return lam_max + 1 + (lam_max - 1) * np.abs(np.sin(2 * np.asarray(omega)))


def density(g) -> float:
  """Gradient density ``φ(ω) = ‖ω‖_1² / (d ‖ω‖_2²)`` ∈ [1/d, 1] (6.29)."""
  g = np.ravel(np.asarray(g, np.float64))
  return float(np.abs(g).sum() ** 2 / (g.size * (g * g).sum()))


def improvement_ratio(g, l2: float, linf: float) -> float:
  """``R = I_sign / I_GD = φ(g) d L2 / L∞`` (6.27)–(6.30)."""
  g = np.ravel(np.asarray(g, np.float64))
  return density(g) * g.size * l2 / linf


def fractional_rotation(r: np.ndarray, phi: float) -> np.ndarray:
  """``R^φ = Re(U D^φ U*)`` from the complex eigendecomposition (principal
  branch), spec §5.6."""
  vals, vecs = np.linalg.eig(np.asarray(r, np.float64))
  powered = vecs @ np.diag(vals.astype(complex) ** phi) @ np.linalg.inv(vecs)
  return np.real(powered)


def rotated_hessian(d: int, lam_max: float, phi: float,
                    rotation: np.ndarray) -> np.ndarray:
  """``H = R^φ Λ (R^φ)ᵀ`` with ``Λ = diag(1, …, 1, λmax)`` (Fig 6.3 set-up)."""
  lam = np.ones(d)
  lam[-1] = lam_max
  rp = fractional_rotation(rotation, phi)
  return rp @ np.diag(lam) @ rp.T


def random_rotation(d: int, seed: int) -> np.ndarray:
  """A Haar-distributed rotation in SO(d) (``scipy.stats.special_ortho_group``)."""
  from scipy.stats import special_ortho_group  # pylint: disable=import-outside-toplevel
  return special_ortho_group.rvs(d, random_state=seed)


def run_gd_vs_sign(h: np.ndarray, theta0: np.ndarray, steps: int = 100
                   ) -> tuple[float, float]:
  """``‖θ_T‖²`` of GD (α = 1/L2) and norm-scaled sign GD (6.10) (α = 1/L∞)
  on ``f = ½θᵀHθ``."""
  l2, linf = l2_norm(h), linf_matrix_norm(h)
  gd, sg = theta0.copy(), theta0.copy()
  for _ in range(steps):
    gd = gd - (h @ gd) / l2
    grad = h @ sg
    sg = sg - np.abs(grad).sum() * np.sign(grad) / linf
  return float(gd @ gd), float(sg @ sg)


__all__ = [
    "GeometryError", "density", "eigen_lower_bound", "fractional_rotation",
    "hessian_2d", "improvement_ratio", "l2_norm", "linf_2d", "linf_2d_rotated",
    "linf_matrix_norm", "lsep_2d", "prop64_bound", "prop65_bound",
    "random_rotation", "rho_diag", "rotated_hessian", "rotation_2d",
    "run_gd_vs_sign", "separable_bound", "sign_vectors",
]
