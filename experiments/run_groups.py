"""Runs of one config variant trained together on the engine's runs axis.

The Balles and Fashion-MNIST reproductions keep one directory per run
(``metrics.jsonl`` plus a ``run.json``). :func:`train_group` trains several
such runs — the seeds of one (config, variant), and its step sizes α where
only the learning rate (and hooks' options) differ — as one
:class:`nnopt.engine.runs.RunsTrainer`: the runs are stacked along the runs
axis and one ``jit(vmap(step))`` advances all of them, so on an accelerator
the group is one compiled program (sharded over its devices' ``runs`` axis).
Each run of the group is the run ``Experiment.trainer`` trains alone with
its spec (same initialization, data order and records, to round-off).

A :class:`Member` is one run: the name of its result directory and its
resolved spec. The members of a group may differ only in ``train.seed``,
``optimizer.learning_rate`` (a constant; it becomes the per-run
hyperparameter ``learning_rate``) and ``hooks`` (each run builds its own from
its spec, e.g. CABS's ``learning_rate`` option).

While the group trains, ``workdir`` is the engine's workdir: per run
``runs/<name>/checkpoints/`` (one checkpoint every 1/``checkpoints`` of the
run) and ``runs/<name>/metrics.jsonl``. An interrupted group resumes when
trained again: every run continues from its own newest checkpoint, also when
it is grouped differently the second time (the runs are named by what they
are, so the run list is rewritten before resuming). :func:`discard` removes
a run's partial files once its results are written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import jax

from nnopt import config as C
from nnopt.config.spec import thaw
from nnopt.engine import runs_io
from nnopt.engine.runs import RunSpec, RunsTrainer
from nnopt.engine.trainer import NonFiniteLossError

#: Record keys the runs axis adds to a single run's records (the run's name,
#: seed and hyperparameters); the result directories hold the single run's.
RUNS_AXIS_KEYS = ("run", "seed", "hparams")
#: What the members of a group may differ in.
PER_RUN = (("train", "seed"), ("optimizer", "learning_rate"), ("hooks",))


@dataclasses.dataclass(frozen=True)
class Member:
  """One run of a group: its result directory's name and its spec."""

  name: str
  spec: Any


@dataclasses.dataclass
class Trained:
  """One trained run of a group.

  Attributes:
    name: the member's name.
    records: its metrics records, as a single run's (``Trainer.history``).
    diverged: the engine's message when its loss turned non-finite (its
      records stop at the last finite log), else None.
    resumed: it continued from a checkpoint of an earlier, interrupted try.
  """

  name: str
  records: list[dict[str, Any]]
  diverged: str | None
  resumed: bool


@dataclasses.dataclass
class GroupResult:
  """A trained group: its runs (by name) and the program's wall time."""

  runs: dict[str, Trained]
  wall_seconds: float

  @property
  def names(self) -> list[str]:
    return list(self.runs)

  def finite(self) -> list[str]:
    """The names of the runs that did not diverge."""
    return [n for n, r in self.runs.items() if r.diverged is None]

  def check_finite(self) -> None:
    """Raises ``RuntimeError`` naming each run that diverged with the
    engine's message (a single run raises :class:`NonFiniteLossError`)."""
    bad = {n: r.diverged for n, r in self.runs.items() if r.diverged}
    if bad:
      raise RuntimeError("; ".join(f"{n}: {m}" for n, m in bad.items()))


