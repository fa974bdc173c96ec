"""Covariance-driven layer-wise preconditioning (Kreis §5.3.2, eq. (5.15)).

Every Dense or Conv layer's kernel gradient K (flax layout, (m, n) = Wᵀ) is
replaced by its gradient in the Frobenius-type inner product whose Gram
matrices are the damped inverse input covariance and the damped covariance of
the output gradients:

.. math::
  P = (A + γ_x I)^{-1} K (G + γ_y I)^{-1}, \\qquad
  p_b = (G + γ_y I)^{-1} ∇_b

with A, G the (centered or uncentered) second moments of the layer inputs
and of the per-example pre-activation gradients. :func:`scale_by_frobenius`
is the thesis's option set over the composable pieces
:func:`~nnopt.preconditioning.kronecker_factors` (factor estimation),
:func:`~nnopt.preconditioning.damped_inverses` (damping and inversion) and
:func:`~nnopt.preconditioning.scale_by_kronecker` (preconditioning of
kernels and biases); :func:`frobenius_sgd` chains it with a learning rate.

The transform declares what it needs from the step (layer statistics, and
one model-sampled target per example for ``fisher='sampled'``):
``nnopt.required_needs(optimizer, params)`` reads it, the engine captures
it, and ``update`` takes it as the keyword extra arg ``stats`` (with
``weights``, the padding mask, when given).
"""

from __future__ import annotations

from typing import Mapping

import optax

from jax.sharding import Mesh

from nnopt.models.layers import LayerInfo
from nnopt.preconditioning.estimation import kronecker_factors
from nnopt.preconditioning.inversion import damped_inverses
from nnopt.preconditioning.layer_plan import check_choice, check_range
from nnopt.preconditioning.preconditioner import scale_by_kronecker

ESTIMATIONS = ("batch", "ema_cov", "ema_inverse")


def scale_by_frobenius(
    damping_x: float = 1e-2, damping_y: float = 1e-2, *,
    centered: bool = False, fisher: str = "sampled",
    fisher_samples: int | None = None, estimation: str = "batch",
    ema_weight: float = 1.0, ema_debias: bool = False,
    ema_reference: str = "running", refresh_period: int = 1,
    curvature_period: int | None = None, solver: str = "cholesky",
    bias: str = "separate", pi_damping: bool = False,
    cotangent_scale: float = 1.0,
    layer_rules: Mapping[str, str] | None = None,
    default_rule: str = "kronecker", max_factor_dim: int = 8192,
    layer_info: Mapping[str, LayerInfo] | None = None,
    track_spectra: bool = False, track_norms: bool = False,
    distribute_inverses: bool | str = False, mesh: Mesh | None = None,
    mesh_axis: str = "data",
) -> optax.GradientTransformationExtraArgs:
  """Layer-wise Frobenius-type preconditioning with covariance factors.

  .. math::
    P_i = (A_i + γ_x I)^{-1} K_i (G_i + γ_y I)^{-1}, \\quad
    p_{b_i} = (G_i + γ_y I)^{-1} ∇_{b_i}

  Args:
    damping_x: γ_x > 0 on the input (activation) side, γ_2 of (5.15).
    damping_y: γ_y > 0 on the output (gradient) side, γ_1 of (5.15). With
      ``fisher='empirical'`` G is B (batch size) times kfac-jax's
      ``fisher_empirical`` G, so a γ_y tuned there is B·γ_y here (see
      :func:`nnopt.preconditioning.scale_by_kfac`).
    centered: covariances (5.8)/(5.12) instead of second moments.
    fisher: ``'sampled'``: G from targets sampled from the model (Fisher,
      ``LayerStats.sampled_cotangents``, the thesis default); ``'empirical'``:
      from the true labels (empirical Fisher, Remark 5.5).
    fisher_samples: targets sampled per example for ``'sampled'`` (default
      1), declared as the step's need. Under ``optax.inject_hyperparams``
      pass it in ``static_args``.
    estimation: ``'batch'`` (recompute from the current batch, (5.11));
      ``'ema_cov'`` (EMA of the factors); ``'ema_inverse'`` (EMA of the
      damped inverses). §5.3.2.
    ema_weight: β, the weight of the NEW estimate (thesis convention; a
      K-FAC decay d corresponds to β = 1 − d).
    ema_debias: False (default, the thesis's §5.3.2: the first estimate
      initializes the EMA, then the constant weight β); True: the
      weight-normalized (debiased) average of kfac-jax,
      ``Σ_j (1−β)^{k−j} Ĉ_j / Σ_j (1−β)^{k−j}``
      (:mod:`nnopt.preconditioning.estimation`).
    ema_reference: with ``'ema_cov'``, whether β mixes the new batch with
      the running estimate (``'running'``) or with the previous batch's raw
      estimate (``'last_batch'``); spec P9.
    refresh_period: K, recompute the preconditioner every K steps and reuse
      it in between (`lax.cond`, one compilation).
    curvature_period: update the factor statistics every this many steps
      (default: ``refresh_period``; K-FAC uses 1 with an EMA).
    solver: ``'cholesky'`` (falls back to eigh when the damped factor is
      numerically indefinite) or ``'eigh'``.
    bias: ``'separate'`` (Remark 5.3), ``'homogeneous'`` (K-FAC) or
      ``'identity'`` (bias not preconditioned).
    pi_damping: K-FAC's π-adjusted factored Tikhonov damping (keeps
      ``γ_x γ_y``, see :func:`nnopt.preconditioning.pi_damping`).
    cotangent_scale: extra factor on G (e.g. the output dimension for
      BackPACK's convention with a torch-style mean squared error, spec P11).
    layer_rules: ``{layer path or glob: 'kronecker'|'diagonal'|'identity'}``.
    default_rule: rule of tagged layers not matched by ``layer_rules``.
    max_factor_dim: a ``'kronecker'`` layer with a larger factor is an error
      (suggesting ``'diagonal'``) instead of an out-of-memory.
    layer_info: ``nnopt.stats.capture.layer_info(...)`` for convolutions whose
      stride/padding cannot be inferred from shapes.
    track_spectra: store the eigenvalues of the undamped factors.
    track_norms: store per-layer gradient norms (diagnostics).
    distribute_inverses: compute each layer's damped inverses on one device
      of the mesh axis ``mesh_axis`` (blocks assigned by cost ``n³``) and
      share them, instead of on every device; False (default), True or
      ``'auto'`` (:func:`nnopt.preconditioning.damped_inverses`,
      docs/distributed_inverses.md).
    mesh: the step's ``jax.sharding.Mesh`` (None: the ambient mesh).
    mesh_axis: the mesh axis the inverses are spread over.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (state
    :class:`~nnopt.preconditioning.FrobeniusState`); ``update`` takes the
    keyword extra args ``stats`` (required) and ``weights`` (optional).

  References:
    Kreis, Lemma 5.2 (5.4), (5.8)–(5.15), Remarks 5.3 and 5.5;
    Martens & Grosse (2015); Grosse & Martens (2016) for convolutions.
  """
  check_choice("estimation", estimation, ESTIMATIONS)
  check_range("ema_weight", ema_weight, 0.0, 1.0)
  factors = kronecker_factors(
      fisher=fisher, fisher_samples=fisher_samples, centered=centered,
      cotangent_scale=cotangent_scale,
      ema_weight=ema_weight if estimation == "ema_cov" else None,
      ema_debias=ema_debias, ema_reference=ema_reference,
      layer_info=layer_info)
  inverses = damped_inverses(
      damping_x, damping_y, pi_damping=pi_damping, solver=solver,
      ema_weight=ema_weight if estimation == "ema_inverse" else None,
      ema_debias=ema_debias, track_spectra=track_spectra,
      distribute=distribute_inverses, mesh=mesh, mesh_axis=mesh_axis)
  return scale_by_kronecker(
      factors, inverses, bias=bias, layer_rules=layer_rules,
      default_rule=default_rule, max_factor_dim=max_factor_dim,
      curvature_period=(refresh_period if curvature_period is None
                        else curvature_period),
      refresh_period=refresh_period, track_norms=track_norms)


