"""Steepest descent under non-Euclidean norms (Balles ch. 6), as optax
transforms.

Table 6.1: the steepest-descent direction of a norm ‖·‖ with dual ‖·‖_* is

=====================  =====================  ===================================
norm                   method                 direction ``u`` (then θ ← θ − α u)
=====================  =====================  ===================================
ℓ∞                     ℓ1-scaled sign GD      ``‖g‖_1 · sign(g)``  (6.10)
ℓ1                     coordinate descent     ``g_i e_i``, ``i = argmax |g_i|``
max_B ‖θ_B‖_2          block-normalized GD    ``(Σ_B ‖g_B‖) · g_B / ‖g_B‖``  (C.6–C.7)
=====================  =====================  ===================================

Norms are global over the whole pytree; blocks are the pytree's leaves (e.g.
the kernel and the bias of each layer). Norms are summed in at least float32;
updates come back in the gradients' dtype. All transforms skip a non-finite
step (zero update, unchanged state).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from nnopt.noise_aware.common import (accumulator_dtype, skip_if_nonfinite,
                                      with_learning_rate)

Array = jax.Array


def _stateless(direction):
  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    g = optax.tree_utils.tree_cast(updates, accumulator_dtype(updates))
    return skip_if_nonfinite(updates, direction(g), state, state)

  return optax.GradientTransformationExtraArgs(
      lambda params: optax.EmptyState(), update_fn)


def _l1_norm(tree) -> Array:
  return sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree))


def scale_by_l1_sign() -> optax.GradientTransformationExtraArgs:
  """ℓ∞ steepest-descent direction: the sign scaled by the global ℓ1 norm.

  .. math::  u = \\|g\\|_1 \\operatorname{sign}(g)

  With step 1/L∞ this converges with a constant step (6.15).

  References:
    Balles (2021), (6.10), Table 6.1.
  """
  def direction(g):
    norm = _l1_norm(g)
    return jax.tree.map(lambda x: norm * jnp.sign(x), g)

  return _stateless(direction)


def l1_sign_gd(learning_rate: optax.ScalarOrSchedule):
  """Norm-scaled sign GD: ``θ ← θ − α ‖g‖_1 sign(g)`` (6.10)."""
  return with_learning_rate(scale_by_l1_sign(), learning_rate)


def scale_by_block_normalize(scale_by_l1b: bool = True
                             ) -> optax.GradientTransformationExtraArgs:
  """Block-normalized direction, one block per pytree leaf.

  .. math::

     u_B = \\Big(\\sum_{B'} \\|g_{B'}\\|_2\\Big)\\, \\frac{g_B}{\\|g_B\\|_2}

  (steepest descent for ``max_B ‖θ_B‖_2``); ``scale_by_l1b=False`` drops the
  factor (normalized steepest descent). Zero blocks stay zero.

  References:
    Balles (2021), (C.6)–(C.7), Table 6.1.
  """

  def direction(g):
    norms = jax.tree.map(lambda x: jnp.sqrt(jnp.sum(x * x)), g)
    total = sum(jax.tree.leaves(norms)) if scale_by_l1b else 1.0
    return jax.tree.map(
        lambda x, n: jnp.where(n > 0, x / jnp.where(n > 0, n, 1.0), 0.0)
        * total, g, norms)

  return _stateless(direction)


def block_normalized_gd(learning_rate: optax.ScalarOrSchedule,
                        scale_by_l1b: bool = True):
  """Block-normalized GD (blocks = leaves), see :func:`scale_by_block_normalize`."""
  return with_learning_rate(scale_by_block_normalize(scale_by_l1b), learning_rate)


def scale_by_coordinate_descent() -> optax.GradientTransformationExtraArgs:
  """ℓ1 steepest-descent direction: only the largest-|g| coordinate.

  .. math::  u = g_{i^*} e_{i^*},\\qquad i^* = \\arg\\max_i |g_i|

  over all leaves (ties: the first in leaf order). Fixes the garbled (C.2).

  References:
    Balles (2021), Table 6.1, App. C.2.
  """

  def direction(g):
    leaves, treedef = jax.tree.flatten(g)
    flat = jnp.concatenate([jnp.ravel(x) for x in leaves])
    keep = jax.nn.one_hot(jnp.argmax(jnp.abs(flat)), flat.size, dtype=flat.dtype)
    out, start = [], 0
    for x in leaves:
      out.append(keep[start:start + x.size].reshape(x.shape) * x)
      start += x.size
    return jax.tree.unflatten(treedef, out)

  return _stateless(direction)


def coordinate_descent(learning_rate: optax.ScalarOrSchedule):
  """Greedy coordinate descent ``θ ← θ − α g_{i*} e_{i*}`` (Table 6.1)."""
  return with_learning_rate(scale_by_coordinate_descent(), learning_rate)


__all__ = ["block_normalized_gd", "coordinate_descent", "l1_sign_gd",
           "scale_by_block_normalize", "scale_by_coordinate_descent",
           "scale_by_l1_sign"]
