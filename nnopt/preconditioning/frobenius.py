"""Covariance-driven layer-wise preconditioning (Kreis §5.3.2, eq. (5.15)).

Every Dense or Conv layer's kernel gradient K (flax layout, (m, n) = Wᵀ) is
replaced by its gradient in the Frobenius-type inner product whose Gram
matrices are the damped inverse input covariance and the damped covariance of
the output gradients:

.. math::
  P = (A + γ_x I)^{-1} K (G + γ_y I)^{-1}, \\qquad
  p_b = (G + γ_y I)^{-1} ∇_b

with A, G the (centered or uncentered) second moments of the layer inputs
and of the per-example pre-activation gradients (`nnopt.preconditioning`).
The statistics come from :func:`nnopt.stats.capture.capture` as the keyword extra
argument ``stats`` (the engine passes it with ``CaptureSpec(stats=True,
fisher_samples=S)``); the weights mask ``weights`` is used when given.

Per layer (matched by ``'/'``-joined path, glob patterns allowed) a *rule*
decides what happens:

* ``'kronecker'`` (default for tagged Dense/Conv layers): the dense factors
  above;
* ``'diagonal'``: only the diagonals of A and G (memory O(m + n)), for layers
  whose dense factors are too large;
* ``'identity'``: pass-through (plain SGD on that layer). Parameters outside
  tagged layers (no statistics) always pass through.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from nnopt.models.layers import LayerInfo
from nnopt.preconditioning import diagnostics, solvers
from nnopt.stats import kronecker as factors
from nnopt.stats.kronecker import FactorError

Array = jax.Array

RULES = ("kronecker", "diagonal", "identity")
ESTIMATIONS = ("batch", "ema_cov", "ema_inverse")
BIAS_MODES = ("separate", "homogeneous", "identity")


class FrobeniusState(NamedTuple):
  """State of :func:`scale_by_frobenius`; dicts are keyed by layer path.

  Attributes:
    count: number of updates so far (int32).
    factors: ``(A, G)`` current estimates (running EMA for ``'ema_cov'``).
    previous: last mini-batch ``(A, G)`` (only with
      ``ema_reference='last_batch'``).
    inverses: ``((A+γ_x I)^{-1}, (G+γ_y I)^{-1})`` used by the update.
    spectra: eigenvalues of the undamped A and G at the last refresh
      (only with ``track_spectra``).
    norms: ``[‖E‖_F, ‖P‖_{X→Y}, thesis variant]`` of the last kernel gradient
      (only with ``track_norms``).
  """

  count: Array
  factors: dict[str, tuple[Array, Array]]
  previous: dict[str, tuple[Array, Array]]
  inverses: dict[str, tuple[Array, Array]]
  spectra: dict[str, tuple[Array, Array]]
  norms: dict[str, Array]


def _split_layers(params) -> dict[str, dict[str, Any]]:
  """``{layer path: {leaf name: leaf}}`` from a nested parameter dict."""
  layers: dict[str, dict[str, Any]] = {}
  for path, leaf in traverse_util.flatten_dict(dict(params)).items():
    layers.setdefault("/".join(path[:-1]), {})[path[-1]] = leaf
  return layers


def _rule_for(name: str, rules: Mapping[str, str], default: str) -> str:
  if name in rules:
    return rules[name]
  for pattern, rule in rules.items():
    if fnmatch.fnmatchcase(name, pattern):
      return rule
  return default


def _check_positive(name: str, value) -> None:
  if callable(value):
    raise FactorError(f"{name} must be a number > 0 (schedules are not "
                      "supported for damping)")
  if not (float(value) > 0.0 and jnp.isfinite(float(value))):
    raise FactorError(f"{name} must be a finite number > 0, got {value!r}: "
                      "the damped factors must be positive definite")


def _check_choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise FactorError(f"{name} must be one of {choices}, got {value!r}")


def scale_by_frobenius(
    damping_x: float = 1e-2, damping_y: float = 1e-2, *,
    centered: bool = False, fisher: str = "sampled",
    estimation: str = "batch", ema_weight: float = 1.0,
    ema_reference: str = "running", refresh_period: int = 1,
    curvature_period: int | None = None, solver: str = "cholesky",
    bias: str = "separate", pi_damping: bool = False,
    cotangent_scale: float = 1.0,
    layer_rules: Mapping[str, str] | None = None,
    default_rule: str = "kronecker", max_factor_dim: int = 8192,
    layer_info: Mapping[str, LayerInfo] | None = None,
    track_spectra: bool = False, track_norms: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Layer-wise Frobenius-type preconditioning with covariance factors.

  .. math::
    P_i = (A_i + γ_x I)^{-1} K_i (G_i + γ_y I)^{-1}, \\quad
    p_{b_i} = (G_i + γ_y I)^{-1} ∇_{b_i}

  Args:
    damping_x: γ_x > 0 on the input (activation) side, γ_2 of (5.15).
    damping_y: γ_y > 0 on the output (gradient) side, γ_1 of (5.15).
    centered: covariances (5.8)/(5.12) instead of second moments.
    fisher: ``'sampled'``: G from targets sampled from the model (Fisher,
      ``LayerStats.sampled_cotangents``, the thesis default); ``'empirical'``:
      from the true labels (empirical Fisher, Remark 5.5).
    estimation: ``'batch'`` (recompute from the current batch, (5.11));
      ``'ema_cov'`` (EMA of the factors); ``'ema_inverse'`` (EMA of the
      damped inverses). §5.3.2; the first estimate initializes the EMA.
    ema_weight: β, the weight of the NEW estimate (thesis convention; a
      K-FAC decay d corresponds to β = 1 − d).
    ema_reference: with ``'ema_cov'``, whether β mixes the new batch with
      the running estimate (``'running'``) or with the previous batch's raw
      estimate (``'last_batch'``); spec P9.
    refresh_period: K, recompute the preconditioner every K steps and reuse
      it in between (`lax.cond`, one compilation).
    curvature_period: update the factor statistics every this many steps
      (default: ``refresh_period``; K-FAC uses 1 with an EMA).
    solver: ``'cholesky'`` (falls back to eigh when the damped factor is
      numerically indefinite) or ``'eigh'`` (several times slower on CPUs;
      its eigenvalues give the spectra for free).
    bias: ``'separate'`` (Remark 5.3: ``(G+γ_y I)^{-1}∇_b``), ``'homogeneous'``
      (K-FAC: inputs augmented by a constant 1, bias stacked under the
      kernel) or ``'identity'`` (bias not preconditioned).
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

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` takes the
    keyword extra args ``stats`` (required) and ``weights`` (optional).

  References:
    Kreis, Lemma 5.2 (5.4), (5.8)–(5.15), Remarks 5.3 and 5.5;
    Martens & Grosse (2015); Grosse & Martens (2016) for convolutions.
  """
  _check_positive("damping_x", damping_x)
  _check_positive("damping_y", damping_y)
  _check_choice("fisher", fisher, ("sampled", "empirical"))
  _check_choice("estimation", estimation, ESTIMATIONS)
  _check_choice("ema_reference", ema_reference, ("running", "last_batch"))
  _check_choice("solver", solver, ("eigh", "cholesky"))
  _check_choice("bias", bias, BIAS_MODES)
  _check_choice("default_rule", default_rule, RULES)
  if not 0.0 < float(ema_weight) <= 1.0:
    raise FactorError(f"ema_weight must be in (0, 1], got {ema_weight!r}")
  refresh_period = int(refresh_period)
  curvature_period = int(curvature_period or refresh_period)
  if refresh_period < 1 or curvature_period < 1:
    raise FactorError("refresh_period and curvature_period must be >= 1")
  layer_rules = dict(layer_rules or {})
  for pattern, rule in layer_rules.items():
    _check_choice(f"layer_rules[{pattern!r}]", rule, RULES)
  layer_info = dict(layer_info or {})
  keep_previous = estimation == "ema_cov" and ema_reference == "last_batch"

  def plan(params) -> dict[str, tuple[str, bool]]:
    """``{layer: (rule, homogeneous)}`` of the preconditioned layers."""
    out = {}
    for name, leaves in _split_layers(params).items():
      kernel = leaves.get("kernel")
      if kernel is None or kernel.ndim not in (2, 4):
        if name in layer_rules and layer_rules[name] != "identity":
          raise FactorError(f"layer {name!r} has no 2-D or 4-D 'kernel'; only "
                            "'identity' applies to it")
        continue
      rule = _rule_for(name, layer_rules, default_rule)
      if rule == "identity":
        continue
      homogeneous = bias == "homogeneous" and "bias" in leaves
      m = factors.LayerGeometry("dense", kernel.shape).in_dim + homogeneous
      n = kernel.shape[-1]
      if rule == "kronecker" and max(m, n) > max_factor_dim:
        mib = 4 * (m * m + n * n) * 2 / 2**20
        raise FactorError(
            f"layer {name!r}: its Kronecker factors would be {m}x{m} and "
            f"{n}x{n} (> max_factor_dim={max_factor_dim}, about {mib:.0f} MiB "
            "with inverses); use a cheaper fallback for it, e.g. layer_rules="
            f"{{{name!r}: 'diagonal'}} or {{{name!r}: 'identity'}}, or raise "
            "max_factor_dim")
      out[name] = (rule, homogeneous)
    return out

  def factor_shapes(leaves, rule, homogeneous):
    kernel = leaves["kernel"]
    m = factors.LayerGeometry("dense", kernel.shape).in_dim + homogeneous
    n = kernel.shape[-1]
    if rule == "diagonal":
      return (m,), (n,)
    return (m, m), (n, n)

  def init_fn(params):
    layers = _split_layers(params)
    zeros, inverses, spectra = {}, {}, {}
    for name, (rule, homog) in plan(params).items():
      dtype = layers[name]["kernel"].dtype
      shape_a, shape_g = factor_shapes(layers[name], rule, homog)
      zeros[name] = (jnp.zeros(shape_a, dtype), jnp.zeros(shape_g, dtype))
      eye = lambda s: (jnp.ones(s[:1], dtype) if len(s) == 1
                       else jnp.eye(s[0], dtype=dtype))
      inverses[name] = (eye(shape_a) / damping_x, eye(shape_g) / damping_y)
      if track_spectra:
        spectra[name] = (jnp.zeros(shape_a[:1], dtype),
                         jnp.zeros(shape_g[:1], dtype))
    norms = ({name: jnp.zeros((3,), layers[name]["kernel"].dtype)
              for name in zeros} if track_norms else {})
    return FrobeniusState(jnp.zeros((), jnp.int32), zeros,
                          dict(zeros) if keep_previous else {}, inverses,
                          spectra, norms)

  def batch_factors(layer_plan, leaves, stats, weights):
    out = {}
    for name, (rule, homog) in layer_plan.items():
      if stats is None or name not in stats:
        raise FactorError(
            f"scale_by_frobenius: no statistics for layer {name!r}; pass "
            "stats=capture(...).stats (engine: CaptureSpec(stats=True, "
            "fisher_samples=1)), or set layer_rules={" + repr(name) +
            ": 'identity'} for a layer that is not an nnopt Dense/Conv")
      st = stats[name]
      cots, sampled = factors.cotangents_for(st, fisher)
      out_shape = cots.shape[1:] if sampled else cots.shape
      geometry = factors.layer_geometry(leaves[name]["kernel"].shape,
                                        st.inputs.shape, out_shape,
                                        layer_info.get(name))
      diag = rule == "diagonal"
      a = factors.input_factor(st.inputs, geometry, weights, centered=centered,
                               homogeneous=homog, diagonal=diag)
      g = factors.output_factor(cots, weights, sampled=sampled,
                                centered=centered, scale=cotangent_scale,
                                diagonal=diag)
      out[name] = (a, g)
    return out

  def refresh_inverses(current, old_inverses, first):
    new_inv, new_spectra = {}, {}
    for name, (a, g) in current.items():
      dx, dy = jnp.asarray(damping_x, a.dtype), jnp.asarray(damping_y, a.dtype)
      if pi_damping:
        dx, dy = solvers.pi_damping(a, g, dx, dy)
      if solver == "eigh" and a.ndim == 2:
        inv_a, eig_a = solvers.eigh_inverse(a, dx)
        inv_g, eig_g = solvers.eigh_inverse(g, dy)
      else:
        inv_a = solvers.damped_inverse(a, dx, solver)
        inv_g = solvers.damped_inverse(g, dy, solver)
        eig_a = eig_g = None
      if estimation == "ema_inverse":
        beta = jnp.where(first, 1.0, ema_weight).astype(a.dtype)
        old_a, old_g = old_inverses[name]
        inv_a = (1 - beta) * old_a + beta * inv_a
        inv_g = (1 - beta) * old_g + beta * inv_g
      new_inv[name] = (inv_a, inv_g)
      if track_spectra:
        new_spectra[name] = (diagnostics.spectra(a) if eig_a is None else eig_a,
                             diagnostics.spectra(g) if eig_g is None else eig_g)
    return new_inv, new_spectra

  def update_fn(updates, state, params=None, *, stats=None, weights=None,
                **extra_args):
    del extra_args
    layer_plan = plan(updates)
    layers = _split_layers(updates)
    count = state.count
    first = count == 0

    def new_factors():
      fresh = batch_factors(layer_plan, layers, stats, weights)
      if estimation != "ema_cov":
        return fresh, state.previous
      reference = state.previous if keep_previous else state.factors
      beta = jnp.where(first, 1.0, ema_weight)
      mixed = jax.tree.map(lambda old, new: (1 - beta).astype(new.dtype) * old
                           + beta.astype(new.dtype) * new, reference, fresh)
      return mixed, (fresh if keep_previous else state.previous)

    current, previous = jax.lax.cond(
        count % curvature_period == 0, new_factors,
        lambda: (state.factors, state.previous))
    inverses, spectra = jax.lax.cond(
        count % refresh_period == 0,
        lambda: refresh_inverses(current, state.inverses, first),
        lambda: (state.inverses, state.spectra))

    norms = {}
    for name, (rule, homog) in layer_plan.items():
      leaves = dict(layers[name])
      inv_a, inv_g = inverses[name]
      kernel = leaves["kernel"]
      if homog:
        stacked = jnp.concatenate(
            [kernel.reshape(-1, kernel.shape[-1]), leaves["bias"][None]], 0)
        pre = solvers.precondition_kernel(stacked, inv_a, inv_g)
        leaves["kernel"] = pre[:-1].reshape(kernel.shape)
        leaves["bias"] = pre[-1]
      else:
        leaves["kernel"] = solvers.precondition_kernel(kernel, inv_a, inv_g)
        if "bias" in leaves and bias == "separate":
          b = leaves["bias"]
          leaves["bias"] = inv_g * b if inv_g.ndim == 1 else inv_g @ b
      if track_norms:
        n = diagnostics.gradient_norms(kernel, leaves["kernel"])
        norms[name] = jnp.stack([n["euclidean"], n["frobenius"],
                                 n["frobenius_thesis"]]).astype(kernel.dtype)
      layers[name] = leaves

    flat = {tuple(k.split("/")) + (leaf,) if k else (leaf,): v
            for k, leaves in layers.items() for leaf, v in leaves.items()}
    new_updates = traverse_util.unflatten_dict(flat)
    new_updates = jax.tree.unflatten(jax.tree.structure(updates),
                                     jax.tree.leaves(new_updates))
    return new_updates, FrobeniusState(count + 1, current, previous, inverses,
                                       spectra, norms)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def frobenius_sgd(learning_rate: optax.ScalarOrSchedule,
                  damping_x: float = 1e-2, damping_y: float = 1e-2,
                  **options: Any) -> optax.GradientTransformationExtraArgs:
  """Plain SGD on the covariance-preconditioned gradient (the thesis's method).

  .. math::
    W_i ← W_i − α (G_i + γ_y I)^{-1} ∇_{W_i} \\hat f (A_i + γ_x I)^{-1}

  Args:
    learning_rate: α, a float or an optax schedule.
    damping_x: γ_x (input side).
    damping_y: γ_y (output side).
    **options: any option of :func:`scale_by_frobenius`.

  References:
    Kreis (5.15) and §5.3.3 (fixed lr, no momentum, second moments).
  """
  return optax.chain(scale_by_frobenius(damping_x, damping_y, **options),
                     optax.scale_by_learning_rate(learning_rate))


def find_state(opt_state) -> FrobeniusState | None:
  """The first :class:`FrobeniusState` inside a (chained) optimizer state."""
  if isinstance(opt_state, FrobeniusState):
    return opt_state
  if isinstance(opt_state, (tuple, list)):
    for item in opt_state:
      found = find_state(item)
      if found is not None:
        return found
  if isinstance(opt_state, dict):
    for item in opt_state.values():
      found = find_state(item)
      if found is not None:
        return found
  if hasattr(opt_state, "inner_state"):
    return find_state(opt_state.inner_state)
  return None
