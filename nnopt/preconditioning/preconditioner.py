"""Preconditioning of kernels and biases with Kronecker factors (Kreis (5.15)).

:func:`scale_by_kronecker` composes the two curvature pieces, a
:class:`~nnopt.preconditioning.estimation.FactorEstimator` (factor
estimation) and an :class:`~nnopt.preconditioning.inversion.Inverter`
(damping and inversion), into an optax transform that replaces every
planned layer's kernel gradient K (flax layout, (m, n) = Wᵀ) and bias
gradient by

.. math::
  P = R_X K R_Y^{-1}, \\qquad p_b = R_Y^{-1} ∇_b

(Lemma 5.2 (5.4), Remark 5.3), with ``R_X = (A + γ_x I)^{-1}`` and
``R_Y^{-1} = (G + γ_y I)^{-1}`` from the inverter; or, with a homogeneous
bias (K-FAC), ``[P; p_bᵀ] = R_X̃ [K; ∇_bᵀ] R_Y^{-1}`` with the inputs
augmented by a constant 1. The factors are re-estimated every
``curvature_period`` steps and the inverses refreshed every
``refresh_period`` steps (``lax.cond``: one compilation).

Factors and linear algebra use at least float32 (LAPACK has no bfloat16);
the updates keep the dtype of the incoming updates.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nnopt.preconditioning import diagnostics, solvers
from nnopt.preconditioning.estimation import (FactorEstimateState,
                                              FactorEstimator)
from nnopt.preconditioning.inversion import InverseState, Inverter
from nnopt.preconditioning.layer_plan import (BIAS_MODES, LayerPlan,
                                              check_choice, check_rules,
                                              concrete, plan_layers)
from nnopt.stats.kronecker import FactorError
from nnopt.stats.layer_keys import by_layer, from_layers
from nnopt.stats.needs import NeedsMarker, needs_marker

Array = jax.Array


class FrobeniusState(NamedTuple):
  """State of :func:`scale_by_kronecker` (and of its presets).

  Attributes:
    count: number of updates so far (int32).
    needs: the declaration of what the step must capture
      (:mod:`nnopt.stats.needs`).
    estimate: the factor estimator's state (``.factors``, ``.previous``).
    inverse: the inverter's state (``.inverses``, ``.spectra``).
    norms: ``{layer: [‖E‖_F, ‖P‖_{X→Y}, thesis variant]}`` of the last
      kernel gradient (only with ``track_norms``, else empty).

  ``factors``, ``previous``, ``inverses`` and ``spectra`` are also
  properties of this state; in a chained optimizer state
  ``optax.tree_utils.tree_get(opt_state, 'FrobeniusState')`` finds it.
  """

  count: Array
  needs: NeedsMarker
  estimate: FactorEstimateState
  inverse: InverseState
  norms: dict[str, Array]

  @property
  def factors(self) -> dict[str, tuple[Array, Array]]:
    """``(A, G)`` per layer, the current estimate."""
    return self.estimate.factors

  @property
  def previous(self) -> dict[str, tuple[Array, Array]]:
    """The last batch's raw ``(A, G)`` (``ema_reference='last_batch'``)."""
    return self.estimate.previous

  @property
  def inverses(self) -> dict[str, tuple[Array, Array]]:
    """``((A+γ_x I)^{-1}, (G+γ_y I)^{-1})`` per layer."""
    return self.inverse.inverses

  @property
  def spectra(self) -> dict[str, tuple[Array, Array]]:
    """Eigenvalues of the undamped factors at the last refresh."""
    return self.inverse.spectra


def precondition_layer(leaves: Mapping[str, Array], inverses, plan: LayerPlan,
                       bias: str) -> dict[str, Array]:
  """One layer's preconditioned ``{'kernel', 'bias'}`` (module docstring).

  Computes in ``plan.dtype``; returns the leaves' own dtypes.
  """
  inv_a, inv_g = inverses
  kernel = leaves["kernel"]
  out = dict(leaves)
  k = kernel.astype(plan.dtype)
  if plan.homogeneous:
    b = leaves["bias"]
    stacked = jnp.concatenate([k.reshape(-1, k.shape[-1]),
                               b.astype(plan.dtype)[None]], 0)
    pre = solvers.precondition_kernel(stacked, inv_a, inv_g)
    out["kernel"] = pre[:-1].reshape(kernel.shape).astype(kernel.dtype)
    out["bias"] = pre[-1].astype(b.dtype)
    return out
  out["kernel"] = solvers.precondition_kernel(k, inv_a, inv_g).astype(
      kernel.dtype)
  if "bias" in leaves and bias == "separate":
    b = leaves["bias"].astype(plan.dtype)
    pre_b = inv_g * b if inv_g.ndim == 1 else inv_g @ b
    out["bias"] = pre_b.astype(leaves["bias"].dtype)
  return out


def _every_step(period) -> bool:
  return isinstance(period, int) and not isinstance(period, bool) and \
      period == 1


def _check_period(name: str, value) -> None:
  v = concrete(value)
  if v is not None and not (v >= 1 and v == int(v)):
    raise FactorError(f"{name} must be an integer >= 1, got {value!r}")


