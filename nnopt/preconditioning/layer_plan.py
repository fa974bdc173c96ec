"""Which layers a Kronecker preconditioner touches, and how (static).

A layer is the innermost dict of a parameter tree with a ``'kernel'`` leaf,
keyed by its ``'/'``-joined path (:mod:`nnopt.stats.layer_keys`). Per layer,
matched by path or glob pattern, a *rule* decides what happens:

* ``'kronecker'``: dense factors A (m×m) and G (n×n);
* ``'diagonal'``: only their diagonals (memory O(m + n)), for layers whose
  dense factors are too large;
* ``'identity'``: pass-through (plain SGD on that layer).

Layers without a 2-D or 4-D kernel (no statistics) always pass through. The
plan is a pure function of the parameters' shapes, so ``init`` and
``update`` compute the same one. The checks of the pieces' options are here
too; a number may arrive traced (``optax.inject_hyperparams`` injects every
number), so its range is checked only when it is concrete.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from nnopt.stats.kronecker import FactorError
from nnopt.stats.layer_keys import by_layer

RULES = ("kronecker", "diagonal", "identity")
BIAS_MODES = ("separate", "homogeneous", "identity")


class LayerPlan(NamedTuple):
  """How one layer is preconditioned.

  Attributes:
    rule: ``'kronecker'`` or ``'diagonal'``.
    homogeneous: the bias is stacked under the kernel and the inputs get a
      constant 1 (K-FAC's bias handling).
    kernel_shape: the kernel's shape.
    use_bias: whether the layer has a ``'bias'`` leaf.
    dtype: the dtype of factors and linear algebra, at least float32
      (LAPACK has no bfloat16 or float16).
  """

  rule: str
  homogeneous: bool
  kernel_shape: tuple[int, ...]
  use_bias: bool
  dtype: Any

  @property
  def in_dim(self) -> int:
    """Rows of A: ``m`` (or ``kh·kw·c_in``), plus 1 when homogeneous."""
    return math.prod(self.kernel_shape[:-1]) + self.homogeneous

  @property
  def out_dim(self) -> int:
    """Rows of G."""
    return self.kernel_shape[-1]

  def factor_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of ``(A, G)``: square matrices, or vectors for ``'diagonal'``."""
    if self.rule == "diagonal":
      return (self.in_dim,), (self.out_dim,)
    return (self.in_dim, self.in_dim), (self.out_dim, self.out_dim)


def match_layer(name: str, table: Mapping[str, Any], default: Any = None
                ) -> Any:
  """``table[name]``, else the value of the first glob pattern matching it."""
  if name in table:
    return table[name]
  for pattern, value in table.items():
    if fnmatch.fnmatchcase(name, pattern):
      return value
  return default


def check_choice(name: str, value: str, choices) -> None:
  """Raises :class:`FactorError` unless ``value`` is one of ``choices``."""
  if value not in choices:
    raise FactorError(f"{name} must be one of {choices}, got {value!r}")


def concrete(value) -> float | None:
  """``float(value)``, or None when ``value`` is traced.

  Hyperparameters may arrive as traced arrays (``optax.inject_hyperparams``
  injects every number); checks of their range apply when they are concrete.
  """
  if isinstance(value, jax.core.Tracer):
    return None
  return float(value)


def check_range(name: str, value, low: float, high: float, *,
                low_open: bool = True, high_open: bool = False) -> None:
  """Raises :class:`FactorError` for a concrete ``value`` outside the range."""
  if callable(value):
    raise FactorError(f"{name} must be a number (schedules are not "
                      "supported for it)")
  v = concrete(value)
  if v is None:
    return
  above = v > low if low_open else v >= low
  below = v < high if high_open else v <= high
  if not (above and below and math.isfinite(v)):
    raise FactorError(
        f"{name} must be a finite number in {'(' if low_open else '['}{low}, "
        f"{high}{')' if high_open else ']'}, got {value!r}")


def check_positive(name: str, value) -> None:
  """Raises :class:`FactorError` unless a concrete ``value`` is finite, > 0."""
  if callable(value):
    raise FactorError(f"{name} must be a number > 0 (schedules are not "
                      "supported for it)")
  v = concrete(value)
  if v is not None and not (v > 0.0 and math.isfinite(v)):
    raise FactorError(f"{name} must be a finite number > 0, got {value!r}: "
                      "the damped factors must be positive definite")


def compute_dtype(dtype) -> Any:
  """The dtype of factors for parameters of ``dtype``: at least float32."""
  return jnp.promote_types(dtype, jnp.float32)


def plan_layers(params, *, layer_rules: Mapping[str, str], default_rule: str,
                bias: str, max_factor_dim) -> dict[str, LayerPlan]:
  """``{layer path: LayerPlan}`` of the layers that are preconditioned.

  Args:
    params: parameters (or updates, or their shapes).
    layer_rules: ``{layer path or glob: rule}``.
    default_rule: the rule of layers not in ``layer_rules``.
    bias: ``'separate'``, ``'homogeneous'`` or ``'identity'``.
    max_factor_dim: a ``'kronecker'`` layer with a larger factor is an error
      (checked when the value is concrete).

  Raises:
    FactorError: a rule for a layer without a kernel, or a too large factor.
  """
  limit = concrete(max_factor_dim)
  out = {}
  for name, leaves in by_layer(params).items():
    kernel = leaves.get("kernel")
    if kernel is None or kernel.ndim not in (2, 4):
      if layer_rules.get(name, "identity") != "identity":
        raise FactorError(f"layer {name!r} has no 2-D or 4-D 'kernel'; only "
                          "'identity' applies to it")
      continue
    rule = match_layer(name, layer_rules, default_rule)
    if rule == "identity":
      continue
    plan = LayerPlan(rule, bias == "homogeneous" and "bias" in leaves,
                     tuple(kernel.shape), "bias" in leaves,
                     compute_dtype(kernel.dtype))
    m, n = plan.in_dim, plan.out_dim
    if rule == "kronecker" and limit is not None and max(m, n) > limit:
      mib = 4 * (m * m + n * n) * 2 / 2**20
      raise FactorError(
          f"layer {name!r}: its Kronecker factors would be {m}x{m} and "
          f"{n}x{n} (> max_factor_dim={int(limit)}, about {mib:.0f} MiB "
          "with inverses); use a cheaper fallback for it, e.g. layer_rules="
          f"{{{name!r}: 'diagonal'}} or {{{name!r}: 'identity'}}, or raise "
          "max_factor_dim")
    out[name] = plan
  return out


def check_rules(layer_rules: Mapping[str, str] | None, default_rule: str
                ) -> dict[str, str]:
  """The validated ``layer_rules`` as a dict."""
  check_choice("default_rule", default_rule, RULES)
  rules = dict(layer_rules or {})
  for pattern, rule in rules.items():
    check_choice(f"layer_rules[{pattern!r}]", rule, RULES)
  return rules


__all__ = ["BIAS_MODES", "LayerPlan", "RULES", "check_choice",
           "check_positive", "check_range", "check_rules", "compute_dtype",
           "concrete", "match_layer", "plan_layers"]
