"""K-FAC as an option set of the covariance preconditioner (Kreis §2.5.4).

K-FAC (Martens & Grosse 2015) uses the same Kronecker factors as
:func:`nnopt.preconditioning.scale_by_frobenius` (uncentered second moments,
model-sampled targets) with its own practical choices:

* factored Tikhonov damping with π-balancing,
  ``(A + π√λ I) ⊗ (G + √λ/π I)``, ``π² = (tr A/m)/(tr G/n)``;
* an exponential moving average of the factors, updated every step
  (``curvature_ema`` = weight d of the old estimate, kfac-jax's convention),
  by default weight-normalized (debiased) from the first step as in
  kfac-jax: ``A_k = Σ_j d^{k−j} Â_j / Σ_j d^{k−j}``; with
  ``ema_debias=False`` the thesis's convention (first estimate, then
  ``(1−d)`` on each new one);
* inverses recomputed only every ``inverse_update_period`` steps;
* optional heavy-ball momentum;
* the bias in homogeneous coordinates.

Not included: the adaptive Levenberg–Marquardt λ and the quadratic-model
step size/momentum (α*, μ) of the original; use a fixed learning rate or an
optax schedule.

**Damping and kfac-jax's empirical Fisher.** nnopt's G is the second moment
of per-example gradients. kfac-jax's ``fisher_empirical`` estimation
divides its VJP vector by √B, so its G is B times smaller than nnopt's
``fisher='empirical'`` G (its ``fisher_exact`` G from sampled targets has
nnopt's scale). With π-damping, ``λ → Bλ`` leaves the A side unchanged and
scales the G side by B, so a damping λ and a fixed learning rate α tuned
for kfac-jax's ``fisher_empirical`` are ``damping=B·λ`` and
``learning_rate=B·α`` here (equivalently ``cotangent_scale=1/B`` at λ, α).
"""

from __future__ import annotations

from typing import Mapping

import optax

from jax.sharding import Mesh

from nnopt.models.layers import LayerInfo
from nnopt.preconditioning.estimation import kronecker_factors
from nnopt.preconditioning.inversion import damped_inverses
from nnopt.preconditioning.layer_plan import check_positive, check_range
from nnopt.preconditioning.preconditioner import scale_by_kronecker


def scale_by_kfac(
    damping: float = 1e-3, *, curvature_ema: float = 0.95,
    ema_debias: bool = True, inverse_update_period: int = 20,
    fisher: str = "sampled", fisher_samples: int | None = None,
    bias: str = "homogeneous", solver: str = "cholesky",
    cotangent_scale: float = 1.0,
    layer_rules: Mapping[str, str] | None = None,
    default_rule: str = "kronecker", max_factor_dim: int = 8192,
    layer_info: Mapping[str, LayerInfo] | None = None,
    track_spectra: bool = False, track_norms: bool = False,
    distribute_inverses: bool | str = False, mesh: Mesh | None = None,
    mesh_axis: str = "data",
) -> optax.GradientTransformationExtraArgs:
  """K-FAC's preconditioner: ``((A + π√λ I) ⊗ (G + √λ/π I))^{-1} vec(∇)``.

  .. math::
    A_k = \\frac{\\sum_{j \\le k} d^{k-j} \\hat A_j}{\\sum_{j \\le k} d^{k-j}},
    \\quad
    P = (A_k + π\\sqrt{λ} I)^{-1} K (G_k + \\sqrt{λ}/π\\, I)^{-1}

  Args:
    damping: λ > 0, the total Tikhonov damping (γ_x γ_y = λ). For
      ``fisher='empirical'``, B times a λ tuned for kfac-jax's
      ``fisher_empirical`` (module docstring).
    curvature_ema: d, the weight of the previous factor estimate, in [0, 1).
    ema_debias: True (default, kfac-jax's convention): the weight-normalized
      average above from the first step; False: the thesis's convention,
      ``A_1 = Â_1``, ``A_k = d A_{k−1} + (1−d) Â_k``.
    inverse_update_period: recompute the damped inverses every this many
      steps (the factors are updated every step).
    fisher: ``'sampled'`` (Fisher, K-FAC's choice) or ``'empirical'``.
    fisher_samples: targets sampled per example (default 1).
    bias: see :func:`nnopt.preconditioning.scale_by_kronecker` (K-FAC:
      ``'homogeneous'``).
    solver: ``'cholesky'`` or ``'eigh'``.
    cotangent_scale: extra factor on G.
    layer_rules, default_rule, max_factor_dim, layer_info, track_spectra,
      track_norms, distribute_inverses, mesh, mesh_axis: see
      :func:`nnopt.preconditioning.scale_by_frobenius`.

  References:
    Kreis §2.5.4 (with pitfall P15); Martens & Grosse (2015) §5–6.
  """
  check_positive("damping", damping)
  check_range("curvature_ema", curvature_ema, 0.0, 1.0, low_open=False,
              high_open=True)
  root = damping ** 0.5
  factors = kronecker_factors(
      fisher=fisher, fisher_samples=fisher_samples,
      cotangent_scale=cotangent_scale, ema_weight=1.0 - curvature_ema,
      ema_debias=ema_debias, layer_info=layer_info)
  inverses = damped_inverses(root, root, pi_damping=True, solver=solver,
                             track_spectra=track_spectra,
                             distribute=distribute_inverses, mesh=mesh,
                             mesh_axis=mesh_axis)
  return scale_by_kronecker(
      factors, inverses, bias=bias, layer_rules=layer_rules,
      default_rule=default_rule, max_factor_dim=max_factor_dim,
      curvature_period=1, refresh_period=inverse_update_period,
      track_norms=track_norms)