def scale_by_kronecker(
    factors: FactorEstimator, inverses: Inverter, *,
    bias: str = "separate", layer_rules: Mapping[str, str] | None = None,
    default_rule: str = "kronecker", max_factor_dim: int = 8192,
    curvature_period: int = 1, refresh_period: int = 1,
    track_norms: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Layer-wise preconditioning with Kronecker factors (Kreis (5.15)).

  .. math::
    P_i = (A_i + γ_x I)^{-1} K_i (G_i + γ_y I)^{-1}, \\quad
    p_{b_i} = (G_i + γ_y I)^{-1} ∇_{b_i}

  Args:
    factors: the factor estimation piece,
      :func:`nnopt.preconditioning.kronecker_factors`.
    inverses: the damping and inversion piece,
      :func:`nnopt.preconditioning.damped_inverses`.
    bias: ``'separate'`` (Remark 5.3: ``(G+γ_y I)^{-1}∇_b``),
      ``'homogeneous'`` (K-FAC: inputs augmented by a constant 1, bias
      stacked under the kernel) or ``'identity'`` (bias not preconditioned).
    layer_rules: ``{layer path or glob: 'kronecker'|'diagonal'|'identity'}``
      (:mod:`nnopt.preconditioning.layer_plan`).
    default_rule: rule of tagged layers not matched by ``layer_rules``.
    max_factor_dim: a ``'kronecker'`` layer with a larger factor is an error
      (suggesting ``'diagonal'``) instead of an out-of-memory.
    curvature_period: re-estimate the factors every this many steps.
    refresh_period: recompute the inverses every this many steps and reuse
      them in between.
    track_norms: store per-layer gradient norms (diagnostics,
      :mod:`nnopt.preconditioning.diagnostics`).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    :class:`FrobeniusState`; ``update`` takes the keyword extra args
    ``stats`` (required) and ``weights`` (optional). The state declares
    ``factors.needs``.

  References:
    Kreis Lemma 5.2 (5.4), (5.8)–(5.15), Remark 5.3; Martens & Grosse
    (2015); Grosse & Martens (2016) for convolutions.
  """
  check_choice("bias", bias, BIAS_MODES)
  layer_rules = check_rules(layer_rules, default_rule)
  _check_period("curvature_period", curvature_period)
  _check_period("refresh_period", refresh_period)

  def plan(tree) -> dict[str, LayerPlan]:
    return plan_layers(tree, layer_rules=layer_rules,
                       default_rule=default_rule, bias=bias,
                       max_factor_dim=max_factor_dim)

  def init_fn(params) -> FrobeniusState:
    layer_plan = plan(params)
    estimate = factors.init(layer_plan)
    norms = {name: jnp.zeros((3,), lp.dtype)
             for name, lp in layer_plan.items()} if track_norms else {}
    return FrobeniusState(jnp.zeros((), jnp.int32),
                          needs_marker(factors.needs), estimate,
                          inverses.init(layer_plan), norms)

  def update_fn(updates, state: FrobeniusState, params=None, *, stats=None,
                weights=None, **extra_args):
    del params, extra_args
    layer_plan = plan(updates)
    count = state.count
    # The pieces' update indices derive from the step count here: counters
    # carried out of a lax.cond branch deadlocked XLA:CPU's collectives on 8
    # simulated devices (jax 0.10.2).
    # Every step (period 1) needs no cond. That also keeps what does not
    # depend on the state unbatched under vmap: runs on a runs axis that
    # share their batch share the first layer's input factor and factorize
    # it once (a cond with a per-run predicate batches all its operands).
    if _every_step(curvature_period):
      estimate = factors.update(state.estimate, layer_plan, stats, weights,
                                count)
    else:
      estimate = jax.lax.cond(
          count % curvature_period == 0,
          lambda: factors.update(state.estimate, layer_plan, stats, weights,
                                 count // curvature_period),
          lambda: state.estimate)
    if _every_step(refresh_period):
      inverse = inverses.update(state.inverse, estimate.factors, count)
    else:
      inverse = jax.lax.cond(
          count % refresh_period == 0,
          lambda: inverses.update(state.inverse, estimate.factors,
                                  count // refresh_period),
          lambda: state.inverse)
    layers = by_layer(updates)
    norms = {}
    for name, lp in layer_plan.items():
      new = precondition_layer(layers[name], inverse.inverses[name], lp, bias)
      if track_norms:
        n = diagnostics.gradient_norms(layers[name]["kernel"].astype(lp.dtype),
                                       new["kernel"].astype(lp.dtype))
        norms[name] = jnp.stack([n["euclidean"], n["frobenius"],
                                 n["frobenius_thesis"]]).astype(lp.dtype)
      layers[name] = new
    # Same leaves in the caller's container types (dict, FrozenDict, ...).
    new_updates = jax.tree.unflatten(jax.tree.structure(updates),
                                     jax.tree.leaves(from_layers(layers)))
    return new_updates, FrobeniusState(count + 1, state.needs, estimate,
                                       inverse, norms)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


__all__ = ["FrobeniusState", "precondition_layer", "scale_by_kronecker"]
