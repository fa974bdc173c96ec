"""Reproductions of thesis figures and tables, stated as checked claims.

A reproduce script is a module ``experiments/reproduce_<something>.py`` (at the
top of the repository) that defines one :class:`Reproduction`:

.. code-block:: python

    from nnopt.reproduce import Claims, Reproduction

    def run(out_dir, quick):
      claims = Claims('kreis')
      n = count_params(...)
      claims.equal('Table 4.3', 'FNN 2-5-2 has 27 parameters', n, 27,
                   name='params')
      ...                          # draw figures into out_dir (PNG)
      return claims

    REPRODUCTION = Reproduction(
        id='sensli_tables', thesis='kreis', items=('Table 4.3',), run=run,
        title='SensLI parameter and FLOP tables', cost='seconds')

``nnopt reproduce ID`` runs it into ``OUT/ID/`` and writes ``claims.json``, a
list of records ``{"thesis", "item", "claim", "measured", "status"}`` (plus
``"reason"`` when the status is ``"NOT RUN"``), and ``run.json`` (timing,
quick mode, error). Every claim is ``PASS``, ``FAIL`` or ``NOT RUN`` with a
reason: never silent. A script that raises gets one ``NOT RUN`` claim per item
naming the error (traceback in ``error.log``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

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


@dataclasses.dataclass(frozen=True)
class Reproduction:
  """A registered reproduce script.

  Attributes:
    id: command-line id (``nnopt reproduce ID``), a valid directory name.
    thesis: the thesis whose items it reproduces.
    items: the thesis items covered, e.g. ``('Table 4.3', 'Table 4.4')``.
    run: ``run(out_dir: Path, quick: bool) -> list[Claim]``; writes figures
      (PNG) into ``out_dir``. ``quick`` must finish in about a minute on a
      laptop CPU.
    title: one line for ``--list`` and the report.
    cost: rough run time, e.g. ``'seconds'`` or ``'2 h GPU (quick: 1 min)'``.
  """

  id: str
  thesis: str
  items: tuple[str, ...]
  run: Callable[[Path, bool], Sequence[Claim]]
  title: str = ""
  cost: str = ""

  def __post_init__(self):
    if self.thesis not in THESES:
      raise ReproduceError(f"reproduction {self.id!r}: thesis must be one of "
                           f"{THESES}, got {self.thesis!r}")
    if not self.id or any(c in self.id for c in "/\\ ") or self.id[0] == ".":
      raise ReproduceError(f"reproduction id {self.id!r} must be a plain "
                           "directory name")
    object.__setattr__(self, "items", tuple(self.items))


# -- discovery -------------------------------------------------------------------


def experiments_dir() -> Path:
  """``$NNOPT_EXPERIMENTS``, else ``experiments/`` at the repository root."""
  env = os.environ.get("NNOPT_EXPERIMENTS")
  if env:
    return Path(env)
  repo = Path(__file__).resolve().parent.parent / "experiments"
  if repo.is_dir():
    return repo
  return Path.cwd() / "experiments"


@dataclasses.dataclass
class Registry:
  """The reproductions found in a directory, and the files that failed."""

  reproductions: dict[str, Reproduction]
  errors: dict[str, str]
  directory: Path

  def get(self, rid: str) -> Reproduction:
    if rid in self.reproductions:
      return self.reproductions[rid]
    near = difflib.get_close_matches(rid, list(self.reproductions), n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    broken = (f"; scripts that failed to load: {', '.join(self.errors)}"
              if self.errors else "")
    raise ReproduceError(
        f"unknown reproduction {rid!r}{hint}; known: "
        f"{', '.join(sorted(self.reproductions)) or '(none)'}{broken}")


def _load_module(path: Path):
  name = f"nnopt_reproduce_{path.stem}"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    sys.modules.pop(name, None)
    raise
  return module


def discover(directory: str | os.PathLike[str] | None = None) -> Registry:
  """Imports every ``reproduce_*.py`` in ``directory`` and collects them.

  A script that fails to import, or defines no valid ``REPRODUCTION``, is
  listed in ``Registry.errors`` instead of breaking the others.
  """
  directory = Path(directory) if directory else experiments_dir()
  if not directory.is_dir():
    raise ReproduceError(f"no experiments directory at {directory} (set "
                         "NNOPT_EXPERIMENTS)")
  root = str(directory.resolve().parent)
  if root not in sys.path:
    sys.path.append(root)  # lets scripts share helpers: `from experiments import x`
  found: dict[str, Reproduction] = {}
  errors: dict[str, str] = {}
  for path in sorted(directory.glob("reproduce_*.py")):
    try:
      module = _load_module(path)
    except Exception as e:  # pylint: disable=broad-except
      errors[path.name] = f"{type(e).__name__}: {e}"
      continue
    rep = getattr(module, "REPRODUCTION", None)
    if not isinstance(rep, Reproduction):
      errors[path.name] = "defines no REPRODUCTION = Reproduction(...)"
    elif rep.id in found:
      errors[path.name] = f"duplicate reproduction id {rep.id!r}"
    else:
      found[rep.id] = rep
  return Registry(found, errors, directory)


# -- running -----------------------------------------------------------------------


@dataclasses.dataclass
class Result:
  """What one reproduction run produced."""

  reproduction: Reproduction
  claims: list[Claim]
  directory: Path
  wall_time: float
  error: str | None = None

  def counts(self) -> dict[str, int]:
    return count_statuses(self.claims)


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


def run_reproduction(rep: Reproduction, out_root: str | os.PathLike[str], *,
                     quick: bool = False) -> Result:
  """Runs one reproduction into ``out_root/rep.id`` and writes its files."""
  out = Path(out_root) / rep.id
  out.mkdir(parents=True, exist_ok=True)
  (out / "error.log").unlink(missing_ok=True)
  t0 = time.perf_counter()
  error = None
  try:
    claims = list(rep.run(out, quick))
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
      raise ReproduceError(f"run() returned non-Claim items: {bad[:3]!r}")
  except Exception as e:  # pylint: disable=broad-except
    error = f"{type(e).__name__}: {e}"
    (out / "error.log").write_text(traceback.format_exc())
    claims = [not_run(rep.thesis, item, f"claims of {item}",
                      f"the script failed: {error} (see error.log)")
              for item in rep.items or ("(all)",)]
  wall = time.perf_counter() - t0
  write_claims(out / CLAIMS_FILE, claims)
  (out / RUN_FILE).write_text(json.dumps({
      "id": rep.id, "thesis": rep.thesis, "items": list(rep.items),
      "title": rep.title, "quick": bool(quick), "wall_time_s": round(wall, 3),
      "error": error, "counts": count_statuses(claims)}, indent=2) + "\n")
  return Result(rep, claims, out, wall, error)


__all__ = [
    "CLAIMS_FILE", "Claim", "Claims", "FAIL", "NOT_RUN", "PASS", "RUN_FILE",
    "Registry", "ReproduceError", "Reproduction", "Result", "STATUSES",
    "THESES", "check", "count_statuses", "discover", "experiments_dir",
    "jsonable", "not_run", "read_claims", "run_reproduction", "write_claims",
]