def frobenius_sgd(
    learning_rate: optax.ScalarOrSchedule,
    damping_x: float = 1e-2, damping_y: float = 1e-2, *,
    centered: bool = False, fisher: str = "sampled",
    fisher_samples: int | None = None, estimation: str = "batch",
    ema_weight: float = 1.0, ema_debias: bool = False,
    ema_reference: str = "running", refresh_period: int = 1,
    curvature_period: int | None = None, solver: str = "cholesky",
    bias: str = "separate", pi_damping: bool = False,
    cotangent_scale: float = 1.0,
    layer_rules: Mapping[str, str] | None = None,
    default_rule: str = "kronecker", max_factor_dim: int = 8192,
    layer_info: Mapping[str, LayerInfo] | None = None,
    track_spectra: bool = False, track_norms: bool = False,
    distribute_inverses: bool | str = False, mesh: Mesh | None = None,
    mesh_axis: str = "data",
) -> optax.GradientTransformationExtraArgs:
  """Plain SGD on the covariance-preconditioned gradient (the thesis's method).

  .. math::
    W_i ← W_i − α (G_i + γ_y I)^{-1} ∇_{W_i} \\hat f (A_i + γ_x I)^{-1}

  Args:
    learning_rate: α, a float or an optax schedule.
    damping_x: γ_x (input side).
    damping_y: γ_y (output side).
    centered, fisher, fisher_samples, estimation, ema_weight, ema_debias,
      ema_reference, refresh_period, curvature_period, solver, bias,
      pi_damping, cotangent_scale, layer_rules, default_rule,
      max_factor_dim, layer_info, track_spectra, track_norms,
      distribute_inverses, mesh, mesh_axis: see
      :func:`scale_by_frobenius`.

  Returns:
    ``optax.chain(scale_by_frobenius(...), scale_by_learning_rate(α))``.

  References:
    Kreis (5.15) and §5.3.3 (fixed lr, no momentum, second moments).
  """
  return optax.chain(
      scale_by_frobenius(
          damping_x, damping_y, centered=centered, fisher=fisher,
          fisher_samples=fisher_samples, estimation=estimation,
          ema_weight=ema_weight, ema_debias=ema_debias,
          ema_reference=ema_reference, refresh_period=refresh_period,
          curvature_period=curvature_period, solver=solver, bias=bias,
          pi_damping=pi_damping, cotangent_scale=cotangent_scale,
          layer_rules=layer_rules, default_rule=default_rule,
          max_factor_dim=max_factor_dim, layer_info=layer_info,
          track_spectra=track_spectra, track_norms=track_norms,
          distribute_inverses=distribute_inverses, mesh=mesh,
          mesh_axis=mesh_axis),
      optax.scale_by_learning_rate(learning_rate))


__all__ = ["ESTIMATIONS", "frobenius_sgd", "scale_by_frobenius"]
