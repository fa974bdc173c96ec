"""``nnopt run``: every check before anything is written, then the runs.

The run command resolves and builds every variant on its data, checks the
work directory and, with ``--resume``, that each run can continue (its saved
config, its checkpoints, its budget) before it writes a file; then it trains
the variants one after the other and draws ``curves.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax

from nnopt import config as config_lib
from nnopt import report
from nnopt.cli.errors import (USER_ERRORS, RunError, check_dir_arg, info,
                              one_line, warn)
from nnopt.cli.sweeps import sweep_curves, sweep_summary
from nnopt.engine import Interrupted, ResumeError
from nnopt.engine.resume import read_records
from nnopt.engine.runs import RunsTrainer

#: Keys a ``--resume`` may change: the budget, logging and evaluation.
RESUMABLE_KEYS = frozenset({
    "name", "description", "dataset.data_dir", "train.num_steps",
    "train.num_epochs", "train.eval_every", "train.eval_train",
    "train.eval_batch_size", "train.log_every", "train.checkpoint_every"})


def _differences(old, new, prefix=""):
  """Dotted keys whose values differ between two JSON trees."""
  if isinstance(old, dict) and isinstance(new, dict):
    out = []
    for key in sorted(set(old) | set(new), key=str):
      path = f"{prefix}.{key}" if prefix else str(key)
      out += _differences(old.get(key), new.get(key), path)
    return out
  return [] if old == new else [(prefix, old, new)]


def _jsonable(spec) -> dict:
  return json.loads(json.dumps(spec, default=str))


def _check_resume(workdir: Path, specs, trainers) -> None:
  """Refuses (writing nothing) a ``--resume`` that cannot continue the runs."""
  if not workdir.is_dir():
    raise RunError(f"--resume: {workdir} does not exist; there is nothing to "
                   "resume (run without --resume to start)")
  steps = {}
  for v, spec in specs.items():
    rundir = workdir / v
    if not spec["train"]["checkpoint_every"]:
      raise RunError(
          f"--resume: variant {v!r} saves no checkpoints "
          "(train.checkpoint_every is not set), so it cannot be resumed; run "
          "without --resume to start it afresh, or set "
          "train.checkpoint_every")
    saved_path = rundir / "config.json"
    if saved_path.exists():
      try:
        saved = json.loads(saved_path.read_text())
      except ValueError:
        raise RunError(f"--resume: {saved_path} is not valid JSON, so this "
                       "run's config cannot be checked against it") from None
      diffs = [d for d in _differences(saved, _jsonable(spec))
               if d[0] not in RESUMABLE_KEYS]
      if diffs:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:3])
        raise RunError(
            f"--resume: variant {v!r} in {rundir} was run with another "
            f"config ({shown}{'; …' if len(diffs) > 3 else ''}); only "
            "the budget, logging and evaluation keys may change on resume "
            "(use a new --workdir for a new config)")
    try:
      steps[v] = trainers[v].resume_step()
    except ResumeError as e:
      raise RunError(f"--resume: variant {v!r}: {e}") from None
  if all(step is None for step in steps.values()):
    raise RunError(f"--resume: no checkpoint under {workdir} for "
                   f"{', '.join(map(repr, specs))}; there is nothing to "
                   "resume (run without --resume to start afresh)")


def _write_text(path: Path, text: str) -> None:
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  except OSError as e:
    raise RunError(f"cannot write {path}: {e.strerror or e}") from None


def run_command(args: argparse.Namespace) -> int:
  """``nnopt run``: see :mod:`nnopt.cli`."""
  name, config = config_lib.load_config_file(args.config)
  overrides = [config_lib.parse_override(s) for s in args.set or ()]
  if args.data_dir is not None:
    overrides.append(config_lib.Override(("dataset", "data_dir"),
                                         args.data_dir, f"data_dir={args.data_dir}"))
  tree = config_lib.apply_overrides(
      config, [o for o in overrides if o.path[0] in config_lib.SPECIAL_KEYS])
  names = config_lib.variant_names(tree)
  if args.variant:
    unknown = [v for v in args.variant if v not in names]
    if unknown:
      raise config_lib.ConfigError(
          f"--variant: unknown variant(s) {unknown}; variants: "
          f"{', '.join(names)}")
    names = [v for v in names if v in args.variant]
  if args.quick and not tree.get("quick"):
    info(f"{args.config} has no 'quick' section; --quick changes nothing")
  # Everything is checked before anything is written: every variant is
  # resolved (validated), built on its data, and its resume point found.
  specs = {v: config_lib.resolve(config, v, quick=args.quick,
                                 overrides=overrides) for v in names}
  panels = config_lib.panels(tree, list(specs))
  workdir = Path(args.workdir or os.path.join("runs", name))
  check_dir_arg("--workdir", workdir)
  progress = sys.stderr.isatty() if args.progress is None else args.progress
  datasets, trainers = {}, {}
  for v, spec in specs.items():
    key = config_lib.dataset_key(spec)
    if key not in datasets:
      datasets[key] = config_lib.load_dataset(spec)
    experiment = config_lib.build(spec, dataset=datasets[key])
    make = (experiment.runs_trainer if experiment.is_sweep
            else experiment.trainer)
    try:
      trainers[v] = make(str(workdir / v), progress=progress, warn=warn)
    except ValueError as e:
      raise config_lib.ConfigError(f"variant {v!r}: {one_line(e)}") from None
  if args.resume:
    _check_resume(workdir, specs, trainers)
  else:
    for v, spec in specs.items():
      ckpt = workdir / v / "checkpoints"
      swept = workdir / v / "runs"
      if spec["train"]["checkpoint_every"] and swept.is_dir() and any(
          swept.glob("*/checkpoints/*")):
        raise RunError(
            f"{swept} holds checkpoints of an earlier sweep; pass --resume "
            "to continue it, or --workdir for a fresh run")
      if spec["train"]["checkpoint_every"] and ckpt.is_dir() and any(
          ckpt.iterdir()):
        raise RunError(
            f"{ckpt} holds checkpoints of an earlier run; pass --resume to "
            "continue it, or --workdir for a fresh run")

  main_process = jax.process_index() == 0
  if main_process:
    try:
      workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise RunError(f"cannot create the work directory {workdir}: "
                     f"{e.strerror or e}") from None
    _write_text(workdir / "config.json", json.dumps({
        "name": name, "config_file": os.path.abspath(args.config),
        "quick": bool(args.quick), "set": [o.text for o in overrides],
        "variants": specs, "panels": panels}, indent=2, default=str) + "\n")
  finished = []
  try:
    for i, (v, spec) in enumerate(specs.items(), 1):
      rundir = workdir / v
      if main_process:
        _write_text(rundir / "config.json",
                    json.dumps(spec, indent=2, default=str) + "\n")
      info(f"[{i}/{len(specs)}] {v}: {spec['model']['name']} on "
            f"{spec['dataset']['name']}, {spec['optimizer']['name']} "
            f"→ {rundir}")
      t0 = time.perf_counter()
      trainer = trainers[v]
      try:
        trainer.fit(resume=args.resume)
      except Interrupted as e:
        e.variant = v
        raise
      except Exception as e:  # pylint: disable=broad-except
        if isinstance(e, USER_ERRORS):
          raise RunError(f"variant {v!r}: {one_line(e)}") from e
        raise
      finished.append(v)
      seconds = time.perf_counter() - t0
      if isinstance(trainer, RunsTrainer):
        sweep_summary(v, trainer, workdir / v, seconds)
        continue
      last = trainer.history[-1] if trainer.history else {}
      summary = ", ".join(f"{k} {last[k]:.4g}" for k in (
          "train_loss", "test_loss", "test_accuracy") if k in last)
      print(f"{v}: step {last.get('step', 0)}, {summary} "
            f"({seconds:.1f} s)", flush=True)
  finally:
    if main_process and finished:
      runs = {}
      for v in specs:
        path = workdir / v / "metrics.jsonl"
        if isinstance(trainers[v], RunsTrainer):
          curves = sweep_curves(v, trainers[v])
          runs.update(curves)
          panels = {t: [n for name in names for n in (
              list(curves) if name == v else [name])]
                    for t, names in panels.items()}
        else:
          runs[v] = read_records(str(path))[0] if path.exists() else []
      runs = {v: r for v, r in runs.items() if r}
      if runs:
        path = report.plot_curves(runs, workdir / "curves.png",
                                  title=tree.get("description") or name,
                                  panels=panels, dpi=90)
        info(f"wrote {path}")
  return 0


__all__ = ["RESUMABLE_KEYS", "run_command"]
