"""Running a reproduction into its output directory."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
from pathlib import Path

from nnopt.reproduce.claims import (CLAIMS_FILE, RUN_FILE, Claim,
                                    ReproduceError, count_statuses, not_run,
                                    smoke_label, write_claims)
from nnopt.reproduce.registry import Reproduction


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


def stand_in(rep: Reproduction) -> str:
  """The stand-in problem a quick run of ``rep`` names in its claims."""
  return rep.smoke or (f"the reduced problem of {rep.id}'s quick mode "
                       "(the script does not name it)")


def run_reproduction(rep: Reproduction, out_root: str | os.PathLike[str], *,
                     quick: bool = False) -> Result:
  """Runs one reproduction into ``out_root/rep.id`` and writes its files.

  A quick run (``quick=True``) writes only smoke records: every full-size
  claim the script returns is relabelled as a smoke result on
  :func:`stand_in` (:func:`nnopt.reproduce.claims.smoke_label`), so no
  script can put a thesis item's full-size verdict on a stand-in problem.
  """
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
  if quick:
    claims = [smoke_label(c, stand_in(rep)) for c in claims]
  wall = time.perf_counter() - t0
  write_claims(out / CLAIMS_FILE, claims)
  (out / RUN_FILE).write_text(json.dumps({
      "id": rep.id, "thesis": rep.thesis, "items": list(rep.items),
      "title": rep.title, "quick": bool(quick),
      "scope": "smoke" if quick else "full",
      **({"stand_in": stand_in(rep)} if quick else {}),
      "wall_time_s": round(wall, 3),
      "error": error, "counts": count_statuses(claims)}, indent=2) + "\n")
  return Result(rep, claims, out, wall, error)


def run_and_report(rep: Reproduction, out_root: str | os.PathLike[str], *,
                   quick: bool = False) -> int:
  """:func:`run_reproduction` as a script's last step: prints the counts
  and where the files went; returns the exit status (1 when it failed)."""
  result = run_reproduction(rep, out_root, quick=quick)
  print(", ".join(f"{n} {s}" for s, n in result.counts().items()),
        f"→ {result.directory}")
  return 1 if result.error else 0


__all__ = ["Result", "run_and_report", "run_reproduction", "stand_in"]
