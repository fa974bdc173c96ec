"""Factor estimation: the Kronecker factors of every layer over the iterations.

From the current batch (Kreis (5.8)–(5.14), uncentered by default, K-FAC's
factors; :mod:`nnopt.stats.kronecker`):

.. math::
  \\hat A_k = \\frac{1}{N T} \\sum_{n,t} a_{n,t} a_{n,t}^T, \\qquad
  \\hat G_k = \\frac{N}{S} \\sum_{s,n,t} g_{s,n,t} g_{s,n,t}^T

with ``g`` the cotangents of the batch mean loss for targets sampled from
the model (``fisher='sampled'``, the Fisher, Kreis §5.3.2) or for the true
labels (``'empirical'``, Remark 5.5). Over the iterations (§5.3.2, options
1 and 3) the estimate used at the k-th update is

.. math::
  A_k = (1 - η_k) A_{k-1} + η_k \\hat A_k

with ``η_k = 1`` without averaging ((5.11)); for an exponential moving
average with weight β on the new estimate either the thesis's convention,
``η_1 = 1`` (the first estimate initializes the average) and ``η_k = β``, or
the debiased (weight-normalized) one of kfac-jax,
``η_k = β / (1 − (1 − β)^k)``, i.e.

.. math::
  A_k = \\frac{\\sum_{j \\le k} (1 - β)^{k - j} \\hat A_j}
             {\\sum_{j \\le k} (1 - β)^{k - j}}

(the same as Adam's bias correction of an EMA started at 0). The variant
``ema_reference='last_batch'`` (spec P9) mixes the new batch with the
previous batch's raw estimate, ``A_k = (1 − β) \\hat A_{k-1} + β \\hat A_k``.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nnopt.models.layers import LayerInfo
from nnopt.preconditioning.layer_plan import (LayerPlan, check_choice,
                                              check_range)
from nnopt.stats import kronecker
from nnopt.stats.geometry import GeometryError, infer_layer_info
from nnopt.stats.kronecker import FactorError
from nnopt.stats.needs import Needs

Array = jax.Array
Factors = dict[str, tuple[Array, Array]]

FISHERS = ("sampled", "empirical")
EMA_REFERENCES = ("running", "last_batch")


class FactorEstimateState(NamedTuple):
  """State of a factor estimator; dicts are keyed by layer path.

  Attributes:
    factors: ``(A, G)``, the current estimate.
    previous: the last batch's raw ``(A, G)`` (only with
      ``ema_reference='last_batch'``, else empty).
  """

  factors: Factors
  previous: Factors


class FactorEstimator(NamedTuple):
  """Estimates the factors of the planned layers from the step's statistics.

  Attributes:
    init: ``init(plan) -> FactorEstimateState`` (zero factors).
    update: ``update(state, plan, stats, weights, index)
      -> FactorEstimateState``; ``index`` counts the earlier estimates (0 at
      the first), kept by the caller, which knows the schedule.
    needs: what the step must capture (None when a hyperparameter that
      decides it arrived traced; ``init`` then raises).
  """

  init: Callable[[Mapping[str, LayerPlan]], FactorEstimateState]
  update: Callable[..., FactorEstimateState]
  needs: Needs | None


def new_estimate_weight(index: Array | int, weight, debias: bool, dtype
                        ) -> Array:
  """η of the update after ``index`` earlier ones (module docstring).

  Args:
    index: number of earlier updates (0 for the first).
    weight: β ∈ (0, 1], the weight of the new estimate.
    debias: weight-normalized average (kfac-jax) instead of the thesis's
      ``η_1 = 1, η_k = β``.
    dtype: dtype of the result.
  """
  beta = jnp.asarray(weight, dtype)
  if debias:
    k = jnp.asarray(index).astype(dtype) + 1
    return beta / (1 - (1 - beta) ** k)
  return jnp.where(jnp.asarray(index) == 0, jnp.ones((), dtype), beta)


def mix(fresh, old, eta: Array):
  """``(1 − η) old + η fresh``, leaf by leaf (``optax.tree_utils``)."""
  return jax.tree.map(
      lambda f, o: optax.tree_utils.tree_update_moment(
          f, o, (1 - eta).astype(f.dtype), 1),
      fresh, old)


def _fisher_needs(fisher: str, fisher_samples) -> Needs | None:
  if fisher == "empirical":
    if fisher_samples not in (None, 0):
      raise FactorError("fisher_samples applies to fisher='sampled' only")
    return Needs(stats=True)
  if fisher_samples is None:
    return Needs(stats=True, fisher_samples=1)
  if isinstance(fisher_samples, jax.core.Tracer):
    return None
  samples = operator.index(fisher_samples)
  if samples < 1:
    raise FactorError(f"fisher_samples must be >= 1, got {fisher_samples!r}")
  return Needs(stats=True, fisher_samples=samples)


def kronecker_factors(
    *, fisher: str = "sampled", fisher_samples: int | None = None,
    centered: bool = False, cotangent_scale: float = 1.0,
    ema_weight: float | None = None, ema_debias: bool = False,
    ema_reference: str = "running",
    layer_info: Mapping[str, LayerInfo] | None = None,
) -> FactorEstimator:
  """Kronecker factors ``(A, G)`` per layer, from the batch or averaged.

  .. math::
    A_k = (1 - η_k) A_{k-1} + η_k \\hat A_k, \\qquad
    G_k = (1 - η_k) G_{k-1} + η_k \\hat G_k

  Args:
    fisher: ``'sampled'``: G from targets sampled from the model (the
      Fisher, ``LayerStats.sampled_cotangents``, the thesis's default);
      ``'empirical'``: from the true labels (empirical Fisher, Remark 5.5).
      nnopt's empirical G is B times kfac-jax's ``fisher_empirical`` G (see
      :func:`nnopt.preconditioning.scale_by_kfac`).
    fisher_samples: targets sampled per example (default 1 for
      ``'sampled'``); declared as the step's need.
    centered: covariances (5.8)/(5.12) instead of second moments.
    cotangent_scale: extra factor on G (e.g. the output dimension for
      BackPACK's convention with a torch-style mean squared error, spec P11).
    ema_weight: β ∈ (0, 1], the weight of the new estimate in an
      exponential moving average (a K-FAC decay d is β = 1 − d); None: the
      current batch only, (5.11).
    ema_debias: the weight-normalized average of kfac-jax instead of the
      thesis's (first estimate initializes, then constant β).
    ema_reference: ``'running'`` (a standard EMA) or ``'last_batch'`` (mix
      with the previous batch's raw estimate, spec P9).
    layer_info: ``nnopt.stats.capture.layer_info(...)`` for convolutions whose
      stride/padding cannot be inferred from shapes.

  Returns:
    A :class:`FactorEstimator`.

  References:
    Kreis (5.8)–(5.14) and §5.3.2 (estimation options); Martens & Grosse
    (2015) §5; Grosse & Martens (2016) for convolutions.
  """
  check_choice("fisher", fisher, FISHERS)
  check_choice("ema_reference", ema_reference, EMA_REFERENCES)
  if ema_weight is not None:
    check_range("ema_weight", ema_weight, 0.0, 1.0)
  if ema_weight is not None and ema_debias and ema_reference == "last_batch":
    raise FactorError("ema_debias applies to ema_reference='running' only")
  averaged = ema_weight is not None
  keep_previous = averaged and ema_reference == "last_batch"
  layer_info = dict(layer_info or {})
  needs = _fisher_needs(fisher, fisher_samples)

  def init_fn(plan: Mapping[str, LayerPlan]) -> FactorEstimateState:
    if needs is None:
      raise FactorError(
          "fisher_samples arrived as a traced value (optax.inject_hyperparams"
          "); pass static_args=('fisher_samples',) to inject_hyperparams")
    zeros = {}
    for name, lp in plan.items():
      shape_a, shape_g = lp.factor_shapes()
      zeros[name] = (jnp.zeros(shape_a, lp.dtype), jnp.zeros(shape_g, lp.dtype))
    return FactorEstimateState(zeros, dict(zeros) if keep_previous else {})

  def geometry(name: str, lp: LayerPlan, st: Any, out_shape) -> LayerInfo:
    if name in layer_info:
      return layer_info[name]
    try:
      return infer_layer_info(lp.kernel_shape, st.inputs.shape, out_shape,
                              use_bias=lp.use_bias)
    except GeometryError as err:
      raise FactorError(f"layer {name!r}: {err}; pass it as layer_info="
                        ) from None

  def batch_estimate(plan, stats, weights) -> Factors:
    out = {}
    for name, lp in plan.items():
      if stats is None or name not in stats:
        raise FactorError(
            f"no statistics for layer {name!r}: pass stats=capture(...).stats "
            "with what nnopt.required_needs(optimizer, params) says (the "
            "engine does), or set layer_rules={" + repr(name) +
            ": 'identity'} for a layer that is not an nnopt Dense/Conv")
      st = stats[name]
      cots, sampled = kronecker.cotangents_for(st, fisher)
      info = geometry(name, lp, st, cots.shape[1:] if sampled else cots.shape)
      diagonal = lp.rule == "diagonal"
      a = kronecker.input_factor(
          st.inputs.astype(lp.dtype), info, weights, centered=centered,
          homogeneous=lp.homogeneous, diagonal=diagonal)
      g = kronecker.output_factor(
          cots.astype(lp.dtype), weights, sampled=sampled, centered=centered,
          scale=cotangent_scale, diagonal=diagonal)
      out[name] = (a, g.astype(lp.dtype))
    return out

  def update_fn(state: FactorEstimateState, plan: Mapping[str, LayerPlan],
                stats=None, weights=None, index: Array | int = 0
                ) -> FactorEstimateState:
    fresh = batch_estimate(plan, stats, weights)
    if not averaged or not fresh:
      return FactorEstimateState(fresh, state.previous)
    dtype = jax.tree.leaves(fresh)[0].dtype
    if keep_previous:
      eta = new_estimate_weight(index, ema_weight, False, dtype)
      return FactorEstimateState(mix(fresh, state.previous, eta), fresh)
    eta = new_estimate_weight(index, ema_weight, ema_debias, dtype)
    return FactorEstimateState(mix(fresh, state.factors, eta), state.previous)

  return FactorEstimator(init_fn, update_fn, needs)


__all__ = ["EMA_REFERENCES", "FISHERS", "FactorEstimateState",
           "FactorEstimator", "kronecker_factors", "mix",
           "new_estimate_weight"]
