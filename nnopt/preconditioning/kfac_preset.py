"""K-FAC as an option set of the covariance preconditioner (Kreis §2.5.4).

K-FAC (Martens & Grosse 2015) uses the same Kronecker factors as
:func:`nnopt.preconditioning.frobenius.scale_by_frobenius` (uncentered second
moments, model-sampled targets) with its own practical choices:

* factored Tikhonov damping with π-balancing,
  ``(A + π√λ I) ⊗ (G + √λ/π I)``, ``π² = (tr A/m)/(tr G/n)``;
* an exponential moving average of the factors, updated every step
  (``curvature_ema`` = weight of the old estimate, kfac-jax's convention);
* inverses recomputed only every ``inverse_update_period`` steps;
* optional heavy-ball momentum;
* the bias in homogeneous coordinates.

Not included: the adaptive Levenberg–Marquardt λ and the quadratic-model
step size/momentum (α*, μ) of the original; use a fixed learning rate or an
optax schedule.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import optax

from nnopt.stats.kronecker import FactorError
from nnopt.preconditioning.frobenius import scale_by_frobenius


def scale_by_kfac(damping: float = 1e-3, *, curvature_ema: float = 0.95,
                  inverse_update_period: int = 20, fisher: str = "sampled",
                  bias: str = "homogeneous", solver: str = "cholesky",
                  layer_rules: Mapping[str, str] | None = None,
                  **options: Any) -> optax.GradientTransformationExtraArgs:
  """K-FAC's preconditioner: ``((A + π√λ I) ⊗ (G + √λ/π I))^{-1} vec(∇)``.

  Args:
    damping: λ > 0, the total Tikhonov damping (γ_x γ_y = λ).
    curvature_ema: weight of the previous factor estimate, in [0, 1).
    inverse_update_period: recompute the damped inverses every this many
      steps (the factors are updated every step).
    fisher: ``'sampled'`` (Fisher, K-FAC's choice) or ``'empirical'``.
    bias: see :func:`scale_by_frobenius` (K-FAC: ``'homogeneous'``).
    solver: ``'eigh'`` or ``'cholesky'``.
    layer_rules: per-layer fallbacks, see :func:`scale_by_frobenius`.
    **options: further options of :func:`scale_by_frobenius`.

  References:
    Kreis §2.5.4 (with pitfall P15); Martens & Grosse (2015) §6.
  """
  if not (float(damping) > 0 and math.isfinite(float(damping))):
    raise FactorError(f"damping must be a finite number > 0, got {damping!r}")
  if not 0.0 <= float(curvature_ema) < 1.0:
    raise FactorError(f"curvature_ema must be in [0, 1), got {curvature_ema!r}")
  root = math.sqrt(float(damping))
  return scale_by_frobenius(
      root, root, pi_damping=True, estimation="ema_cov",
      ema_weight=1.0 - float(curvature_ema), curvature_period=1,
      refresh_period=inverse_update_period, fisher=fisher, bias=bias,
      solver=solver, layer_rules=layer_rules, **options)


def kfac(learning_rate: optax.ScalarOrSchedule, damping: float = 1e-3,
         curvature_ema: float = 0.95, inverse_update_period: int = 20,
         momentum: float = 0.0, fisher: str = "sampled",
         bias: str = "homogeneous", solver: str = "cholesky",
         layer_rules: Mapping[str, str] | None = None,
         **options: Any) -> optax.GradientTransformationExtraArgs:
  """K-FAC with fixed learning rate and optional momentum.

  .. math::
    d_k = μ d_{k-1} + \\hat F^{-1} ∇ \\hat f, \\qquad θ_{k+1} = θ_k − α d_k

  Args:
    learning_rate: α, a float or an optax schedule.
    damping, curvature_ema, inverse_update_period, fisher, bias, solver,
      layer_rules, **options: see :func:`scale_by_kfac`.
    momentum: μ (0 disables it).
  """
  parts = [scale_by_kfac(damping, curvature_ema=curvature_ema,
                         inverse_update_period=inverse_update_period,
                         fisher=fisher, bias=bias, solver=solver,
                         layer_rules=layer_rules, **options)]
  if momentum:
    parts.append(optax.trace(decay=momentum))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)
