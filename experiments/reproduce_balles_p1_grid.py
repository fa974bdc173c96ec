"""Balles App. B.1.2 on P1 (Fashion-MNIST): do the thesis's winning step
sizes still win on their grids?

The thesis tuned each method's constant α on a grid (spec-noise-aware.md
§4.7, App. B.1.2) by the highest maximum test accuracy reached, one run per
α, and re-ran the winner with 10 seeds; "if two α are very close, replicate
both and keep the one with the higher maximum mean accuracy". This
reproduction trains grid points of ``configs/balles_p1_fmnist.py`` (its
``GRIDS``) at full length (6,000 steps) and compares them with the committed
winner runs of ``balles_p1_fmnist`` (``runs/<method>_s<seed>``), paired by
seed (``train.seed`` seeds the initialization and the data order):

- per method and grid point, the winner's maximum test accuracy is not below
  the grid point's by more than 0.5 pp (``ACC_MARGIN`` of ``balles_p1_fmnist``,
  the "very close" of the protocol, fixed before the runs): a t interval over
  seeds decides PASS, FAIL or INCONCLUSIVE;
- per seed, whether the winner is the best of the α trained (the thesis's
  one-run-per-α selection): a fraction, INFO.

By default the grid points are the winner's two neighbours on the thesis's
grid (``--scope full``: the whole grid). A method's missing grid runs train as
one :class:`nnopt.engine.runs.RunsTrainer` (:mod:`experiments.run_groups`;
on a CPU one run per program, where a group of conv nets is slower per run):
the α's become the per-run hyperparameter ``learning_rate``, each run the same
as alone; checkpointed under ``runs/partial/<method>/``, so an interrupted
group resumes. A run whose loss turns non-finite is kept with the records it
has and ``diverged`` in its ``run.json`` (a step size that diverges loses).

    nnopt reproduce balles_p1_grid --out experiments/results  # read runs
    python experiments/reproduce_balles_p1_grid.py --train-missing
    nnopt reproduce balles_p1_grid --quick                    # smoke
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from experiments import reproduce_balles_p1 as P1
from experiments import run_groups as G
from experiments import fmnist_runs as fr
from nnopt import config as C
from nnopt.reproduce import Claims, Reproduction, run_and_report

RESULTS = P1.ROOT / "experiments" / "results" / "balles_p1_grid"
#: The grid runs (the winners are balles_p1_fmnist's committed runs).
RUNS = Path(os.environ.get("NNOPT_P1_GRID_RUNS", RESULTS / "runs"))
TRAIN_ENV = "NNOPT_P1_GRID_TRAIN_MISSING"
#: The methods with a grid in App. B.1.2 (M-SVAG-mb reuses M-SVAG's α).
METHODS = ("msgd", "adam", "msign_sgd", "msvag")
SEEDS = P1.SEEDS  # the winners' seeds
SCOPES = ("neighbours", "full")
ITEM = "App. B.1.2 (P1)"
QUOTE = ("Pick the α with the highest maximum test accuracy reached. [...] "
         "If two α are very close, replicate both and keep the one with the "
         "higher maximum mean accuracy (spec §4.7, App. B.1.2).")
QUANTITY = "maximum test accuracy reached over the run's evaluations"
_RUN_DIR = re.compile(r"^(?P<method>[a-z_]+)_lr(?P<lr>[0-9.e+-]+)"
                      r"_s(?P<seed>\d+)$")


def _settings() -> tuple[dict[str, float], dict[str, list[float]]]:
  """The config file's ``WINNERS`` and ``GRIDS`` (App. B.1.2)."""
  spec = importlib.util.spec_from_file_location("nnopt_p1_grids", P1.CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return dict(module.WINNERS), {m: list(g) for m, g in module.GRIDS.items()}


def grid_points(method: str, scope: str = "neighbours") -> list[float]:
  """The α's to train besides the winner: its neighbours on the thesis's
  grid (``'neighbours'``) or the whole grid (``'full'``), in grid order."""
  if scope not in SCOPES:
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
  winners, grids = _settings()
  grid, winner = grids[method], winners[method]
  i = grid.index(winner)
  if scope == "full":
    return grid[:i] + grid[i + 1:]
  return grid[max(0, i - 1):i] + grid[i + 1:i + 2]


def run_name(method: str, lr: float, seed: int) -> str:
  return f"{method}_lr{lr:g}_s{seed}"


def read_grid(runs_dir: Path, num_steps: int = P1.NUM_STEPS
              ) -> tuple[dict[str, dict[float, dict[int, list[dict]]]],
                         dict[str, str]]:
  """The grid runs under ``runs_dir``: ``{method: {α: {seed: records}}}``
  and ``{run dir name: why skipped}``; a run counts when it reached
  ``num_steps`` or diverged (``run.json``)."""
  runs: dict[str, dict[float, dict[int, list[dict]]]] = {
      m: {} for m in METHODS}
  skipped = {}
  if not runs_dir.is_dir():
    return runs, skipped
  for d in sorted(runs_dir.iterdir()):
    match = _RUN_DIR.match(d.name)
    if not match or match["method"] not in METHODS:
      continue
    finished = fr.read_run(d)
    if finished is None:
      skipped[d.name] = "no run.json"
      continue
    records, meta = finished
    last = max((r.get("step", 0) for r in records), default=0)
    if last < num_steps and not meta.get("diverged"):
      skipped[d.name] = f"incomplete: last step {last} < {num_steps}"
      continue
    runs[match["method"]].setdefault(float(match["lr"]), {})[
        int(match["seed"])] = records
  return runs, skipped


def max_accuracy(records) -> float:
  """The highest test accuracy the run reached; 0 for a run that diverged
  before its first evaluation (it cannot be picked)."""
  return max((r["test_accuracy"] for r in records
              if r.get("test_accuracy") is not None), default=0.0)


def train_grid(runs_dir: Path, methods=METHODS, seeds=SEEDS, *,
               scope: str = "neighbours", quick: bool = False,
               progress: bool = True, group_size: int | str | None = "auto",
               overrides: tuple[str, ...] = ()) -> list[str]:
  """Trains the grid runs missing under ``runs_dir``; returns their names.

  A method's missing (α, seed) runs train in groups of ``group_size`` (None:
  all; ``'auto'``: one on a CPU, all elsewhere, by
  :func:`run_groups.conv_group_size`) on the runs axis; ``overrides`` are
  config overrides for every run.
  """
  _, config = C.load_config_file(P1.CONFIG)
  have, _ = read_grid(runs_dir, P1.QUICK_STEPS if quick else P1.NUM_STEPS)
  trained, datasets = [], G.Datasets()
  for method in methods:
    wanted = [(lr, s) for lr in grid_points(method, scope) for s in seeds
              if s not in have[method].get(lr, {})]
    for group in G.chunks(wanted, G.conv_group_size(group_size)):
      members = [G.Member(run_name(method, lr, s), C.resolve(
          config, method, quick=quick, overrides=[
              f"train.seed={s}", f"optimizer.learning_rate={lr!r}",
              *overrides])) for lr, s in group]
      workdir = runs_dir / "partial" / method
      result = G.train_group(members, workdir, progress=progress,
                             dataset=datasets(members[0].spec),
                             checkpoints=3 if quick else 20)
      for (lr, seed), name in zip(group, result.names):
        run = result.runs[name]
        G.write_run(runs_dir / name, run.records, {
            "method": method, "learning_rate": lr, "seed": seed,
            "wall_seconds": round(result.wall_seconds, 2), "quick": quick,
            "group": result.names, "diverged": run.diverged,
            "resumed": run.resumed, "overrides": list(overrides),
            "dataset": members[0].spec["dataset"]["name"],
            "steps": run.records[-1]["step"] if run.records else 0,
            "commit": os.environ.get(fr.COMMIT_ENV),
            "host": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"},
                    indent=1)
      G.discard(workdir, result.names)
      trained += result.names
  return trained


def state_claims(claims: Claims, winners, grid, *, problem: str,
                 seeds=SEEDS) -> None:
  """Appends, per method, the winner-vs-grid-point verdicts and the
  per-seed selection fraction measured on ``winners`` (balles_p1_fmnist's
  runs by method and seed) and ``grid`` (:func:`read_grid`).

  The grid points compared are the winner's neighbours (NOT RUN while their
  runs are missing) and every other α with runs.
  """
  rates, _ = _settings()
  table = {}
  for method in METHODS:
    label, best = P1.LABELS[method], rates[method]
    win = {s: max_accuracy(r) for s, r in winners.get(method, {}).items()}
    points = {lr: {s: max_accuracy(r) for s, r in by_seed.items()}
              for lr, by_seed in grid[method].items()}
    compared = [lr for lr in grid_points(method, "full")
                if lr in grid_points(method) or lr in points]
    for lr in compared:
      missing = [run_name(method, lr, s) for s in seeds
                 if s not in points.get(lr, {})]
      missing += [f"balles_p1_fmnist/runs/{method}_s{s}" for s in seeds
                  if s not in win]
      claims.compare(
          ITEM, f"{problem}: {label}'s winner α = {best:g} reaches a maximum "
          f"test accuracy not below α = {lr:g}'s by more than "
          f"{P1.ACC_MARGIN * 100:g} pp", win, points.get(lr, {}),
          relation="≥", margin=P1.ACC_MARGIN, quote=QUOTE,
          names=(f"α = {best:g}", f"α = {lr:g}"), quantity=QUANTITY,
          missing=("missing: " + ", ".join(missing)) if missing else None)
    holds = {}
    for s in seeds:
      rivals = [points[lr][s] for lr in compared if s in points.get(lr, {})]
      if s in win and rivals:
        holds[s] = win[s] >= max(rivals)
    claims.fraction(
        ITEM, f"{problem}, per seed: {label}'s winner α = {best:g} is the best "
        "of the α's trained by maximum test accuracy", holds,
        quote=QUOTE, measured={"quantity": QUANTITY})
    table[label] = {f"{lr:g}": {"max_test_accuracy_by_seed": by_seed,
                                "mean": float(np.mean(list(by_seed.values())))}
                    for lr, by_seed in sorted({**points, best: win}.items())
                    if by_seed}
  claims.info(ITEM, f"{problem}: maximum test accuracy per α (winners from "
              "balles_p1_fmnist's runs)", {"per_method": table})


def run(out_dir: Path, quick: bool) -> Claims:
  if quick:
    runs_dir = out_dir / "quick_runs"
    shutil.rmtree(runs_dir, ignore_errors=True)  # a smoke test trains afresh
    P1.train_runs(runs_dir, methods=METHODS, seeds=P1.QUICK_SEEDS,
                  quick=True, progress=False)
    train_grid(runs_dir, seeds=P1.QUICK_SEEDS, quick=True, progress=False)
    winners, _ = P1.read_runs(runs_dir, P1.QUICK_STEPS)
    grid, _ = read_grid(runs_dir, P1.QUICK_STEPS)
    claims = Claims("balles", scope="smoke", stand_in=P1.STAND_IN,
                    dataset="digits")
    state_claims(claims, winners, grid, problem="digits stand-in",
                 seeds=P1.QUICK_SEEDS)
    return claims
  if os.environ.get(TRAIN_ENV) == "1":
    train_grid(RUNS)
  winners, _ = P1.read_runs(P1.RUNS)
  grid, skipped = read_grid(RUNS)
  claims = Claims("balles", dataset="fashion_mnist")
  if skipped:
    claims.info(ITEM, "run directories left out", {"left_out": skipped})
  state_claims(claims, winners, grid, problem="P1 on Fashion-MNIST")
  return claims


REPRODUCTION = Reproduction(
    id="balles_p1_grid", thesis="balles", items=(ITEM,), run=run,
    title="P1 on Fashion-MNIST: the thesis's winning step sizes against "
    "their grid neighbours at full length, paired by seed",
    cost=fr.cost_text(RUNS, 2 * len(METHODS) * len(SEEDS)) + " (a group's "
    "wall time over its runs: a method's 2 α × 2 seeds train as one program; "
    "quick: about a minute)", smoke=P1.STAND_IN)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--train-missing", action="store_true",
                      help=f"train the grid runs missing under {RUNS} first")
  parser.add_argument("--methods", nargs="+", default=list(METHODS),
                      choices=METHODS)
  parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
  parser.add_argument("--scope", choices=SCOPES, default="neighbours")
  parser.add_argument("--group-size", type=int, help="runs per program")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", default=str(RESULTS.parent),
                      help="output root (default: experiments/results)")
  args = parser.parse_args(argv)
  if args.train_missing and not args.quick:
    print("trained:", train_grid(
        RUNS, args.methods, args.seeds, scope=args.scope,
        group_size=args.group_size or "auto") or "nothing")
  return run_and_report(REPRODUCTION, args.out, quick=args.quick)


if __name__ == "__main__":
  sys.exit(main())
