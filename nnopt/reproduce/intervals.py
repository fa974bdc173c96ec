"""Intervals of a difference of means over runs, and the verdict they give.

A thesis statement about two methods compares a quantity measured over
several runs (seeds) of each. :func:`difference_interval` estimates the
difference ``A − B`` of the means with a confidence interval:

* **paired** (runs of A and B share their start: the same seed gives the same
  initialization and data order): a t interval on the per-seed differences
  ``d_s = a_s − b_s``, ``mean(d) ± t_{n−1} · sd(d)/√n``;
* **unpaired**: Welch's t interval, ``(ā − b̄) ± t_ν · √(s_a²/n_a + s_b²/n_b)``
  with the Welch–Satterthwaite degrees of freedom ν;
* ``method='bootstrap'``: the percentile interval of the resampled difference
  of means (per-seed differences resampled when paired, each side
  independently otherwise), from a fixed generator seed.

:func:`decide` turns an interval into PASS / FAIL / INCONCLUSIVE: a statement
is a set ``S`` of differences (``A < B``: ``d < 0``; ``A ≈ B`` within ``δ``:
``|d| ≤ δ``; ...). PASS when the whole interval lies in ``S``, FAIL when it
lies wholly outside ``S``, INCONCLUSIVE when it covers both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

#: Relations a statement about ``d = A − B`` can have, with ASCII aliases.
#: ``'≤'`` and ``'≥'`` take a margin ``δ ≥ 0`` ("A at most δ above B",
#: "A at most δ below B": non-inferiority); ``'≈'`` needs ``δ > 0``
#: (equivalence).
RELATIONS = ("<", ">", "≈", "≤", "≥")
_ALIASES = {"<=": "≤", ">=": "≥", "~": "≈", "~=": "≈", "approx": "≈"}
METHODS = ("t", "bootstrap")


def canonical_relation(relation: str) -> str:
  """``'<='`` → ``'≤'`` etc.; raises ValueError for an unknown relation."""
  rel = _ALIASES.get(relation, relation)
  if rel not in RELATIONS:
    raise ValueError(f"relation must be one of {RELATIONS} (or "
                     f"{tuple(_ALIASES)}), got {relation!r}")
  return rel


@dataclasses.dataclass(frozen=True)
class Difference:
  """The estimated difference ``A − B`` of two means, with its interval.

  Attributes:
    method: how the interval was computed, in words (recorded).
    paired: whether the runs were paired by seed.
    confidence: the interval's nominal coverage, e.g. 0.95.
    n_a, n_b: the number of runs on each side (equal when paired).
    mean_a, se_a, mean_b, se_b: each side's mean and its standard error
      ``sd/√n`` (sd with ``ddof=1``).
    diff: ``mean_a − mean_b``.
    se: the standard error of ``diff`` (for the bootstrap: the standard
      deviation of the resampled differences).
    df: the t interval's degrees of freedom (None for the bootstrap).
    ci: ``(low, high)``.
  """

  method: str
  paired: bool
  confidence: float
  n_a: int
  n_b: int
  mean_a: float
  se_a: float
  mean_b: float
  se_b: float
  diff: float
  se: float
  df: float | None
  ci: tuple[float, float]

  def as_record(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "ci": list(self.ci)}


def _mean_se(x: np.ndarray) -> tuple[float, float]:
  return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


def _t_interval(diff: float, se: float, df: float, confidence: float):
  q = float(stats.t.ppf(0.5 + confidence / 2, df))
  return (diff - q * se, diff + q * se)


def difference_interval(a: Sequence[float], b: Sequence[float], *,
                        paired: bool, method: str = "t",
                        confidence: float = 0.95, n_boot: int = 10_000,
                        seed: int = 0) -> Difference:
  """The difference ``mean(a) − mean(b)`` and its confidence interval.

  Args:
    a: the quantity over the runs of A (when ``paired``: in seed order).
    b: the same for B (when ``paired``: the same seeds in the same order).
    paired: pair ``a[i]`` with ``b[i]`` (runs sharing their start).
    method: ``'t'`` (paired t or Welch's t) or ``'bootstrap'`` (percentile).
    confidence: nominal coverage in (0, 1).
    n_boot: bootstrap resamples.
    seed: the bootstrap generator's seed (fixed: the interval is
      reproducible).

  Raises:
    ValueError: fewer than 2 runs on a side, unequal lengths when paired,
      non-finite values, or an unknown method.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
  a = np.asarray(a, dtype=np.float64).ravel()
  b = np.asarray(b, dtype=np.float64).ravel()
  if len(a) < 2 or len(b) < 2:
    raise ValueError(f"need at least 2 runs per side, got {len(a)} and "
                     f"{len(b)}")
  if paired and len(a) != len(b):
    raise ValueError(f"paired runs need equal counts, got {len(a)} and "
                     f"{len(b)}")
  if not (np.isfinite(a).all() and np.isfinite(b).all()):
    raise ValueError("the measured values must be finite")
  (mean_a, se_a), (mean_b, se_b) = _mean_se(a), _mean_se(b)
  diff = mean_a - mean_b
  level = f"{confidence:.0%}"
  if method == "t" and paired:
    d = a - b
    _, se = _mean_se(d)
    df = float(len(d) - 1)
    ci = _t_interval(diff, se, df, confidence)
    name = f"paired t by seed ({level}, df {df:g})"
  elif method == "t":
    va, vb = se_a ** 2, se_b ** 2
    se = math.sqrt(va + vb)
    # Welch–Satterthwaite; with no spread on either side any df gives the
    # same (degenerate) interval.
    denom = va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)
    df = (va + vb) ** 2 / denom if denom > 0 else float(len(a) + len(b) - 2)
    ci = _t_interval(diff, se, df, confidence)
    name = f"Welch t ({level}, df {df:.3g})"
  else:
    rng = np.random.default_rng(seed)
    if paired:
      d = a - b
      idx = rng.integers(0, len(d), size=(n_boot, len(d)))
      boots = d[idx].mean(axis=1)
    else:
      ia = rng.integers(0, len(a), size=(n_boot, len(a)))
      ib = rng.integers(0, len(b), size=(n_boot, len(b)))
      boots = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    lo, hi = np.quantile(boots, [0.5 - confidence / 2, 0.5 + confidence / 2])
    ci, se, df = (float(lo), float(hi)), float(boots.std(ddof=1)), None
    name = (f"{'paired ' if paired else ''}percentile bootstrap ({level}, "
            f"{n_boot} resamples, generator seed {seed})")
  return Difference(name, bool(paired), float(confidence), len(a), len(b),
                    mean_a, se_a, mean_b, se_b, float(diff), float(se), df,
                    (float(ci[0]), float(ci[1])))


