"""What the noise-aware transforms share: a non-finite step is skipped,
accumulators are at least float32, an alias is a direction times ``-α``.

* A step whose incoming update (or extra input) is not finite returns zero
  updates and leaves the state unchanged, so no NaN ever enters a state.
* Moment accumulators are kept in :func:`accumulator_dtype` — float32 for
  bfloat16/float16 parameters (the variance estimate ``v − m²`` cancels: in
  bfloat16's 8-bit mantissa nothing would be left of it), float64 for float64
  ones — and every update comes back in the dtype of the incoming update, as
  optax's transforms do.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def accumulator_dtype(params: Any) -> jnp.dtype:
  """The dtype of moment accumulators for ``params``: at least float32."""
  return jnp.result_type(jnp.float32, *(
      jax.dtypes.canonicalize_dtype(leaf.dtype)
      for leaf in jax.tree.leaves(params)))


def zeros_accumulator(params: Any) -> Any:
  """Zeros shaped like ``params`` in :func:`accumulator_dtype` (also from
  ``jax.ShapeDtypeStruct`` leaves)."""
  return optax.tree_utils.tree_zeros_like(params,
                                          dtype=accumulator_dtype(params))


def all_finite(tree: Any) -> Array:
  """Whether every element of every leaf is finite (a scalar bool)."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def skip_if_nonfinite(inputs: Any, new_updates: Any, state: Any,
                      new_state: Any, like: Any = None) -> tuple[Any, Any]:
  """``(new_updates, new_state)`` if ``inputs`` are finite, else (0, state).

  The updates are cast to the dtypes of ``like`` (default: ``inputs``, which
  must then be the incoming updates) and the state to the old state's
  dtypes, so that a jitted loop keeps one signature.
  """
  ok = all_finite(inputs)
  like = inputs if like is None else like
  new_updates = optax.tree_utils.tree_cast_like(new_updates, like)
  out = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)),
                     new_updates)
  kept = jax.tree.map(lambda new, old: jnp.where(ok, new, old).astype(old.dtype),
                      new_state, state)
  return out, kept


def safe_ratio(num: Array, den: Array) -> Array:
  """``num / den`` where ``den > 0``, else 0; then clipped to [0, 1]."""
  ok = den > 0
  return jnp.clip(jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0), 0.0, 1.0)


def with_learning_rate(direction: optax.GradientTransformation,
                       learning_rate: optax.ScalarOrSchedule
                       ) -> optax.GradientTransformationExtraArgs:
  """``θ ← θ − α u``: the alias of a ``scale_by_*`` direction ``u``."""
  return optax.chain(direction, optax.scale_by_learning_rate(learning_rate))


__all__ = ["accumulator_dtype", "all_finite", "safe_ratio", "skip_if_nonfinite",
           "with_learning_rate", "zeros_accumulator"]