def kfac(
    learning_rate: optax.ScalarOrSchedule, damping: float = 1e-3, *,
    curvature_ema: float = 0.95, ema_debias: bool = True,
    inverse_update_period: int = 20, momentum: float | None = None,
    fisher: str = "sampled", fisher_samples: int | None = None,
    bias: str = "homogeneous", solver: str = "cholesky",
    cotangent_scale: float = 1.0,
    layer_rules: Mapping[str, str] | None = None,
    default_rule: str = "kronecker", max_factor_dim: int = 8192,
    layer_info: Mapping[str, LayerInfo] | None = None,
    track_spectra: bool = False, track_norms: bool = False,
    distribute_inverses: bool | str = False, mesh: Mesh | None = None,
    mesh_axis: str = "data",
) -> optax.GradientTransformationExtraArgs:
  """K-FAC with fixed learning rate and optional momentum.

  .. math::
    d_k = μ d_{k-1} + \\hat F^{-1} ∇ \\hat f, \\qquad θ_{k+1} = θ_k − α d_k

  Args:
    learning_rate: α, a float or an optax schedule.
    damping: λ, see :func:`scale_by_kfac`.
    curvature_ema, ema_debias, inverse_update_period, fisher,
      fisher_samples, bias, solver, cotangent_scale, layer_rules,
      default_rule, max_factor_dim, layer_info, track_spectra, track_norms,
      distribute_inverses, mesh, mesh_axis:
      see :func:`scale_by_kfac`.
    momentum: μ (``optax.trace``); None: no momentum (no momentum buffer).

  Returns:
    ``optax.chain(scale_by_kfac(...), [trace(μ)], scale_by_learning_rate(α))``.
  """
  parts = [scale_by_kfac(
      damping, curvature_ema=curvature_ema, ema_debias=ema_debias,
      inverse_update_period=inverse_update_period, fisher=fisher,
      fisher_samples=fisher_samples, bias=bias, solver=solver,
      cotangent_scale=cotangent_scale, layer_rules=layer_rules,
      default_rule=default_rule, max_factor_dim=max_factor_dim,
      layer_info=layer_info, track_spectra=track_spectra,
      track_norms=track_norms, distribute_inverses=distribute_inverses,
      mesh=mesh, mesh_axis=mesh_axis)]
  if momentum is not None:
    parts.append(optax.trace(decay=momentum))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


__all__ = ["kfac", "scale_by_kfac"]