def statement_set(relation: str, margin: float = 0.0) -> tuple[float, float,
                                                                 bool, bool]:
  """The set of differences where the statement holds, as an interval.

  Returns:
    ``(low, high, low_closed, high_closed)``.
  """
  rel = canonical_relation(relation)
  margin = float(margin)
  if margin < 0 or (rel == "≈" and margin <= 0):
    raise ValueError(f"relation {rel!r} needs a margin "
                     f"{'> 0' if rel == '≈' else '≥ 0'}, got {margin}")
  if rel in "<>" and margin:
    raise ValueError(f"strict {rel!r} takes no margin; use '≤' or '≥'")
  return {"<": (-math.inf, 0.0, False, False),
          ">": (0.0, math.inf, False, False),
          "≈": (-margin, margin, True, True),
          "≤": (-math.inf, margin, False, True),
          "≥": (-margin, math.inf, True, False)}[rel]


def decide(ci: Sequence[float], relation: str, margin: float = 0.0) -> str:
  """PASS / FAIL / INCONCLUSIVE for a statement about ``d = A − B``.

  PASS when the whole interval lies where the statement holds, FAIL when it
  lies wholly where it does not, INCONCLUSIVE otherwise.

  Args:
    ci: ``(low, high)`` of ``A − B``.
    relation: one of :data:`RELATIONS` (or an alias): ``'<'`` A < B, ``'>'``
      A > B, ``'≈'`` |A − B| ≤ margin, ``'≤'`` A − B ≤ margin, ``'≥'``
      A − B ≥ −margin.
    margin: δ of ``'≈'``, ``'≤'`` and ``'≥'``.
  """
  lo, hi = float(ci[0]), float(ci[1])
  if not lo <= hi:
    raise ValueError(f"interval must have low ≤ high, got {ci!r}")
  s_lo, s_hi, lo_closed, hi_closed = statement_set(relation, margin)

  def inside(x):
    above = x >= s_lo if lo_closed else x > s_lo
    below = x <= s_hi if hi_closed else x < s_hi
    return above and below

  if inside(lo) and inside(hi):
    return "PASS"
  # [lo, hi] misses S entirely when it ends before S starts or starts after.
  before = hi < s_lo if lo_closed else hi <= s_lo
  after = lo > s_hi if hi_closed else lo >= s_hi
  if before or after:
    return "FAIL"
  return "INCONCLUSIVE"


def describe(relation: str, margin: float, a: str, b: str) -> str:
  """``'ADAM ≈ M-SSD within ±0.1'`` etc.: the statement in words."""
  rel = canonical_relation(relation)
  if rel in "<>":
    return f"{a} {rel} {b}"
  if rel == "≈":
    return f"{a} ≈ {b} within ±{margin:g}"
  sign = "+" if rel == "≤" else "−"
  return f"{a} {rel} {b} {sign} {margin:g}"


__all__ = ["Difference", "METHODS", "RELATIONS", "canonical_relation",
           "decide", "describe", "difference_interval", "statement_set"]
