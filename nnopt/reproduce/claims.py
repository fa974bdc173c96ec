"""Thesis claims and their ``claims.json`` records.

A :class:`Claim` states one thesis claim, what a reproduction measured and
whether it confirms it: ``PASS``, ``FAIL`` or ``NOT RUN`` with a reason, never
silent. :class:`Claims` collects the claims of one thesis with helpers that
decide the status (``equal``, ``close``, ``less``, ``check``, ``not_run``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

THESES = ("kreis", "balles", "mlsgd")
STATUSES = ("PASS", "FAIL", "NOT RUN")
PASS, FAIL, NOT_RUN = STATUSES
CLAIMS_FILE = "claims.json"
RUN_FILE = "run.json"


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
  """One thesis claim and whether the reproduction confirms it.

  Attributes:
    thesis: ``'kreis'``, ``'balles'`` or ``'mlsgd'``.
    item: the thesis item, e.g. ``'Table 4.3'`` or ``'Fig. 4.5a'``.
    claim: the claim in words, with the thesis's number where there is one.
    measured: what the reproduction measured (JSON-serializable).
    status: ``'PASS'``, ``'FAIL'`` or ``'NOT RUN'``.
    reason: why it was not run (required for ``'NOT RUN'``).
  """

  thesis: str
  item: str
  claim: str
  measured: dict[str, Any]
  status: str
  reason: str | None = None

  def __post_init__(self):
    if self.thesis not in THESES:
      raise ReproduceError(f"claim thesis must be one of {THESES}, got "
                           f"{self.thesis!r}")
    if self.status not in STATUSES:
      raise ReproduceError(f"claim status must be one of {STATUSES}, got "
                           f"{self.status!r}")
    if self.status == NOT_RUN and not self.reason:
      raise ReproduceError(f"NOT RUN claim {self.claim!r} needs a reason")
    if not isinstance(self.measured, Mapping):
      raise ReproduceError(f"claim {self.claim!r}: measured must be a dict, "
                           f"got {self.measured!r}")
    object.__setattr__(self, "measured", jsonable(dict(self.measured)))

  def to_record(self) -> dict[str, Any]:
    record = {"thesis": self.thesis, "item": self.item, "claim": self.claim,
              "measured": self.measured, "status": self.status}
    if self.status == NOT_RUN:
      record["reason"] = self.reason
    return record

  @classmethod
  def from_record(cls, record: Mapping[str, Any]) -> "Claim":
    if not isinstance(record, Mapping):
      raise ReproduceError(f"a claim record must be an object, got {record!r}")
    missing = [k for k in ("thesis", "item", "claim", "measured", "status")
               if k not in record]
    if missing:
      raise ReproduceError(f"claim record lacks {missing}: {record!r}")
    return cls(record["thesis"], str(record["item"]), str(record["claim"]),
               record["measured"], record["status"], record.get("reason"))


def check(thesis: str, item: str, claim: str, passed: bool,
          measured: Mapping[str, Any] | None = None, **more: Any) -> Claim:
  """A PASS/FAIL claim: ``passed`` decides, ``measured`` (and ``**more``) record."""
  return Claim(thesis, item, claim, {**(measured or {}), **more},
               PASS if bool(passed) else FAIL)


def not_run(thesis: str, item: str, claim: str, reason: str,
            measured: Mapping[str, Any] | None = None) -> Claim:
  """A claim that this reproduction does not check, and why."""
  return Claim(thesis, item, claim, dict(measured or {}), NOT_RUN, reason)


class Claims(list):
  """A list of :class:`Claim` s of one thesis, with helpers that append."""

  def __init__(self, thesis: str, claims: Iterable[Claim] = ()):
    super().__init__(claims)
    if thesis not in THESES:
      raise ReproduceError(f"thesis must be one of {THESES}, got {thesis!r}")
    self.thesis = thesis

  def check(self, item: str, claim: str, passed: bool,
            measured: Mapping[str, Any] | None = None, **more: Any) -> Claim:
    """Appends a PASS/FAIL claim decided by ``passed``."""
    self.append(check(self.thesis, item, claim, passed, measured, **more))
    return self[-1]

  def equal(self, item: str, claim: str, measured: Any, expected: Any, *,
            name: str = "value") -> Claim:
    """PASS iff ``measured == expected``; records both."""
    return self.check(item, claim, measured == expected,
                      {name: measured, f"expected_{name}": expected})

  def close(self, item: str, claim: str, measured: float, expected: float, *,
            rtol: float = 1e-2, atol: float = 0.0,
            name: str = "value") -> Claim:
    """PASS iff ``|measured - expected| <= atol + rtol |expected|``."""
    ok = abs(float(measured) - float(expected)) <= atol + rtol * abs(
        float(expected))
    return self.check(item, claim, ok, {name: measured,
                                        f"expected_{name}": expected,
                                        "rtol": rtol, "atol": atol})

  def less(self, item: str, claim: str, smaller: float, larger: float, *,
           names: tuple[str, str] = ("a", "b")) -> Claim:
    """PASS iff ``smaller < larger``."""
    return self.check(item, claim, float(smaller) < float(larger),
                      {names[0]: smaller, names[1]: larger})

  def not_run(self, item: str, claim: str, reason: str,
              measured: Mapping[str, Any] | None = None) -> Claim:
    """Appends a NOT RUN claim with its reason."""
    self.append(not_run(self.thesis, item, claim, reason, measured))
    return self[-1]


def count_statuses(claims: Iterable[Claim]) -> dict[str, int]:
  counts = {s: 0 for s in STATUSES}
  for c in claims:
    counts[c.status] += 1
  return counts


def write_claims(path: str | os.PathLike[str], claims: Iterable[Claim]) -> None:
  """Writes ``claims.json`` (a list of records)."""
  records = [c.to_record() for c in claims]
  Path(path).write_text(json.dumps(records, indent=2) + "\n")


def read_claims(path: str | os.PathLike[str]) -> list[Claim]:
  """Reads and validates a ``claims.json``; raises :class:`ReproduceError`."""
  try:
    records = json.loads(Path(path).read_text())
  except (OSError, ValueError) as e:
    raise ReproduceError(f"cannot read {path}: {e}") from None
  if not isinstance(records, list):
    raise ReproduceError(f"{path} must hold a list of claim records")
  try:
    return [Claim.from_record(r) for r in records]
  except ReproduceError as e:
    raise ReproduceError(f"{path}: {e}") from None


__all__ = ["CLAIMS_FILE", "Claim", "Claims", "FAIL", "NOT_RUN", "PASS",
           "RUN_FILE", "ReproduceError", "STATUSES", "THESES", "check",
           "count_statuses", "jsonable", "not_run", "read_claims",
           "write_claims"]
