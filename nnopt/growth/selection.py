"""Which candidate to insert, and whether to insert at all (Kreis §4.3.2).

Rules: ``'max'`` (SensLI: the largest merit), ``'min'`` (the thesis's
"LI_other" control), ``'random'`` (uniform) and ``'fixed'`` (a given
position). The optional threshold rule (4.18) accepts a candidate only if

.. math::  \\frac{\\|\\nabla_{W_i}\\hat f_{ext}\\|^2}
           {\\frac{1}{\\#\\mathcal W}\\sum_{W\\in\\mathcal W}\\|\\nabla_W \\hat f_{ext}\\|^2}
           \\ \\ge\\ \\tau ,\\qquad \\tau \\ge 1,

with ``𝒲`` from :func:`nnopt.growth.sensitivity.reference_merits`; the
thesis compares with ``>=``, the reference code with ``>`` (``strict``), and
the thesis allows accepting several candidates at once
(``accept_multiple``) where the code takes one. An empty selection means "no
insertion"; it is a normal outcome, reported with its reason.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np

from nnopt.growth.architecture import GrowthError

RULES = ("max", "min", "random", "fixed")


class Selection(NamedTuple):
  """Outcome of :func:`select`.

  Attributes:
    chosen: names of the candidates to insert (empty: no insertion).
    ratios: threshold ratio (4.18) of every candidate (empty without a
      threshold).
    reason: a readable account of the decision.
  """

  chosen: tuple[str, ...]
  ratios: dict[str, float]
  reason: str


def select(merits: Mapping[str, float], rule: str = "max", *,
           seed: int | np.random.Generator | None = None,
           position: int | str | None = None, threshold: float | None = None,
           reference: Mapping[str, float] | Sequence[float] | None = None,
           strict: bool = False, accept_multiple: bool = False) -> Selection:
  """Chooses candidates from their merits.

  Args:
    merits: ``{candidate name: merit}`` in network order.
    rule: ``'max'``, ``'min'``, ``'random'`` or ``'fixed'``.
    seed: seed or numpy generator of ``'random'``.
    position: index into ``merits`` (or a name) for ``'fixed'``.
    threshold: ``τ`` of (4.18); None inserts unconditionally.
    reference: merits of the set ``𝒲`` (the denominator's terms).
    strict: compare with ``>`` (reference code) instead of ``>=`` (thesis).
    accept_multiple: with a threshold, insert every candidate that passes
      (thesis); else only the rule's choice, if it passes.

  Raises:
    GrowthError: no candidates, unknown rule, bad position, ``τ < 1`` or a
      threshold without reference merits.
  """
  names = list(merits)
  if not names:
    raise GrowthError("no candidate positions to select from")
  if rule not in RULES:
    raise GrowthError(f"selection rule must be one of {RULES}, got {rule!r}")
  values = np.array([float(merits[n]) for n in names])
  if not np.all(np.isfinite(values)):
    raise GrowthError(f"non-finite merits {dict(merits)}; refusing to select")
  if rule == "max":
    pick = int(np.argmax(values))
  elif rule == "min":
    pick = int(np.argmin(values))
  elif rule == "random":
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pick = int(rng.integers(len(names)))
  else:
    if isinstance(position, str) and position in names:
      pick = names.index(position)
    elif isinstance(position, (int, np.integer)) and 0 <= position < len(names):
      pick = int(position)
    else:
      raise GrowthError(f"fixed position {position!r} is not one of the "
                        f"{len(names)} candidates {names}")
  if threshold is None:
    return Selection((names[pick],), {},
                     f"rule {rule!r} chose {names[pick]} (merit {values[pick]:.4g})")
  if threshold < 1:
    raise GrowthError(f"threshold τ must be >= 1 (4.18), got {threshold}")
  ref = np.array(list(reference.values()) if isinstance(reference, Mapping)
                 else list(reference or []), dtype=float)
  if ref.size == 0:
    raise GrowthError("the threshold rule needs the reference merits 𝒲")
  mean = float(np.mean(ref))
  ratios = {n: (float(v) / mean if mean > 0 else float("inf"))
            for n, v in zip(names, values)}
  passes = (lambda r: r > threshold) if strict else (lambda r: r >= threshold)
  op = ">" if strict else ">="
  if accept_multiple:
    chosen = tuple(n for n in names if passes(ratios[n]))
  else:
    chosen = (names[pick],) if passes(ratios[names[pick]]) else ()
  if not chosen:
    return Selection((), ratios,
                     f"no insertion: best ratio {max(ratios.values()):.4g} "
                     f"is not {op} τ={threshold} (rule {rule!r})")
  return Selection(chosen, ratios,
                   f"inserted {list(chosen)}: ratio {op} τ={threshold} "
                   f"({', '.join(f'{n}: {ratios[n]:.4g}' for n in chosen)})")
