"""Files of a runs axis: the run list, one metrics stream and one checkpoint
directory per run, and the mean and spread over runs.

Layout under the trainer's ``workdir``::

    runs.json                        the run list: name, seed, hyperparameters
    runs/<name>/metrics.jsonl        the run's records (as a single run's)
    runs/<name>/checkpoints/         the run's checkpoints (as a single run's)
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable, Mapping, Sequence

from nnopt.engine.checkpoint import Checkpointer
from nnopt.engine.resume import ResumeError, resume_point
from nnopt.engine.runs_group import RunSlot, RunSpec

MANIFEST = "runs.json"


def run_dir(workdir: str, label: str) -> str:
  return os.path.join(workdir, "runs", label)


def manifest(specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
  return [{"index": i, "name": s.label(i), "seed": int(s.seed),
           "hparams": {k: float(v) for k, v in sorted(s.hparams.items())}}
          for i, s in enumerate(specs)]


def write_manifest(workdir: str, specs: Sequence[RunSpec]) -> None:
  os.makedirs(workdir, exist_ok=True)
  tmp = os.path.join(workdir, MANIFEST + ".tmp")
  with open(tmp, "w") as f:
    json.dump(manifest(specs), f, indent=1)
  os.replace(tmp, os.path.join(workdir, MANIFEST))


def check_manifest(workdir: str, specs: Sequence[RunSpec]) -> None:
  """Refuses to resume a workdir whose run list differs from ``specs``."""
  path = os.path.join(workdir, MANIFEST)
  if not os.path.exists(path):
    raise ResumeError(f"resume needs the run list {path}, which does not "
                      "exist (this workdir holds no runs-axis training)")
  try:
    with open(path) as f:
      old = json.load(f)
  except ValueError:
    raise ResumeError(f"{path} is not a JSON run list") from None
  new = manifest(specs)
  if old != new:
    changed = [n["name"] for o, n in zip(old, new) if o != n]
    what = (f"run(s) {', '.join(changed[:5])} differ" if changed else
            f"it lists {len(old)} run(s), this sweep {len(new)}")
    raise ResumeError(f"the runs in {workdir} are not this sweep's: {what}; "
                      "use a new workdir or the same sweep")


def earliest_resume_step(workdir: str, specs: Sequence[RunSpec], *,
                         num_steps: int | None, num_epochs: int | None
                         ) -> int | None:
  """The earliest step of the runs' newest intact checkpoints (None: none
  has one); reads the files only. Raises :class:`ResumeError`."""
  check_manifest(workdir, specs)
  steps = []
  for i, spec in enumerate(specs):
    ckpt = Checkpointer(os.path.join(run_dir(workdir, spec.label(i)),
                                     "checkpoints"))
    point = resume_point(ckpt, num_steps=num_steps, num_epochs=num_epochs)
    if point is not None:
      steps.append(point.step)
  return min(steps) if steps else None


def checkpoint_meta(slot: RunSlot, specs: Sequence[RunSpec]
                    ) -> dict[str, Any]:
  """What a run's checkpoint holds besides its state (as a single run's,
  plus its entry of the run list)."""
  return {"step": slot.step, "sampler": slot.sampler.state_dict(),
          "hooks": [h.state_dict() for h in slot.hooks],
          "run": manifest(specs[slot.index:slot.index + 1])[0]
          | {"index": slot.index, "name": slot.label}}


def base_record(slot: RunSlot, wall_time: float) -> dict[str, Any]:
  """A run's record before its metrics: as a single run's, plus the run's
  name, seed and hyperparameters."""
  return {"step": slot.step, "epoch": slot.sampler.epoch,
          "examples_seen": int(slot.sampler.examples_seen),
          "wall_time": wall_time, "batch_size": slot.sampler.batch_size,
          "run": slot.label, "seed": int(slot.spec.seed),
          "hparams": {k: float(v) for k, v in slot.spec.hparams.items()}}


def train_means(sums: Mapping[str, Any], row: int) -> dict[str, float]:
  """``train_<metric>``: row ``row`` of the stacked sums over its count."""
  count = float(sums["count"][row])
  if not count:
    return {}
  return {f"train_{k}": float(v[row]) / count for k, v in sums.items()
          if k != "count"}


def append_record(workdir: str | None, label: str, record: Mapping[str, Any]
                  ) -> None:
  if not workdir:
    return
  directory = run_dir(workdir, label)
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "metrics.jsonl"), "a") as f:
    f.write(json.dumps(record) + "\n")


def spread(histories: Iterable[Sequence[Mapping[str, Any]]], key: str
           ) -> list[dict[str, float]]:
  """Mean, standard deviation and count over runs of ``key`` at every step
  that some run logged it (runs that diverged or stopped count as long as
  they logged the step).

  Returns:
    ``[{'step', 'mean', 'std', 'n', 'min', 'max'}, ...]`` sorted by step;
    ``std`` is the sample standard deviation (0 for one run).
  """
  by_step: dict[int, list[float]] = {}
  for history in histories:
    for record in history:
      value = record.get(key)
      if isinstance(value, (int, float)) and math.isfinite(value):
        by_step.setdefault(int(record["step"]), []).append(float(value))
  out = []
  for step in sorted(by_step):
    values = by_step[step]
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    out.append({"step": step, "mean": mean, "std": math.sqrt(var), "n": n,
                "min": min(values), "max": max(values)})
  return out


__all__ = ["MANIFEST", "append_record", "base_record", "checkpoint_meta", "check_manifest",
           "earliest_resume_step", "manifest", "run_dir", "spread",
           "train_means", "write_manifest"]
