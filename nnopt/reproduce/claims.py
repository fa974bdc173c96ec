"""Thesis claims and their ``claims.json`` records.

A :class:`Claim` states one thesis claim, what a reproduction measured and
what that says about it:

* ``PASS`` / ``FAIL``: the measurement confirms / contradicts the claim;
* ``INCONCLUSIVE``: a comparison over runs whose interval covers both
  (:mod:`nnopt.reproduce.intervals`);
* ``NOT RUN``: not checked, with the reason (never silent);
* ``INFO``: a measurement without a verdict, e.g. the fraction of seeds where
  a statement about one run of the thesis holds.

Every record carries its ``scope``: ``'full'`` (the thesis's setting: a
verdict on the thesis) or ``'smoke'`` (a stand-in problem, named in
``stand_in``: evidence only that the code runs). A quick run writes only
smoke records (:func:`nnopt.reproduce.runner.run_reproduction` relabels).

:class:`Claims` collects the claims of one thesis with helpers that decide
the status: ``equal``, ``close``, ``less``, ``check``, ``compare`` (two
quantities over several runs, with an interval), ``fraction`` (INFO),
``info`` and ``not_run``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from nnopt.reproduce import intervals

THESES = ("kreis", "balles", "mlsgd")
STATUSES = ("PASS", "FAIL", "INCONCLUSIVE", "NOT RUN", "INFO")
PASS, FAIL, INCONCLUSIVE, NOT_RUN, INFO = STATUSES
#: Statuses that are a verdict on the claim.
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
SCOPES = ("full", "smoke")
FULL, SMOKE = SCOPES
CLAIMS_FILE, RUN_FILE = "claims.json", "run.json"
_OPTIONAL = ("reason", "quote", "dataset", "stand_in", "comparison")


class ReproduceError(ValueError):
  """Unknown reproduction id, broken registry entry or invalid claims file."""


def jsonable(value: Any) -> Any:
  """numpy/jax scalars and arrays, tuples and paths → JSON-serializable values."""
  if isinstance(value, Mapping):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, (str, bool, int)) or value is None:
    return value
  if isinstance(value, float):
    return value if math.isfinite(value) else str(value)
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  if hasattr(value, "tolist"):  # numpy / jax arrays and scalars
    return jsonable(value.tolist())
  return str(value)


@dataclasses.dataclass(frozen=True)
class Claim:
  """One thesis claim and what the reproduction says about it.

  Attributes:
    thesis: ``'kreis'``, ``'balles'`` or ``'mlsgd'``.
    item: the thesis item, e.g. ``'Table 4.3'`` or ``'Fig. 4.5a'``.
    claim: the claim in words, with the thesis's number where there is one.
    measured: what the reproduction measured (JSON-serializable).
    status: one of :data:`STATUSES`.
    reason: why it was not run (required for ``'NOT RUN'``, recorded only
      there).
    scope: ``'full'`` (the thesis's setting) or ``'smoke'`` (a stand-in).
    quote: the thesis sentence the claim checks.
    dataset: the data it was measured on, where that is not the thesis's
      (e.g. ``'fashion_mnist'``) or worth naming.
    stand_in: the stand-in problem of a smoke record (required for smoke).
    comparison: the interval record of a comparison over runs
      (:meth:`Claims.compare`).
  """

  thesis: str
  item: str
  claim: str
  measured: dict[str, Any]
  status: str
  reason: str | None = None
  scope: str = FULL
  quote: str | None = None
  dataset: str | None = None
  stand_in: str | None = None
  comparison: dict[str, Any] | None = None

  def __post_init__(self):
    if self.thesis not in THESES:
      raise ReproduceError(f"claim thesis must be one of {THESES}, got "
                           f"{self.thesis!r}")
    if self.status not in STATUSES:
      raise ReproduceError(f"claim status must be one of {STATUSES}, got "
                           f"{self.status!r}")
    if self.scope not in SCOPES:
      raise ReproduceError(f"claim scope must be one of {SCOPES}, got "
                           f"{self.scope!r}")
    if self.status == NOT_RUN and not self.reason:
      raise ReproduceError(f"NOT RUN claim {self.claim!r} needs a reason")
    if self.scope == SMOKE and not self.stand_in:
      raise ReproduceError(f"smoke claim {self.claim!r} needs the stand-in "
                           "problem it ran on (stand_in)")
    if not isinstance(self.measured, Mapping):
      raise ReproduceError(f"claim {self.claim!r}: measured must be a dict, "
                           f"got {self.measured!r}")
    if self.comparison is not None and not isinstance(self.comparison,
                                                      Mapping):
      raise ReproduceError(f"claim {self.claim!r}: comparison must be a dict")
    object.__setattr__(self, "measured", jsonable(dict(self.measured)))
    if self.comparison is not None:
      object.__setattr__(self, "comparison",
                         jsonable(dict(self.comparison)))

  def to_record(self) -> dict[str, Any]:
    record = {"thesis": self.thesis, "item": self.item, "claim": self.claim,
              "scope": self.scope, "measured": self.measured,
              "status": self.status}
    for key in _OPTIONAL:
      value = getattr(self, key)
      if value is not None and (key != "reason" or self.status == NOT_RUN):
        record[key] = value
    return record

  @classmethod
  def from_record(cls, record: Mapping[str, Any]) -> "Claim":
    """The claim of a record; a record without ``scope`` (written before
    scopes existed) is read as full size."""
    if not isinstance(record, Mapping):
      raise ReproduceError(f"a claim record must be an object, got {record!r}")
    missing = [k for k in ("thesis", "item", "claim", "measured", "status")
               if k not in record]
    if missing:
      raise ReproduceError(f"claim record lacks {missing}: {record!r}")
    return cls(record["thesis"], str(record["item"]), str(record["claim"]),
               record["measured"], record["status"], record.get("reason"),
               record.get("scope", FULL),
               **{k: record.get(k) for k in _OPTIONAL[1:]})


def smoke_label(claim: Claim, stand_in: str) -> Claim:
  """``claim`` as a smoke record on ``stand_in`` (unchanged if smoke already).

  The text says that it ran on the stand-in, so that a full-size claim's
  words never stand alone on a smoke result.
  """
  if claim.scope == SMOKE:
    return claim
  return dataclasses.replace(
      claim, scope=SMOKE, stand_in=stand_in,
      claim=f"[smoke on {stand_in}; not the full-size check] {claim.claim}")


def check(thesis: str, item: str, claim: str, passed: bool,
          measured: Mapping[str, Any] | None = None, **more: Any) -> Claim:
  """A PASS/FAIL claim: ``passed`` decides, ``measured`` (and ``**more``) record."""
  return Claim(thesis, item, claim, {**(measured or {}), **more},
               PASS if bool(passed) else FAIL)


def not_run(thesis: str, item: str, claim: str, reason: str,
            measured: Mapping[str, Any] | None = None) -> Claim:
  """A claim that this reproduction does not check, and why."""
  return Claim(thesis, item, claim, dict(measured or {}), NOT_RUN, reason)


def _by_seed(values: Mapping[Any, float] | Sequence[float]
             ) -> dict[Any, float]:
  if isinstance(values, Mapping):
    return {k: float(v) for k, v in values.items()}
  return {i: float(v) for i, v in enumerate(values)}


class Claims(list):
  """A list of :class:`Claim` s of one thesis, with helpers that append.

  Args:
    thesis: the thesis of every claim.
    claims: initial claims.
    scope: the scope of the claims the helpers make (``'smoke'`` needs
      ``stand_in``); :meth:`smoke` switches it for a block.
    stand_in: the stand-in problem of smoke claims.
    dataset: the dataset recorded on the claims the helpers make.
  """

  def __init__(self, thesis: str, claims: Iterable[Claim] = (), *,
               scope: str = FULL, stand_in: str | None = None,
               dataset: str | None = None):
    super().__init__(claims)
    if thesis not in THESES:
      raise ReproduceError(f"thesis must be one of {THESES}, got {thesis!r}")
    if scope not in SCOPES or (scope == SMOKE and not stand_in):
      raise ReproduceError(f"scope must be one of {SCOPES} (smoke with a "
                           f"stand_in), got {scope!r}, {stand_in!r}")
    self.thesis, self.scope, self.stand_in = thesis, scope, stand_in
    self.dataset = dataset

  @contextlib.contextmanager
  def smoke(self, stand_in: str) -> Iterator["Claims"]:
    """Claims made inside the block are smoke records on ``stand_in``."""
    saved = self.scope, self.stand_in
    self.scope, self.stand_in = SMOKE, stand_in
    try:
      yield self
    finally:
      self.scope, self.stand_in = saved

  def _add(self, item: str, claim: str, measured: Mapping[str, Any],
           status: str, *, reason: str | None = None,
           quote: str | None = None,
           comparison: Mapping[str, Any] | None = None) -> Claim:
    self.append(Claim(self.thesis, item, claim, dict(measured), status,
                      reason, self.scope, quote, self.dataset,
                      self.stand_in if self.scope == SMOKE else None,
                      None if comparison is None else dict(comparison)))
    return self[-1]

  def check(self, item: str, claim: str, passed: bool,
            measured: Mapping[str, Any] | None = None, *,
            quote: str | None = None, **more: Any) -> Claim:
    """Appends a PASS/FAIL claim decided by ``passed``."""
    return self._add(item, claim, {**(measured or {}), **more},
                     PASS if bool(passed) else FAIL, quote=quote)

  def equal(self, item: str, claim: str, measured: Any, expected: Any, *,
            name: str = "value", quote: str | None = None) -> Claim:
    """PASS iff ``measured == expected``; records both."""
    return self.check(item, claim, measured == expected,
                      {name: measured, f"expected_{name}": expected},
                      quote=quote)

  def close(self, item: str, claim: str, measured: float, expected: float, *,
            rtol: float = 1e-2, atol: float = 0.0,
            name: str = "value", quote: str | None = None) -> Claim:
    """PASS iff ``|measured - expected| <= atol + rtol |expected|``."""
    ok = abs(float(measured) - float(expected)) <= atol + rtol * abs(
        float(expected))
    return self.check(item, claim, ok, {name: measured,
                                        f"expected_{name}": expected,
                                        "rtol": rtol, "atol": atol},
                      quote=quote)

  def less(self, item: str, claim: str, smaller: float, larger: float, *,
           names: tuple[str, str] = ("a", "b"),
           quote: str | None = None) -> Claim:
    """PASS iff ``smaller < larger`` (one measurement each: no interval)."""
    return self.check(item, claim, float(smaller) < float(larger),
                      {names[0]: smaller, names[1]: larger}, quote=quote)

  def compare(self, item: str, claim: str,
              a: Mapping[Any, float] | Sequence[float],
              b: Mapping[Any, float] | Sequence[float], *,
              relation: str, quote: str, names: tuple[str, str] = ("A", "B"),
              margin: float = 0.0, quantity: str = "",
              paired: bool = True, method: str = "t",
              confidence: float = 0.95, min_runs: int = 2,
              missing: str | None = None,
              measured: Mapping[str, Any] | None = None) -> Claim:
    """Appends the verdict on ``A <relation> B`` from runs of each side.

    The interval of ``A − B`` (:func:`intervals.difference_interval`) decides
    (:func:`intervals.decide`): PASS when it lies where the statement holds,
    FAIL when it lies wholly outside, else INCONCLUSIVE. With fewer than
    ``min_runs`` runs (pairs, when paired) the claim is NOT RUN and says
    which runs there are.

    Args:
      item: the thesis item.
      claim: the claim in words.
      a: the quantity over the runs of A: ``{seed: value}`` (paired runs are
        matched by seed; seeds of one side only are left out and recorded),
        or a sequence (paired: in the same order as ``b``).
      b: the same for B.
      relation: ``'<'``, ``'>'``, ``'≈'`` (within ``margin``), ``'≤'`` or
        ``'≥'`` (with ``margin``; :func:`intervals.decide`).
      quote: the thesis sentence the claim checks.
      names: the two sides' names.
      margin: δ, fixed in code before any run (from the thesis or spec).
      quantity: what was measured, in words.
      paired: the runs of A and B share their start seed by seed.
      method: ``'t'`` or ``'bootstrap'``.
      confidence: the interval's coverage.
      min_runs: the fewest runs per side (pairs) for a verdict (≥ 2).
      missing: appended to the NOT RUN reason, e.g. the runs to produce.
      measured: more to record.
    """
    rel = intervals.canonical_relation(relation)
    intervals.statement_set(rel, margin)  # validates the margin up front
    a_by, b_by = _by_seed(a), _by_seed(b)
    statement = intervals.describe(rel, margin, *names)
    base = {"statement": statement, "relation": rel, "margin": margin,
            "quantity": quantity, "a": names[0], "b": names[1]}
    if paired:
      seeds = [s for s in a_by if s in b_by]
      left_out = sorted({*a_by, *b_by} - set(seeds), key=str)
      xs, ys = [a_by[s] for s in seeds], [b_by[s] for s in seeds]
      have = len(seeds)
    else:
      seeds, left_out = None, []
      xs, ys = list(a_by.values()), list(b_by.values())
      have = min(len(xs), len(ys))
    info = {**(measured or {}), "quantity": quantity}
    if have < max(2, min_runs):
      what = "seeds run for both sides" if paired else "runs per side"
      reason = (f"needs ≥ {max(2, min_runs)} {what}; {names[0]} has "
                f"{sorted(a_by, key=str)}, {names[1]} has "
                f"{sorted(b_by, key=str)}" + (f"; {missing}" if missing
                                              else ""))
      return self._add(item, claim, {**info, names[0]: a_by, names[1]: b_by},
                       NOT_RUN, reason=reason, quote=quote)
    diff = intervals.difference_interval(xs, ys, paired=paired, method=method,
                                         confidence=confidence)
    status = intervals.decide(diff.ci, rel, margin)
    comparison = {**base, **diff.as_record(),
                  "a_values": a_by if not paired else dict(zip(seeds, xs)),
                  "b_values": b_by if not paired else dict(zip(seeds, ys))}
    if paired:
      comparison["seeds"] = seeds
      if left_out:
        comparison["unpaired_seeds_left_out"] = left_out
    return self._add(item, claim, info, status, quote=quote,
                     comparison=comparison)

  def fraction(self, item: str, claim: str, holds: Mapping[Any, bool], *,
               quote: str, measured: Mapping[str, Any] | None = None,
               missing: str | None = None) -> Claim:
    """An INFO record: the fraction of seeds where a one-run statement holds.

    The thesis states it of one run (one instance); over several seeds the
    reproduction reports how often it holds instead of a verdict. NOT RUN
    when there are no seeds (``missing`` is appended to the reason).
    """
    holds = {k: bool(v) for k, v in holds.items()}
    info = {**(measured or {}), "holds_by_seed": holds}
    if not holds:
      reason = "no seed has the runs it needs" + (f"; {missing}" if missing
                                                  else "")
      return self._add(item, claim, info, NOT_RUN, reason=reason,
                       quote=quote)
    info.update(fraction=sum(holds.values()) / len(holds), n=len(holds))
    return self._add(item, claim, info, INFO, quote=quote)

  def info(self, item: str, claim: str, measured: Mapping[str, Any], *,
           quote: str | None = None) -> Claim:
    """Appends an INFO record: a measurement without a verdict."""
    return self._add(item, claim, measured, INFO, quote=quote)

  def not_run(self, item: str, claim: str, reason: str,
              measured: Mapping[str, Any] | None = None, *,
              quote: str | None = None) -> Claim:
    """Appends a NOT RUN claim with its reason."""
    return self._add(item, claim, dict(measured or {}), NOT_RUN,
                     reason=reason, quote=quote)


def count_statuses(claims: Iterable[Claim]) -> dict[str, int]:
  counts = {s: 0 for s in STATUSES}
  for c in claims:
    counts[c.status] += 1
  return counts


def write_claims(path: str | os.PathLike[str], claims: Iterable[Claim]) -> None:
  """Writes ``claims.json`` (a list of records)."""
  records = [c.to_record() for c in claims]
  Path(path).write_text(json.dumps(records, indent=2, ensure_ascii=False)
                        + "\n", encoding="utf-8")


def read_claims(path: str | os.PathLike[str]) -> list[Claim]:
  """Reads and validates a ``claims.json``; raises :class:`ReproduceError`."""
  try:
    records = json.loads(Path(path).read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise ReproduceError(f"cannot read {path}: {e}") from None
  if not isinstance(records, list):
    raise ReproduceError(f"{path} must hold a list of claim records")
  try:
    return [Claim.from_record(r) for r in records]
  except (ReproduceError, TypeError) as e:
    raise ReproduceError(f"{path}: {e}") from None


__all__ = ["CLAIMS_FILE", "Claim", "Claims", "FAIL", "FULL", "INCONCLUSIVE",
           "INFO", "NOT_RUN", "PASS", "RUN_FILE", "ReproduceError", "SCOPES",
           "SMOKE", "STATUSES", "THESES", "VERDICTS", "check",
           "count_statuses", "jsonable", "not_run", "read_claims",
           "smoke_label", "write_claims"]
