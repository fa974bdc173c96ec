"""The ``nnopt`` command line: ``run``, ``reproduce`` and ``report``.

.. code-block:: text

    nnopt run CONFIG [--set KEY=VALUE ...] [--workdir DIR] [--resume] [--quick]
                     [--variant NAME ...] [--data_dir DIR] [--[no-]progress]
    nnopt reproduce ID [ID ...] [--quick] [--out DIR]
    nnopt reproduce --all [--quick] [--out DIR]
    nnopt reproduce --list
    nnopt report DIR [--output FILE]

``run`` trains every variant of a config file (see :mod:`nnopt.config`) into
``WORKDIR/<variant>/`` (``metrics.jsonl``, ``checkpoints/``), and writes
``WORKDIR/config.json`` and ``WORKDIR/curves.png``; the default work directory
is ``runs/<config name>``. ``reproduce`` runs the installed reproductions
(:mod:`nnopt.reproduce.registry`; nnopt's are ``experiments/reproduce_*.py``)
into ``OUT/<id>/`` (default ``out/``) and refreshes ``OUT/REPORT.md``;
``report`` rebuilds that report from the ``claims.json`` files under a
directory.

User errors (invalid config or override, missing data, a diverged run, unknown
reproduction) print one line ``nnopt: error: …`` on stderr and exit with
status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import jax

from nnopt import config as config_lib
from nnopt import report, reproduce
from nnopt.data import DatasetError
from nnopt.engine.trainer import NonFiniteLossError


class UsageError(Exception):
  """Bad command-line usage (argparse errors included)."""


class RunError(Exception):
  """A run stopped on a user-level problem (e.g. a non-finite loss)."""


class _Parser(argparse.ArgumentParser):

  def error(self, message):  # argparse would print usage and exit.
    raise UsageError(f"{message} (see '{self.prog} --help')")


#: Errors that are the user's (printed as one line, exit status 2).
USER_ERRORS = (UsageError, RunError, config_lib.ConfigError, DatasetError,
               reproduce.ReproduceError, NonFiniteLossError, PermissionError,
               FileExistsError, IsADirectoryError, NotADirectoryError)


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  return text or type(error).__name__


def _info(message: str) -> None:
  print(f"nnopt: {message}", file=sys.stderr, flush=True)


# -- run -----------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
  name, config = config_lib.load_config_file(args.config)
  overrides = [config_lib.parse_override(s) for s in args.set or ()]
  if args.data_dir is not None:
    overrides.append(config_lib.Override(("dataset", "data_dir"),
                                         args.data_dir, f"data_dir={args.data_dir}"))
  tree = config_lib.apply_overrides(
      config, [o for o in overrides if o.path[0] in ("variants", "quick")])
  names = config_lib.variant_names(tree)
  if args.variant:
    unknown = [v for v in args.variant if v not in names]
    if unknown:
      raise config_lib.ConfigError(
          f"--variant: unknown variant(s) {unknown}; variants: "
          f"{', '.join(names)}")
    names = [v for v in names if v in args.variant]
  if args.quick and not tree.get("quick"):
    _info(f"{args.config} has no 'quick' section; --quick changes nothing")
  # Resolve (and so validate) every variant once, before any training starts.
  specs = {v: config_lib.resolve(config, v, quick=args.quick,
                                 overrides=overrides) for v in names}
  workdir = Path(args.workdir or os.path.join("runs", name))
  if not args.resume:
    for v, spec in specs.items():
      ckpt = workdir / v / "checkpoints"
      if spec["train"]["checkpoint_every"] and ckpt.is_dir() and any(
          ckpt.iterdir()):
        raise config_lib.ConfigError(
            f"{ckpt} holds checkpoints of an earlier run; pass --resume to "
            "continue it, or --workdir for a fresh run")

  main_process = jax.process_index() == 0
  if main_process:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps({
        "name": name, "config_file": os.path.abspath(args.config),
        "quick": bool(args.quick), "set": [o.text for o in overrides],
        "variants": specs}, indent=2, default=str) + "\n")
  progress = sys.stderr.isatty() if args.progress is None else args.progress
  datasets = {}
  finished = []
  try:
    for i, (v, spec) in enumerate(specs.items(), 1):
      key = config_lib.dataset_key(spec)
      if key not in datasets:
        datasets[key] = config_lib.load_dataset(spec)
      experiment = config_lib.build(spec, dataset=datasets[key])
      rundir = workdir / v
      if main_process:
        rundir.mkdir(parents=True, exist_ok=True)
        (rundir / "config.json").write_text(
            json.dumps(spec, indent=2, default=str) + "\n")
      _info(f"[{i}/{len(specs)}] {v}: {spec['model']['name']} on "
            f"{spec['dataset']['name']}, {spec['optimizer']['name']} "
            f"→ {rundir}")
      t0 = time.perf_counter()
      trainer = experiment.trainer(str(rundir), progress=progress)
      try:
        trainer.fit(resume=args.resume)
      except Exception as e:  # pylint: disable=broad-except
        if isinstance(e, USER_ERRORS):
          raise RunError(f"variant {v!r}: {_one_line(e)}") from e
        raise
      finished.append(v)
      last = trainer.history[-1] if trainer.history else {}
      summary = ", ".join(f"{k} {last[k]:.4g}" for k in (
          "train_loss", "test_loss", "test_accuracy") if k in last)
      print(f"{v}: step {last.get('step', 0)}, {summary} "
            f"({time.perf_counter() - t0:.1f} s)", flush=True)
  finally:
    if main_process and finished:
      runs = {v: report.read_metrics(workdir / v / "metrics.jsonl")
              for v in specs}
      runs = {v: r for v, r in runs.items() if r}
      if runs:
        path = report.plot_curves(runs, workdir / "curves.png", title=name)
        _info(f"wrote {path}")
  return 0


# -- reproduce -------------------------------------------------------------------


def _reproduce(args: argparse.Namespace) -> int:
  if args.list:
    if args.ids or args.all:
      raise UsageError("--list takes no ids and no --all")
    registry = reproduce.discover(args.experiments)
    reps = sorted(registry.reproductions.values(),
                  key=lambda r: (r.thesis, r.id))
    width = max([len(r.id) for r in reps] + [2])
    print(f"{'id':<{width}}  thesis  items / title")
    for r in reps:
      cost = f" [{r.cost}]" if r.cost else ""
      print(f"{r.id:<{width}}  {r.thesis:<6}  {', '.join(r.items)}: "
            f"{r.title}{cost}")
    for file, error in registry.errors.items():
      print(f"{'(broken)':<{width}}  {file}: {error}")
    return 0
  if args.all and args.ids:
    raise UsageError("give reproduction ids or --all, not both")
  if not args.all and not args.ids:
    raise UsageError("give a reproduction id, --all or --list")
  registry = reproduce.discover(args.experiments)
  if args.all:
    reps = sorted(registry.reproductions.values(),
                  key=lambda r: (r.thesis, r.id))
    for file, error in registry.errors.items():
      _info(f"skipping {file}: {error}")
  else:
    reps = [registry.get(rid) for rid in args.ids]
  out = Path(args.out)
  failed = []
  for r in reps:
    _info(f"reproducing {r.id} ({', '.join(r.items)})"
          f"{' in quick mode' if args.quick else ''} → {out / r.id}")
    result = reproduce.run_reproduction(r, out, quick=args.quick)
    counts = result.counts()
    print(f"{r.id}: " + ", ".join(f"{counts[s]} {s}"
                                  for s in reproduce.STATUSES)
          + f" ({result.wall_time:.1f} s) → {result.directory / 'claims.json'}",
          flush=True)
    if result.error:
      failed.append(r.id)
      print(f"nnopt: error: {r.id} failed: {_one_line(Exception(result.error))}"
            f" (traceback in {result.directory / 'error.log'})",
            file=sys.stderr)
  if reps:
    _info(f"wrote {report.write_report(out)}")
  return 1 if failed else 0


# -- report -----------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
  path = report.write_report(args.dir, args.output)
  entries = report.collect(args.dir)
  for thesis, counts in report.thesis_counts(entries).items():
    print(f"{thesis}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
  _info(f"wrote {path}")
  return 0


# -- parser -----------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="nnopt", description=(
      "Train experiment configs, reproduce thesis claims, write reports."))
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")

  run = sub.add_parser("run", help="train the variants of a config file",
                       description=(
                           "Train every variant of CONFIG (a Python file "
                           "with get_config()); writes metrics.jsonl per "
                           "variant, config.json and curves.png."))
  run.add_argument("config", metavar="CONFIG", help="configs/NAME.py")
  run.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (repeatable); VALUE is a "
                   "Python literal, else a string; e.g. --set "
                   "optimizer.learning_rate=0.1, --set "
                   "variants.adam.train.seed=3")
  run.add_argument("--workdir", help="output directory (default: "
                   "runs/<config name>)")
  run.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoints")
  run.add_argument("--quick", action="store_true",
                   help="apply the config's 'quick' section (a small, fast "
                   "version of the experiment)")
  run.add_argument("--variant", action="append", metavar="NAME",
                   help="run only this variant (repeatable)")
  run.add_argument("--data_dir", "--data-dir", dest="data_dir",
                   help="IDX or TFDS data directory (sets dataset.data_dir)")
  run.add_argument("--progress", dest="progress", action="store_true",
                   default=None, help="show a progress bar (default: when "
                   "stderr is a terminal)")
  run.add_argument("--no-progress", dest="progress", action="store_false")
  run.set_defaults(func=_run)

  rep = sub.add_parser("reproduce", help="reproduce thesis items as claims",
                       description=(
                           "Run reproductions (the installed ones, see "
                           "--list); each writes OUT/ID/claims.json and "
                           "figures."
                       ))
  rep.add_argument("ids", nargs="*", metavar="ID")
  rep.add_argument("--list", action="store_true",
                   help="list the registered reproductions")
  rep.add_argument("--all", action="store_true", help="run every reproduction")
  rep.add_argument("--quick", action="store_true",
                   help="small versions (about a minute each on a CPU)")
  rep.add_argument("--out", default="out", help="output root (default: out)")
  rep.add_argument("--experiments", default=None, metavar="DIR",
                   help="run the reproduce_*.py scripts of DIR instead of the "
                   "installed reproductions")
  rep.set_defaults(func=_reproduce)

  report_parser = sub.add_parser(
      "report", help="collect claims.json files into REPORT.md",
      description="Collect every claims.json under DIR into DIR/REPORT.md.")
  report_parser.add_argument("dir", metavar="DIR")
  report_parser.add_argument("--output",
                             help="report path (default: DIR/REPORT.md)")
  report_parser.set_defaults(func=_report)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``nnopt`` console script; returns the exit status."""
  parser = make_parser()
  try:
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
      parser.print_help(sys.stderr)
      return 2
    return args.func(args)
  except KeyboardInterrupt:
    print("nnopt: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, USER_ERRORS):
      print(f"nnopt: error: {_one_line(e)}", file=sys.stderr)
      return 2
    raise


if __name__ == "__main__":
  sys.exit(main())
