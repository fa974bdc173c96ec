"""Multilevel SGD (MLSGD thesis Algorithms 4/5, spec-mlsgd §1.6): settings and
the pure pieces of a V-cycle.

A V-cycle restricts the fine weights all the way down (no pre-smoothing),
runs T_0 epochs of SGD on the coarsest level, then on the way up adds the
prolonged coarse *step* w_l ← w0_l + P(s_{l−1}) with unit length and runs T_l
epochs on level l. Variants of the level-l search direction (Euclidean form,
c_l = (P_{l+1}⋯P_L)ᵀ G_L with G_L the fine gradient at the cycle start):

* ``'none'``: d = ∇F_l(w; B) on every level (the variant that wins in ch. 4);
* ``'det'`` / ``'stoch'``: d = ∇F_l(w; B) + v_l + λ(w − w0_l) with
  v_l = c_l − ∇F_l(w0_l; D_l) once per cycle (v_L = 0, no λ on top), G_L a
  full (det) or a q-fraction sample (stoch) gradient, (3.15)/(3.16);
* ``'det_vr'`` / ``'stoch_vr'``: d = ∇F_l(w; B) − ∇F_l(w0_l; B) + c_l +
  λ(w − w0_l) (SVRG with snapshot w0_l on every level, (3.21)).

The V-cycles run in the engine's training loop through
:class:`nnopt.multilevel.hook.MLSGDHook`, whose level direction is the optax
transform :func:`nnopt.multilevel.mlsgd_transforms.mlsgd_direction`. This
module holds what they share: the settings (:class:`MLSGDConfig`), the angle
condition (3.3) (:func:`angle_ok`), the recursion gates (3.4)/(3.5)
(:func:`gates_ok`) and chunked full gradients (:func:`full_gradient`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu

PyTree = Any
LossFn = Callable[[PyTree, jax.Array, jax.Array, jax.Array], jax.Array]
VARIANTS = ("none", "det", "det_vr", "stoch", "stoch_vr")
ANGLE_CHECKS = ("off", "per_step", "per_epoch")


@dataclasses.dataclass(frozen=True)
class MLSGDConfig:
  """MLSGD settings (defaults of spec-mlsgd §1.7 where the thesis gives them).

  The mini-batch size is the trainer's (the same on every level).

  Attributes:
    epochs: T_l per level, ordered coarsest → finest (depth: (7, 5, 3)).
    n_cycles: V-cycles K_L (None: until the trainer stops).
    lr: step size, float or a function of the global epoch count (all levels).
    variant: one of VARIANTS.
    lam: λ of the step-size regularization (only with gradient correction).
    stoch_fraction: q, fraction of the fine data for stochastic GC.
    coarse_term: stochastic GC without VR: ``'full'`` coarse gradient or the
      ``'same_sample'`` ζ.
    first_cycle_no_gc: the first cycle runs without correction.
    angle_check: ``'off'``, ``'per_step'`` or ``'per_epoch'``.
    mu: angle constant μ.
    eta, eps: recursion gates (None disables).
    grad_chunk: chunk size of full-gradient passes.
  """

  epochs: tuple[int, ...]
  n_cycles: int | None = None
  lr: float | Callable[[int], float] = 0.05
  variant: str = "none"
  lam: float = 5.0
  stoch_fraction: float = 0.03125
  coarse_term: str = "full"
  first_cycle_no_gc: bool = True
  angle_check: str = "off"
  mu: float = 0.0
  eta: float | None = None
  eps: float | None = None
  grad_chunk: int = 1000

  def validate(self, num_levels: int) -> None:
    if self.variant not in VARIANTS:
      raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
    if self.angle_check not in ANGLE_CHECKS:
      raise ValueError(f"angle_check must be one of {ANGLE_CHECKS}, got "
                       f"{self.angle_check!r}")
    if self.coarse_term not in ("full", "same_sample"):
      raise ValueError("coarse_term must be 'full' or 'same_sample'")
    if len(self.epochs) != num_levels:
      raise ValueError(f"epochs has {len(self.epochs)} entries for "
                       f"{num_levels} levels (order: coarsest → finest)")
    if sum(self.epochs) < 1:
      raise ValueError("MLSGD needs at least one epoch per cycle")


# -- pure pieces ------------------------------------------------------------------


def angle_ok(fine_grad: PyTree, delta: PyTree, mu: float) -> jax.Array:
  """(3.3): −⟨G, Δ⟩ ≥ μ‖G‖‖Δ‖; Δ = 0 is accepted."""
  lhs = -otu.tree_vdot(fine_grad, delta)
  return lhs >= mu * otu.tree_norm(fine_grad) * otu.tree_norm(delta)


def gates_ok(c: PyTree, restricted_c: PyTree, eta: float | None,
             eps: float | None) -> bool:
  """(3.4) ‖Pᵀc‖ ≥ η‖c‖ and (3.5) ‖Pᵀc‖ ≥ ϵ (Euclidean, h ≡ 1).

  With both gates off (None) it returns True without reading any number back
  from the device.
  """
  if eta is None and eps is None:
    return True
  coarse = float(otu.tree_norm(restricted_c))
  ok = True
  if eta is not None:
    ok &= coarse >= eta * float(otu.tree_norm(c))
  if eps is not None:
    ok &= coarse >= eps
  return bool(ok)


def full_gradient(loss_fn: LossFn, params: PyTree, x, y, chunk: int,
                  index: np.ndarray | None = None) -> PyTree:
  """Mean gradient over ``x[index]`` (all data by default), in chunks."""
  n = len(x) if index is None else len(index)
  index = np.arange(n) if index is None else np.asarray(index)
  chunk = min(chunk, n)
  pad = (-n) % chunk
  idx = np.concatenate([index, np.zeros(pad, index.dtype)]).reshape(-1, chunk)
  w = np.concatenate([np.ones(n), np.zeros(pad)]).astype(np.float32)
  return _chunked_grad(loss_fn, params, x, y, jnp.asarray(idx),
                       jnp.asarray(w.reshape(-1, chunk)), n)


@functools.partial(jax.jit, static_argnums=(0, 6))
def _chunked_grad(loss_fn, params, x, y, idx, w, n):
  def body(acc, args):
    i, wi = args
    # loss_fn is a weighted mean: scale back to a weighted sum.
    g = jax.grad(loss_fn)(params, x[i], y[i], wi)
    return otu.tree_add_scale(acc, jnp.sum(wi) / n, g), None

  return jax.lax.scan(body, otu.tree_zeros_like(params), (idx, w))[0]


__all__ = ["ANGLE_CHECKS", "MLSGDConfig", "VARIANTS", "angle_ok",
           "full_gradient", "gates_ok"]
