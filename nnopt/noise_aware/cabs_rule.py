"""The batch-size rules of Balles ch. 4 as pure functions: CABS (Algorithm 1,
(4.20)) and the competitor of Byrd et al. / De et al. (§3.7, (4.18)).

CABS picks the NEXT batch size from the current step:

.. math::

   \\bar\\sigma^2 \\leftarrow \\mu \\bar\\sigma^2 + (1-\\mu)\\,\\operatorname{tr}\\hat\\Sigma,
   \\qquad
   \\bar f \\leftarrow \\mu \\bar f + (1-\\mu) f,
   \\qquad
   m \\leftarrow \\operatorname{clip}\\Big(\\operatorname{round}\\Big(
       c\\,\\alpha \\frac{\\bar\\sigma^2}{\\bar f + \\epsilon}\\Big),
       m_{\\min}, m_{\\max}\\Big)

with ``tr Σ̂ = Σ_j s_j`` the trace of the per-EXAMPLE gradient covariance
(3.30) and f the batch loss. The competitor uses ``m = σ̄² / (θ_c² N̄)`` with N̄
an EMA of ``‖g‖²``. Both EMAs start at 0, so their initialisation bias cancels
in the ratio. The rules run on the host on Python floats;
:mod:`nnopt.noise_aware.cabs` applies them to a training run.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class CABSError(ValueError):
  """CABS cannot run with the given settings."""


class BatchRuleState(NamedTuple):
  """Host-side state of a batch-size rule (Python floats).

  Attributes:
    var_avg: EMA of ``tr Σ̂`` (σ̄²).
    denom_avg: EMA of f (CABS) or of ``‖g‖²`` (competitor).
    batch_size: the batch size chosen for the next step.
  """

  var_avg: float = 0.0
  denom_avg: float = 0.0
  batch_size: int = 16


def round_clip(value: float, m_min: int, m_max: int) -> int:
  """``clip(round(value), m_min, m_max)``; non-finite or ≤ 0 → ``m_max``
  if the numerator dominates, else ``m_min`` (Alg. 1 line 8)."""
  if math.isnan(value):
    return m_min
  if math.isinf(value):
    return m_max if value > 0 else m_min
  return int(min(max(round(value), m_min), m_max))


def cabs_next(state: BatchRuleState, loss: float, trace: float,
              learning_rate: float, *, mu: float = 0.95, m_min: int = 16,
              m_max: int = 2048, eps: float = 0.0, c: float = 1.0
              ) -> BatchRuleState:
  """One CABS update, Algorithm 1 lines 6–8 (both EMAs start at 0).

  A non-positive f̄ (possible when f* < 0, spec A3) gives ``m_max``.
  """
  var_avg = mu * state.var_avg + (1 - mu) * trace
  f_avg = mu * state.denom_avg + (1 - mu) * loss
  denom = f_avg + eps
  value = c * learning_rate * var_avg / denom if denom > 0 else math.inf
  return BatchRuleState(var_avg, f_avg, round_clip(value, m_min, m_max))


def competitor_next(state: BatchRuleState, trace: float, grad_sq_norm: float,
                    theta: float, *, mu: float = 0.95, m_min: int = 16,
                    m_max: int = 2048) -> BatchRuleState:
  """One competitor update: ``m = σ̄² / (θ_c² N̄)`` with EMAs (§3.7, (4.18))."""
  var_avg = mu * state.var_avg + (1 - mu) * trace
  norm_avg = mu * state.denom_avg + (1 - mu) * grad_sq_norm
  denom = theta * theta * norm_avg
  value = var_avg / denom if denom > 0 else math.inf
  return BatchRuleState(var_avg, norm_avg, round_clip(value, m_min, m_max))


__all__ = ["BatchRuleState", "CABSError", "cabs_next", "competitor_next",
           "round_clip"]