def checkpoint_interval(spec, num_examples: int, checkpoints: int) -> int:
  """Steps between checkpoints: the run's length over ``checkpoints``,
  rounded down to a multiple of ``train.log_every`` where it is longer (the
  running loss sums are not checkpointed, so a run resumed at a log step
  writes the records it would have written without the interruption)."""
  train = spec["train"]
  steps = train["num_steps"]
  if steps is None:
    batch = train["batch_size"] or num_examples
    steps = train["num_epochs"] * -(-num_examples // batch)
  interval = max(1, steps // checkpoints)
  log = train.get("log_every")
  if log and interval >= log:
    interval -= interval % log
  return interval


def _shared(spec) -> dict[str, Any]:
  out = thaw(spec)
  for path in PER_RUN:
    section = out
    for key in path[:-1]:
      section = section[key]
    section.pop(path[-1], None)
  return out


def check_members(members: Sequence[Member]) -> bool:
  """Checks that the members can share a program; returns whether their
  learning rates differ (then each is a per-run hyperparameter).

  Raises:
    ValueError: no members, repeated names, members that differ in more
      than seed, learning rate and hooks, or differing learning rates that
      are not constants.
  """
  if not members:
    raise ValueError("a group needs at least one run")
  names = [m.name for m in members]
  if len(set(names)) != len(names):
    raise ValueError(f"run names repeat: {names}")
  base = _shared(members[0].spec)
  for m in members[1:]:
    other = _shared(m.spec)
    if other != base:
      keys = sorted(k for k in base.keys() | other.keys()
                    if base.get(k) != other.get(k))
      raise ValueError(f"runs {members[0].name} and {m.name} differ in "
                       f"{keys}; a group's runs may differ only in seed, "
                       "learning rate and hooks")
  rates = [m.spec["optimizer"]["learning_rate"] for m in members]
  if len(set(map(repr, rates))) == 1:
    return False
  if not all(isinstance(r, (int, float)) and not isinstance(r, bool)
             for r in rates):
    raise ValueError(f"runs with different learning rates need constant "
                     f"ones, got {rates}")
  return True


def single_run_records(records, num_train: int) -> list[dict[str, Any]]:
  """A runs-axis run's records as the single run writes them: without the
  run's name, seed and hyperparameters, the full batch size as a number, and
  without the record of a divergence (the single run stops before it)."""
  out = []
  for record in records:
    if "nonfinite_step" in record:
      break
    record = {k: v for k, v in record.items() if k not in RUNS_AXIS_KEYS}
    if record.get("batch_size") is None and "batch_size" in record:
      record["batch_size"] = num_train
    out.append(record)
  return out


def _read(path: Path) -> list[dict[str, Any]]:
  if not path.exists():
    return []
  with path.open() as f:
    return [json.loads(line) for line in f if line.strip()]


def train_group(members: Sequence[Member], workdir: Path | None, *,
                dataset=None, progress: bool = False, checkpoints: int = 20
                ) -> GroupResult:
  """Trains ``members`` as one :class:`RunsTrainer`.

  Args:
    members: the runs (see :func:`check_members`).
    workdir: the engine's workdir (checkpoints and metrics per run), or None
      (no files, no checkpoints).
    dataset: the members' dataset, already loaded (else loaded once).
    progress: the engine's progress bar.
    checkpoints: checkpoints per run (one every 1/``checkpoints`` of it).

  Returns:
    The trained runs; a run that diverged stops there while the others go
    on (``Trained.diverged``).

  Raises:
    nnopt.engine.signals.Interrupted: on SIGINT/SIGTERM, after every run
      saved a checkpoint (train the group again to resume).
  """
  members = list(members)
  vary = check_members(members)
  base = members[0].spec
  if dataset is None:
    dataset = C.load_dataset(base)
  exps = {m.name: C.build(m.spec, dataset=dataset) for m in members}
  exp = exps[members[0].name]
  specs = [RunSpec(seed=int(m.spec["train"]["seed"]), name=m.name,
                   hparams={"learning_rate": float(
                       m.spec["optimizer"]["learning_rate"])} if vary else {})
           for m in members]
  kwargs = dict(exp.trainer_kwargs)
  kwargs.pop("seed", None)
  kwargs["checkpoint_every"] = None
  resumed = {m.name: False for m in members}
  if workdir is not None:
    workdir = Path(workdir)
    for name in resumed:
      ckpt = Path(runs_io.run_dir(str(workdir), name)) / "checkpoints"
      resumed[name] = ckpt.is_dir() and any(ckpt.iterdir())
    kwargs["checkpoint_every"] = checkpoint_interval(
        base, len(dataset.x_train), checkpoints)
  resume = any(resumed.values())
  if resume:
    # Runs are named by their result directory (method, α, seed): a run's
    # checkpoints are its own whichever group trained it before.
    runs_io.write_manifest(str(workdir), specs)
  trainer = RunsTrainer(
      exp.model, exp.loss, exp.optimizer_factory if vary else exp.optimizer,
      dataset, runs=specs, hooks=lambda run: exps[run.name].hooks_for(run.seed),
      augment=exp.augment, progress=progress,
      workdir=None if workdir is None else str(workdir), **kwargs)
  start = time.perf_counter()
  slots = trainer.fit(resume=resume)
  wall = time.perf_counter() - start
  runs = {}
  for slot in slots:
    raw = (slot.history if workdir is None else _read(
        Path(runs_io.run_dir(str(workdir), slot.label)) / "metrics.jsonl"))
    bad = [r["nonfinite_step"] for r in raw if "nonfinite_step" in r]
    diverged = (str(NonFiniteLossError(int(bad[0]), slot.ckpt.latest_step()
                                       if slot.ckpt else None))
                if bad else None)
    runs[slot.label] = Trained(
        slot.label, single_run_records(raw, len(dataset.x_train)), diverged,
        resumed[slot.label])
  return GroupResult(runs, wall)


def discard(workdir: Path, names: Sequence[str]) -> None:
  """Removes the runs' partial files, ``workdir`` once it holds no run, and
  then its parent if that is an empty ``partial/``."""
  workdir = Path(workdir)
  for name in names:
    shutil.rmtree(runs_io.run_dir(str(workdir), name), ignore_errors=True)
  runs = workdir / "runs"
  if not runs.is_dir() or not any(runs.iterdir()):
    shutil.rmtree(workdir, ignore_errors=True)
    parent = workdir.parent
    if parent.name == "partial" and parent.is_dir() and not any(
        parent.iterdir()):
      parent.rmdir()


class Datasets:
  """Datasets loaded once per :func:`nnopt.config.dataset_key`."""

  def __init__(self):
    self._loaded: dict[str, Any] = {}

  def __call__(self, spec):
    key = C.dataset_key(spec)
    if key not in self._loaded:
      self._loaded[key] = C.load_dataset(spec)
    return self._loaded[key]


def train_alone(spec, datasets: Datasets | None = None, *,
                progress: bool = False):
  """One run through ``Experiment.trainer`` (no workdir): the trainer."""
  dataset = None if datasets is None else datasets(spec)
  trainer = C.build(spec, dataset=dataset).trainer(progress=progress)
  trainer.fit()
  return trainer


#: Runs per group of a conv net on a CPU: XLA:CPU steps a group of conv nets
#: slower per run than each run alone (measured on Balles P1, 2 shared
#: cores: 4 runs grouped 1.6 s a step, one alone 0.125 s), while an MLP's
#: group is faster (experiments/bench/runs.py).
CPU_CONV_GROUP = 1


def conv_group_size(size: int | str | None = "auto") -> int | None:
  """A conv net's group size: ``size``, or for ``'auto'`` all runs in one
  program on an accelerator (None) and :data:`CPU_CONV_GROUP` on a CPU."""
  if size != "auto":
    return size
  return CPU_CONV_GROUP if jax.default_backend() == "cpu" else None


def chunks(items: Sequence[Any], size: int | None) -> list[list[Any]]:
  """``items`` in groups of ``size`` (None: one group)."""
  items = list(items)
  if not items:
    return []
  size = len(items) if size is None else max(1, int(size))
  return [items[i:i + size] for i in range(0, len(items), size)]


def write_run(out: Path, records: Sequence[dict[str, Any]],
              meta: dict[str, Any], *, indent: int | None = None) -> None:
  """``out/metrics.jsonl`` and then ``out/run.json`` (written last)."""
  out.mkdir(parents=True, exist_ok=True)
  with (out / "metrics.jsonl").open("w") as f:
    for record in records:
      f.write(json.dumps(record) + "\n")
  (out / "run.json").write_text(json.dumps(meta, indent=indent) + "\n")


__all__ = ["CPU_CONV_GROUP", "Datasets", "GroupResult", "Member", "Trained",
           "check_members", "checkpoint_interval", "chunks", "conv_group_size",
           "discard", "single_run_records", "train_alone", "train_group",
           "write_run"]
