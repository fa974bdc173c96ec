"""Where a resumed run continues: the newest intact checkpoint and the metrics
log up to it.

:func:`resume_point` reads a checkpoint directory (and writes nothing): it
skips checkpoints that fail :meth:`Checkpointer.verify` (newest first) and
refuses a checkpoint beyond the run's budget. :func:`truncate_metrics` cuts
``metrics.jsonl`` back to the checkpoint's step, dropping a line cut off by a
crash in mid-write.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Callable, Sequence

from nnopt.engine import parallel
from nnopt.engine.checkpoint import CheckpointError, Checkpointer
from nnopt.engine.run import Run

Warn = Callable[[str], None]


class ResumeError(ValueError):
  """A run cannot be resumed (no checkpoints, none intact, or one beyond the
  run's budget)."""


def print_warning(message: str) -> None:
  """The default warning: one line ``nnopt: warning: …`` on stderr."""
  print(f"nnopt: warning: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class ResumePoint:
  """The checkpoint a run resumes from.

  Attributes:
    step: its step.
    meta: its metadata (step, sampler and hook states).
    corrupt: ``(step, reason)`` of the newer checkpoints that are corrupt.
  """

  step: int
  meta: dict[str, Any]
  corrupt: tuple[tuple[int, str], ...] = ()


def resume_point(ckpt: Checkpointer, *, num_steps: int | None,
                 num_epochs: int | None, skip: tuple[tuple[int, str], ...] = ()
                 ) -> ResumePoint | None:
  """The newest intact checkpoint of ``ckpt``, or None if there is none at all.

  Args:
    ckpt: the run's checkpoints.
    num_steps / num_epochs: the run's budget.
    skip: ``(step, reason)`` of checkpoints already found corrupt.

  Raises:
    ResumeError: every checkpoint is corrupt, or the newest intact one is
      beyond ``num_steps`` / ``num_epochs``.
  """
  corrupt = list(skip)
  bad = {s for s, _ in skip}
  for step in ckpt.steps():
    if step in bad:
      continue
    reason = ckpt.verify(step)
    if reason is not None:
      corrupt.append((step, reason))
      continue
    meta = ckpt.read_meta(step)
    epoch = int(meta["sampler"].get("epoch", 0))
    if num_steps is not None and step > num_steps:
      raise ResumeError(
          f"the checkpoint in {ckpt.directory} is at step {step}, beyond "
          f"num_steps {num_steps}; set num_steps to {step} or more to continue")
    if num_steps is None and num_epochs is not None and epoch > num_epochs:
      raise ResumeError(
          f"the checkpoint in {ckpt.directory} is at epoch {epoch}, beyond "
          f"num_epochs {num_epochs}; set num_epochs to {epoch} or more to "
          "continue")
    return ResumePoint(step, meta, tuple(corrupt))
  if corrupt:
    raise ResumeError(f"no intact checkpoint in {ckpt.directory}: "
                      + "; ".join(f"step {s}: {r}" for s, r in corrupt))
  return None


def corrupt_warning(ckpt: Checkpointer, point: ResumePoint,
                    moved_to: str) -> str:
  """The one-line warning for resuming past corrupt checkpoints."""
  steps = ", ".join(str(s) for s, _ in point.corrupt)
  reasons = "; ".join(f"step {s}: {r}" for s, r in point.corrupt)
  what = "checkpoint" if len(point.corrupt) == 1 else "checkpoints"
  return (f"corrupt {what} {steps} in {ckpt.directory} ({reasons}); resuming "
          f"from step {point.step}, the newest intact one; moved the corrupt "
          f"{what} to {moved_to}")


def restore_run(ckpt: Checkpointer, initial_run: Callable[[], Run],
                hooks: Sequence[Any], mesh, *, num_steps: int | None,
                num_epochs: int | None, warn: Warn) -> Run:
  """The run restored from the newest intact checkpoint; corrupt newer ones
  are moved aside (:meth:`Checkpointer.quarantine`) with one warning.

  Args:
    ckpt: the run's checkpoints.
    initial_run: makes the run of step 0 (whose state is the restore target;
      hooks may change its architecture while loading their states).
    hooks: the run's hooks (their states are restored).
    mesh: the device mesh of the restored state.
    num_steps / num_epochs: the run's budget.
    warn: where the warning goes.

  Raises:
    ResumeError: see :func:`resume_point`, or an intact checkpoint of another
      model or optimizer.
  """
  skip: tuple[tuple[int, str], ...] = ()
  moved = []
  while True:
    run = initial_run()
    point = resume_point(ckpt, num_steps=num_steps, num_epochs=num_epochs,
                         skip=skip)
    if point is None:
      warn(f"no checkpoint in {ckpt.directory}; starting from step 0")
      return run
    # Moved before orbax opens the directory (which reads every checkpoint).
    moved += [ckpt.quarantine(s) for s, _ in point.corrupt[len(moved):]]
    try:
      for hook, hook_state in zip(hooks, point.meta["hooks"]):
        hook.load_state_dict(hook_state, run)
      run.sampler.load_state_dict(point.meta["sampler"])
      run.step = point.step
      run.state = parallel.replicate(ckpt.restore_state(run.state, run.step),
                                     mesh)
      break
    except CheckpointError as e:
      if ckpt.verified(point.step):  # intact files: another model's state
        raise ResumeError(str(e)) from None
      skip = point.corrupt + ((point.step, str(e)),)
  if point.corrupt:
    warn(corrupt_warning(ckpt, point, os.path.dirname(moved[0])))
  return run


def read_records(path: str) -> tuple[list[dict[str, Any]], list[int]]:
  """The records of a ``metrics.jsonl`` and the (1-based) numbers of the
  lines that are not JSON records (e.g. cut off by a crash)."""
  records, bad = [], []
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except ValueError:
      bad.append(number)
      continue
    if isinstance(record, dict) and isinstance(record.get("step"), int):
      records.append(record)
    else:
      bad.append(number)
  return records, bad


def truncate_metrics(path: str, step: int, warn: Warn) -> None:
  """Keeps the records of ``path`` up to ``step`` (so a resumed run's log
  reads as one run); drops, with a warning, lines that are not records."""
  if not os.path.exists(path):
    return
  records, bad = read_records(path)
  if bad:
    with open(path, "rb") as f:
      last = len(f.read().rstrip(b"\n").split(b"\n"))
    where = ("its last line, cut off in mid-write" if bad == [last]
             else f"line(s) {', '.join(map(str, bad))}, not JSON records")
    warn(f"{path}: dropped {where}")
  kept = [r for r in records if r["step"] <= step]
  if step == 0 and records:
    warn(f"{path}: replacing the {len(records)} record(s) of an earlier run "
         "that left no checkpoint")
  if len(kept) == len(records) and not bad:
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for record in kept:
      f.write(json.dumps(record) + "\n")
  os.replace(tmp, path)


__all__ = ["ResumeError", "ResumePoint", "corrupt_warning", "print_warning",
           "read_records", "restore_run", "resume_point", "truncate_metrics"]
