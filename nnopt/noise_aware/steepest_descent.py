"""Steepest descent under non-Euclidean norms (Balles ch. 6) and the diagonal
empirical-Fisher preconditioned step (ch. 7), as optax transforms.

Table 6.1: the steepest-descent direction of a norm ‖·‖ with dual ‖·‖_* is

=====================  =====================  ===================================
norm                   method                 direction ``u`` (then θ ← θ − α u)
=====================  =====================  ===================================
ℓ∞                     ℓ1-scaled sign GD      ``‖g‖_1 · sign(g)``  (6.10)
ℓ1                     coordinate descent     ``g_i e_i``, ``i = argmax |g_i|``
max_B ‖θ_B‖_2          block-normalized GD    ``(Σ_B ‖g_B‖) · g_B / ‖g_B‖``  (C.6–C.7)
=====================  =====================  ===================================

Norms are global over the whole pytree; blocks are the pytree's leaves (e.g.
the kernel and the bias of each layer). All transforms skip a non-finite step
(zero update, unchanged state).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nnopt.noise_aware.adaptation import (_alias, moments_from_extra_args,
                                          skip_if_nonfinite, zeros_like_tree)
from nnopt.stats.moments import BatchMoments, VarianceError, check_beta, debias

Array = jax.Array


def _stateless(direction):
  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    return skip_if_nonfinite(updates, direction(updates), state, state)

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
    return jax.tree.map(lambda x: norm.astype(x.dtype) * jnp.sign(x), g)

  return _stateless(direction)


def l1_sign_gd(learning_rate: optax.ScalarOrSchedule):
  """Norm-scaled sign GD: ``θ ← θ − α ‖g‖_1 sign(g)`` (6.10)."""
  return _alias(scale_by_l1_sign(), learning_rate)


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
  return _alias(scale_by_block_normalize(scale_by_l1b), learning_rate)


def scale_by_coordinate_descent() -> optax.GradientTransformationExtraArgs:
  """ℓ1 steepest-descent direction: only the largest-|g| coordinate.

  .. math::  u = g_{i^*} e_{i^*},\\qquad i^* = \\arg\\max_i |g_i|

  over all leaves (ties: the first in leaf order). Fixes the garbled (C.2).

  References:
    Balles (2021), Table 6.1, App. C.2.
  """

  def direction(g):
    leaves, treedef = jax.tree.flatten(g)
    flat = jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])
    keep = jax.nn.one_hot(jnp.argmax(jnp.abs(flat)), flat.size, dtype=flat.dtype)
    out, start = [], 0
    for x in leaves:
      out.append((keep[start:start + x.size].reshape(x.shape) * x).astype(x.dtype))
      start += x.size
    return jax.tree.unflatten(treedef, out)

  return _stateless(direction)


def coordinate_descent(learning_rate: optax.ScalarOrSchedule):
  """Greedy coordinate descent ``θ ← θ − α g_{i*} e_{i*}`` (Table 6.1)."""
  return _alias(scale_by_coordinate_descent(), learning_rate)


# -- diagonal empirical Fisher ---------------------------------------------------


class DiagEFState(NamedTuple):
  """State of :func:`scale_by_diag_ef`.

  Attributes:
    count: steps taken (int32).
    nu: EMA of the second gradient moment q (the current q when ``decay`` is
      None).
  """

  count: Array
  nu: Any


def scale_by_diag_ef(damping: float = 1e-8, decay: float | None = None,
                     sqrt: bool = False, *, layers=None,
                     chunk_size: int | None = None
                     ) -> optax.GradientTransformationExtraArgs:
  """Diagonal empirical-Fisher preconditioning.

  .. math::

     d_{EF} = q = \\frac{1}{m}\\sum_n G_n^2,\\qquad
     u = \\frac{g}{d_{EF} + \\lambda}\\quad
     \\Big(\\text{or } \\frac{g}{\\sqrt{d_{EF}} + \\lambda}
     \\text{ with } \\texttt{sqrt}\\Big)

  ``q`` is the diagonal of the empirical Fisher of the mean loss, (7.7) with
  the 1/N of App. D.3; by (7.22) it is the non-central second moment of the
  per-example gradients. It arrives as ``sq_grad_mean=`` (a pytree, or a
  ``BatchMoments``) or is computed from the engine's ``stats``/``weights``.
  With ``decay`` it is averaged by a bias-corrected EMA.

  Args:
    damping: λ > 0.
    decay: optional EMA constant in [0, 1) for q.
    sqrt: precondition with √q (Adam-like, §7.5) instead of q.
    layers, chunk_size: see :func:`nnopt.stats.moments.moments_from_stats`.

  References:
    Balles (2021), (7.7), (7.22), (D.32) (diagonal version).
  """
  if decay is not None:
    check_beta(decay, "decay")
  try:
    if float(damping) < 0:
      raise VarianceError(f"damping must be >= 0, got {damping!r}")
  except TypeError:
    pass

  def init_fn(params):
    return DiagEFState(jnp.zeros([], jnp.int32), zeros_like_tree(params))

  def update_fn(updates, state, params=None, *, sq_grad_mean=None, stats=None,
                weights=None, grad=None, **extra_args):
    del params, extra_args
    if sq_grad_mean is None:
      sq_grad_mean = moments_from_extra_args(
          updates, stats=stats, weights=weights, grad=grad, layers=layers,
          chunk_size=chunk_size, who="diag_ef").sq_mean
    elif isinstance(sq_grad_mean, BatchMoments):
      sq_grad_mean = sq_grad_mean.sq_mean
    if decay is None:
      nu, q = sq_grad_mean, sq_grad_mean
    else:
      nu = jax.tree.map(lambda x, e: decay * e + (1 - decay) * x,
                        sq_grad_mean, state.nu)
      q = debias(nu, decay, state.count)
    pre = (lambda d: jnp.sqrt(d)) if sqrt else (lambda d: d)
    out = jax.tree.map(lambda g, d: g / (pre(d) + damping), updates, q)
    new = DiagEFState(optax.safe_increment(state.count), nu)
    return skip_if_nonfinite((updates, sq_grad_mean), out, state, new)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def diag_ef(learning_rate: optax.ScalarOrSchedule, damping: float = 1e-8,
            decay: float | None = None, sqrt: bool = False, *, layers=None,
            chunk_size: int | None = None):
  """Diagonal empirical-Fisher descent ``θ ← θ − α g / (q + λ)``."""
  return _alias(scale_by_diag_ef(damping, decay, sqrt, layers=layers,
                                 chunk_size=chunk_size), learning_rate)


__all__ = [
    "DiagEFState", "block_normalized_gd", "coordinate_descent", "diag_ef",
    "l1_sign_gd", "scale_by_block_normalize", "scale_by_coordinate_descent",
    "scale_by_diag_ef", "scale_by_l1_sign",
]
