"""Runs of the Fashion-MNIST sibling reproductions on disk: train, read, summarize.

Shared by ``reproduce_kreis_fmnist.py`` and ``reproduce_cabs_fmnist.py``. One
run is one (config, variant, seed) trained through the engine and written as
``<runs dir>/<name>/metrics.jsonl`` (the engine's records) and ``run.json``
(wall time, measured time per step, whether it diverged, the commit). A run
counts as finished when its ``run.json`` exists; ``run.json`` is written last.
:func:`train_run` trains one run; :func:`train_seeds` several seeds of one
variant as one program on the engine's runs axis.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from experiments import run_groups as G
from nnopt import config as C
from nnopt.engine.trainer import NonFiniteLossError

#: The commit of the code that trained a run (the driver sets it).
COMMIT_ENV = "NNOPT_RUN_COMMIT"


def step_time(records: Sequence[dict[str, Any]]) -> float | None:
  """Median seconds per step between consecutive records without an evaluation.

  The first interval (it holds the compilation) and intervals that end in a
  test evaluation are left out.
  """
  rates = []
  for prev, rec in zip(records[1:], records[2:]):
    if any(k.startswith("test_") for k in rec) or rec["step"] <= prev["step"]:
      continue
    rates.append((rec["wall_time"] - prev["wall_time"]) /
                 (rec["step"] - prev["step"]))
  return float(np.median(rates)) if rates else None


def train_run(config_path: Path, variant: str, seed: int, out: Path, *,
              quick: bool = False, overrides: Sequence[str] = (),
              dataset=None, progress: bool = False,
              checkpoints: int = 20) -> dict[str, Any]:
  """Trains one run and writes ``out/metrics.jsonl`` and ``out/run.json``.

  While it trains, the engine's workdir is ``out/partial/``: a checkpoint
  every 1/``checkpoints`` of the run and the metrics so far. An interrupted
  run resumes from its last checkpoint when trained again; ``partial/`` is
  removed once ``run.json`` is written. A run whose loss turns non-finite is
  kept with ``diverged`` set (its records up to there are written). Returns
  the ``run.json`` record.
  """
  _, config = C.load_config_file(config_path)
  spec = C.resolve(config, variant, quick=quick,
                   overrides=[f"train.seed={seed}", *overrides])
  if dataset is None:
    dataset = C.load_dataset(spec)
  partial = out / "partial"
  resume = (partial / "checkpoints").is_dir()
  trainer = C.build(spec, dataset=dataset).trainer(
      workdir=str(partial), progress=progress,
      checkpoint_every=G.checkpoint_interval(spec, len(dataset.x_train),
                                             checkpoints))
  start, diverged = time.perf_counter(), None
  try:
    trainer.fit(resume=resume)
  except NonFiniteLossError as e:
    diverged = str(e)
  wall = time.perf_counter() - start
  with (partial / "metrics.jsonl").open() as f:
    records = [json.loads(line) for line in f if line.strip()]
  meta = _run_meta(config_path, variant, seed, spec, quick, overrides,
                   records, step_time(trainer.history), wall, resume, diverged)
  G.write_run(out, records, meta, indent=1)
  shutil.rmtree(partial)
  return meta


def train_seeds(config_path: Path, variant: str, seeds: Sequence[int],
                runs_dir: Path, names: Sequence[str], workdir: Path, *,
                quick: bool = False, overrides: Sequence[str] = (),
                dataset=None, progress: bool = False,
                checkpoints: int = 20) -> dict[str, dict[str, Any]]:
  """Trains ``seeds`` of one variant as one program on the engine's runs
  axis (:mod:`experiments.run_groups`) and writes each as :func:`train_run`
  does: ``runs_dir/<name>/metrics.jsonl`` (the run's records, as alone) and
  ``run.json`` (the same keys, plus ``group``: the runs trained together,
  whose ``wall_seconds`` and ``ms_per_step`` are the program's, all runs at
  once). While they train, each run checkpoints under ``workdir`` every
  1/``checkpoints`` of it; an interrupted group resumes when trained again.
  On an accelerator the group is one compiled program; on a shared CPU,
  :func:`train_run` one at a time is the default. Returns the ``run.json``
  records by name.
  """
  _, config = C.load_config_file(config_path)
  members = [G.Member(name, C.resolve(config, variant, quick=quick, overrides=[
      f"train.seed={seed}", *overrides])) for seed, name in zip(seeds, names)]
  result = G.train_group(members, workdir, dataset=dataset, progress=progress,
                         checkpoints=checkpoints)
  metas = {}
  for seed, m in zip(seeds, members):
    run = result.runs[m.name]
    records = run.records
    # The records since the last resume (wall time restarts there).
    start = max([i for i in range(1, len(records)) if records[i]["wall_time"]
                 < records[i - 1]["wall_time"]], default=0)
    metas[m.name] = dict(_run_meta(
        config_path, variant, seed, m.spec, quick, overrides, records,
        step_time(records[start:]), result.wall_seconds, run.resumed,
        run.diverged), group=result.names)
    G.write_run(runs_dir / m.name, records, metas[m.name], indent=1)
  G.discard(workdir, result.names)
  return metas


def _run_meta(config_path, variant, seed, spec, quick, overrides, records,
              per_step, wall, resumed, diverged) -> dict[str, Any]:
  """A finished run's ``run.json`` record."""
  return {
      "config": Path(config_path).name, "variant": variant, "seed": seed,
      "quick": quick, "overrides": list(overrides),
      "dataset": spec["dataset"]["name"],
      "learning_rate": spec["optimizer"]["learning_rate"],
      "steps": records[-1]["step"] if records else 0,
      "wall_seconds": round(wall, 2), "resumed": resumed,
      "ms_per_step": None if per_step is None else round(1e3 * per_step, 4),
      "diverged": diverged, "commit": os.environ.get(COMMIT_ENV),
      "host": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"}


def read_run(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
  """``(records, run.json)`` of a finished run directory, else None."""
  meta_path, metrics = path / "run.json", path / "metrics.jsonl"
  if not (meta_path.exists() and metrics.exists()):
    return None
  with metrics.open() as f:
    records = [json.loads(line) for line in f if line.strip()]
  return records, json.loads(meta_path.read_text())


def window_mean(records, key: str, last: float, window: float,
                axis: str = "step") -> float | None:
  """Mean of ``key`` over the records with ``last − window < axis ≤ last``."""
  values = [r[key] for r in records if r.get(key) is not None
            and last - window < r[axis] <= last]
  return float(np.mean(values)) if values else None


def at_wall_time(records, key: str, seconds: float, window: float
                 ) -> float | None:
  """The MA of ``key`` over ``window`` steps ending at the last record
  logged by ``seconds`` of wall time (the first record if none is)."""
  before = [r for r in records if r["wall_time"] <= seconds]
  end = (before or records[:1])[-1]["step"]
  return window_mean(records, key, end, window)




def wall_times(runs_dir: Path) -> dict[str, list[float]]:
  """Measured wall seconds of the finished runs under ``runs_dir``, by run
  name without its ``_s<seed>`` suffix (not of resumed runs: theirs covers
  only the last sitting)."""
  out: dict[str, list[float]] = {}
  for meta_path in sorted(Path(runs_dir).glob("*/run.json")):
    try:
      meta = json.loads(meta_path.read_text())
    except ValueError:
      continue
    if meta.get("wall_seconds") is not None and not meta.get("resumed"):
      name = meta_path.parent.name.rsplit("_s", 1)[0]
      share = len(meta.get("group") or ()) or 1  # a group's time, shared
      out.setdefault(name, []).append(float(meta["wall_seconds"]) / share)
  return out


def cost_text(runs_dir: Path, planned: int) -> str:
  """``--list``'s cost: the measured wall time of each finished run."""
  times = wall_times(runs_dir)
  done = len(list(Path(runs_dir).glob("*/run.json")))
  if not done:
    return f"no full-size run finished yet ({planned} planned, {runs_dir})"
  timed = sum(len(v) for v in times.values())
  parts = [f"{name} {np.mean(v) / 60:.1f} min" + (f" (×{len(v)})"
                                                  if len(v) > 1 else "")
           for name, v in times.items()]
  resumed = (f"; {done - timed} resumed, untimed" if done > timed else "")
  return (f"reading: seconds; measured wall time per full-size run on a "
          f"shared 2-core CPU ({done} of {planned} finished{resumed}): "
          + ", ".join(parts))


__all__ = ["COMMIT_ENV", "at_wall_time", "cost_text",
           "read_run", "step_time", "train_run", "train_seeds", "wall_times",
           "window_mean"]
