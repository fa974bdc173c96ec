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

User errors (invalid config or override, missing data, an unusable work
directory, a ``--resume`` that cannot continue the run, a diverged run, an
unknown reproduction) print one line ``nnopt: error: …`` on stderr and exit
with status 2; ``run`` checks everything it can (every variant resolved and
built on its data, the work directory, the resume points) before it writes
anything. SIGINT / SIGTERM stop a training run at a step boundary, save a
checkpoint there when checkpointing is on, print one line and exit with
status 130 / 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from nnopt import report, reproduce
from nnopt.cli.errors import (USER_ERRORS, RunError, UsageError,
                              check_dir_arg, info, one_line)
from nnopt.cli.run import run_command
from nnopt.engine import Interrupted


class _Parser(argparse.ArgumentParser):

  def error(self, message):  # argparse would print usage and exit.
    raise UsageError(f"{message} (see '{self.prog} --help')")


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
      info(f"skipping {file}: {error}")
  else:
    reps = [registry.get(rid) for rid in args.ids]
  out = Path(args.out)
  check_dir_arg("--out", out)
  failed = []
  for r in reps:
    info(f"reproducing {r.id} ({', '.join(r.items)})"
          f"{' in quick mode' if args.quick else ''} → {out / r.id}")
    result = reproduce.run_reproduction(r, out, quick=args.quick)
    counts = result.counts()
    print(f"{r.id}: " + ", ".join(f"{counts[s]} {s}"
                                  for s in reproduce.STATUSES)
          + f" ({result.wall_time:.1f} s) → {result.directory / 'claims.json'}",
          flush=True)
    if result.error:
      failed.append(r.id)
      print(f"nnopt: error: {r.id} failed: {one_line(Exception(result.error))}"
            f" (traceback in {result.directory / 'error.log'})",
            file=sys.stderr)
  if reps:
    info(f"wrote {report.write_report(out)}")
  return 1 if failed else 0


# -- report -----------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
  path = report.write_report(args.dir, args.output)
  entries = report.collect(args.dir)
  for thesis, counts in report.thesis_counts(entries).items():
    print(f"{thesis}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
  info(f"wrote {path}")
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
  run.set_defaults(func=run_command)

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


def one_blas_thread() -> None:
  """Runs OpenBLAS single-threaded unless ``OPENBLAS_NUM_THREADS`` is set.

  XLA:CPU already spreads a step's operations over every core; OpenBLAS
  threads inside its LAPACK calls (the preconditioners' factorizations) then
  oversubscribe the cores: one Kreis Exp1 step took 0.9 s with OpenBLAS's
  default threads and 40 ms with one, on this project's 2-core machine.
  """
  if "OPENBLAS_NUM_THREADS" in os.environ:
    return
  try:
    import scipy.linalg  # pylint: disable=g-import-not-at-top,unused-import
    import threadpoolctl  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  threadpoolctl.threadpool_limits(1, user_api="blas")


def _terminate(signum, frame):
  del frame
  raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``nnopt`` console script; returns the exit status.

  0: done; 1: a reproduction failed; 2: a user error (one line ``nnopt:
  error: …`` on stderr); 130 / 143: stopped by SIGINT / SIGTERM (a training
  run first saves a checkpoint at the current step when checkpointing is on).
  """
  parser = make_parser()
  one_blas_thread()
  in_main = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
  try:
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
      parser.print_help(sys.stderr)
      return 2
    return args.func(args)
  except KeyboardInterrupt as e:
    if not isinstance(e, Interrupted):
      e = Interrupted(signal.SIGINT)
    variant = getattr(e, "variant", None)
    where = f" (variant {variant!r})" if variant else ""
    print(f"nnopt: {e}{where}", file=sys.stderr, flush=True)
    return e.exit_status
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, USER_ERRORS):
      print(f"nnopt: error: {one_line(e)}", file=sys.stderr)
      return 2
    raise
  finally:
    if in_main:
      signal.signal(signal.SIGTERM, previous)


__all__ = ["USER_ERRORS", "RunError", "UsageError", "main", "make_parser"]
