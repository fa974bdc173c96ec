"""Moving-average variance estimation of Balles §5.4.1 (spec-noise-aware §1.3).

With one EMA constant β for the gradients and their squares, bias-corrected
with ``β^{t+1}`` (t counted from 0; optax's ``tree_bias_correction`` with
``count = t + 1``), the EMA ``m_t`` is a weighted mean
``Σ_s c(β,t,s) g_s`` whose weights have the squared sum

.. math::

   \\rho(\\beta,t) = \\sum_s c(\\beta,t,s)^2
     = \\frac{(1-\\beta)(1+\\beta^{t+1})}{(1+\\beta)(1-\\beta^{t+1})}
   \\qquad (5.15,\\ B.26)

so ``Var[m_t] ≈ ρ σ²`` and ``E[v_t − m_t²] ≈ (1 − ρ) σ²``, which gives the
bias-corrected variance estimate ``ŝ_t = (v_t − m_t²) / (1 − ρ)`` (5.16) — the
moving-average analogue of Bessel's correction.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from nnopt.stats.layer_moments import VarianceError

Array = jax.Array


def check_beta(beta: Any, name: str = "beta") -> None:
  """Raises :class:`~nnopt.stats.layer_moments.VarianceError` for a concrete
  β outside [0, 1); a traced β (``optax.inject_hyperparams`` under ``jit``)
  cannot be checked here."""
  try:
    value = float(beta)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return
  if not (0.0 <= value < 1.0) or math.isnan(value):
    raise VarianceError(f"{name} must lie in [0, 1), got {beta!r}")


def ema_rho(beta, t, dtype=jnp.float32) -> Array:
  """``ρ(β, t) = (1−β)(1+β^{t+1}) / ((1+β)(1−β^{t+1}))`` (5.15, B.26).

  The variance of the bias-corrected EMA ``m_t`` in units of one step's
  variance; ``ρ(β, 0) = 1`` and ``ρ ≡ 1`` for ``β = 0`` (then ``1 − ρ = 0``).
  Computed in ``dtype`` (at least float32).
  """
  dtype = jnp.result_type(dtype, jnp.float32)  # canonical: no f64 without x64
  beta = jnp.asarray(beta, dtype)
  bt = beta ** (jnp.asarray(t, dtype) + 1)
  denom = (1 + beta) * (1 - bt)
  rho = (1 - beta) * (1 + bt) / jnp.where(denom > 0, denom, 1)
  return jnp.where(denom > 0, jnp.minimum(rho, 1), 1)


def ema_variance(mean, second, beta, t):
  """Bias-corrected EMA variance ``ŝ_t = (v_t − m_t²) / (1 − ρ(β,t))`` (5.16).

  ``mean`` and ``second`` are the bias-corrected EMAs ``m_t`` and ``v_t``
  (pytrees). Where ``1 − ρ = 0`` (t = 0, or β = 0 at every t) no estimate
  exists and ŝ = 0 (the verified fix of the spec: a guard on t alone would
  give 0/0 for β = 0); ŝ is clamped at 0 against float round-off.
  """
  dtype = jnp.result_type(jnp.float32, *(
      jax.dtypes.canonicalize_dtype(x.dtype) for x in jax.tree.leaves(mean)))
  rho = ema_rho(beta, t, dtype)
  one_minus = 1 - rho
  ok = one_minus > 0
  safe = jnp.where(ok, one_minus, 1)
  return jax.tree.map(
      lambda m, v: jnp.where(ok, jnp.maximum(v - m * m, 0) / safe, 0),
      mean, second)


__all__ = ["check_beta", "ema_rho", "ema_variance"]
