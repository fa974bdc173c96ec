"""Balles ch. 5, test problem P1 on Fashion-MNIST at the thesis's settings:
Fig 5.4's P1 column (M-SGD, ADAM, M-SSD, M-SVAG) and Fig B.3's P1 panel
(M-SVAG vs M-SVAG-mb), as verdicts with intervals over seeds.

The runs are ``configs/balles_p1_fmnist.py`` (DeepOBS 2c2d, batch 64, 6,000
steps, constant α at the thesis's winners), one per method and seed, committed
under ``experiments/results/balles_p1_fmnist/runs/<method>_s<seed>/``
(``metrics.jsonl``, ``run.json``). This script reads them; it trains the
missing ones only when asked (a method's seeds as one program on the
engine's runs axis; ``--one-at-a-time``: each alone, as the committed runs)::

    nnopt reproduce balles_p1_fmnist --out experiments/results  # read runs
    python experiments/reproduce_balles_p1.py --train-missing  # train, read
    nnopt reproduce balles_p1_fmnist --quick                    # smoke

Runs of one seed share their start (``train.seed`` seeds the initialization
and the data order), so methods are compared paired by seed (t interval on
the per-seed differences). A comparison needs at least 2 seeds of both
methods; with fewer it is NOT RUN and names the missing runs.

Caveat recorded with every loss claim: the thesis plots the loss on a fixed
train subset of test-set size (spec §4.7); these runs log the running mean of
the mini-batch loss over each 50 steps, which is what is compared here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from experiments import run_groups as G  # pylint: disable=wrong-import-position
from nnopt import config as C  # pylint: disable=wrong-import-position
from nnopt.reproduce import (Claims, Reproduction,  # pylint: disable=wrong-import-position
                             run_and_report)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "balles_p1_fmnist.py"
RESULTS = ROOT / "experiments" / "results" / "balles_p1_fmnist"
#: Where the runs are read from (and written to by ``--train-missing``);
#: ``NNOPT_P1_RUNS`` overrides it.
RUNS = Path(os.environ.get("NNOPT_P1_RUNS", RESULTS / "runs"))
#: ``NNOPT_P1_TRAIN_MISSING=1`` makes ``nnopt reproduce`` train missing runs.
TRAIN_ENV = "NNOPT_P1_TRAIN_MISSING"

METHODS = ("msgd", "adam", "msign_sgd", "msvag", "msvag_mb")
LABELS = {"msgd": "M-SGD", "adam": "ADAM", "msign_sgd": "M-SSD",
          "msvag": "M-SVAG", "msvag_mb": "M-SVAG-mb"}
COLORS = {"msgd": "tab:blue", "adam": "tab:red", "msign_sgd": "tab:orange",
          "msvag": "tab:green", "msvag_mb": "tab:purple"}
SIGN, NON_SIGN = ("adam", "msign_sgd"), ("msgd", "msvag")
SEEDS = (0, 1, 2)
NUM_STEPS = 6000
STAND_IN = ("scikit-learn digits 8×8, conv net 8/16 channels + FC 64, 150 "
            "steps, seeds 0 and 1")
QUICK_SEEDS = (0, 1)
QUICK_STEPS = 150

# -- the measured quantities and thresholds (fixed before any run) -------------

#: Final values are averaged over the last 500 steps: ten logged running
#: means of 50 mini-batches each (500 mini-batches, 32,000 examples) and the
#: test evaluations at steps 5,750 and 6,000. Fig 5.4 compares curves; its
#: text compares where they end ("plateau", "undercut"), so the end of
#: training is the quantity.
FINAL_WINDOW = 500
#: "≈" on train loss (Fig 5.4 finding 1: ADAM and M-SIGN-SGD "display
#: surprisingly similar performance"; Fig B.3: "The two algorithms have almost
#: identical performance"): the final losses within 10 % of each other,
#: |log(A/B)| ≤ log 1.1. The thesis gives no number; 10 % is well below the
#: sign/non-sign separation the same figure calls "clearly" better, so a
#: difference within it would not separate two curves on Fig 5.4's axes. Also
#: the margin of "at least as good as" (finding 3) on train loss.
LOSS_MARGIN = math.log(1.10)
#: "≈" on test accuracy: within 0.5 percentage points. One evaluation on the
#: 10,000 test images has a binomial standard error of ≈ 0.29 pp at 91 %
#: accuracy, so closer accuracies cannot be told apart by the test set;
#: also the margin of "at least as good as" (finding 3) on test accuracy.
ACC_MARGIN = 0.005
#: Comparisons need this many seeds run for both methods.
MIN_SEEDS = 2

QUOTE_SIGN = ("Considering only training loss, the two sign-based methods "
              "clearly outperform the two non-sign-based methods on problems "
              "(P1) and (P3).")
QUOTE_SIMILAR = ("ADAM and M-SIGN-SGD display surprisingly similar "
                 "performance")
QUOTE_CLUSTER = ("With the exception of (P4), the performance of the four "
                 "methods distinctly clusters into sign-based and "
                 "non-sign-based methods.")
QUOTE_VA = ("In all experiments, the variance-adapted variants perform at "
            "least as good as, and often better than, their “base "
            "algorithms”.")
QUOTE_B3 = ("We tested the minibatch variant of M-SVAG on the problems (P1) "
            "and (P2) from the main text and compared it to the moving "
            "average version. […] The two algorithms have almost identical "
            "performance.")
CAVEAT = ("running mini-batch loss (mean over each 50 steps), not the "
          "thesis's loss on a fixed train subset")

_RUN_DIR = re.compile(r"^(?P<method>[a-z_]+)_s(?P<seed>\d+)$")


# -- runs ----------------------------------------------------------------------


def read_runs(runs_dir: Path, num_steps: int = NUM_STEPS
              ) -> tuple[dict[str, dict[int, list[dict[str, Any]]]],
                         dict[str, str]]:
  """The complete runs under ``runs_dir`` by method and seed, and the others.

  Returns:
    ``({method: {seed: metrics records}}, {run dir name: why skipped}``); a
    run counts when its ``metrics.jsonl`` reaches ``num_steps``.
  """
  runs: dict[str, dict[int, list[dict[str, Any]]]] = {m: {} for m in METHODS}
  skipped = {}
  if not runs_dir.is_dir():
    return runs, skipped
  for d in sorted(runs_dir.iterdir()):
    match = _RUN_DIR.match(d.name)
    if not match or match["method"] not in METHODS:
      continue
    path = d / "metrics.jsonl"
    if not path.exists():
      skipped[d.name] = "no metrics.jsonl"
      continue
    with path.open() as f:
      records = [json.loads(line) for line in f if line.strip()]
    last = max((r.get("step", 0) for r in records), default=0)
    if last < num_steps:
      skipped[d.name] = f"incomplete: last step {last} < {num_steps}"
      continue
    runs[match["method"]][int(match["seed"])] = records
  return runs, skipped


def final_value(records, key: str, window: int = FINAL_WINDOW) -> float:
  """Mean of ``key`` over the records of the last ``window`` steps."""
  last = max(r["step"] for r in records)
  values = [r[key] for r in records
            if r["step"] > last - window and r.get(key) is not None]
  if not values:
    raise ValueError(f"no {key} in the last {window} steps")
  return float(np.mean(values))


def train_runs(runs_dir: Path, methods=METHODS, seeds=SEEDS, *,
               quick: bool = False, progress: bool = True,
               runs_axis: bool = True, group_size: int | str | None = "auto"
               ) -> list[str]:
  """Trains the runs missing under ``runs_dir``; returns their names.

  Each run is written as ``<method>_s<seed>/metrics.jsonl`` and ``run.json``
  (wall time). With ``runs_axis`` a method's missing seeds (in groups of
  ``group_size``; None: all; ``'auto'``: one on a CPU, all elsewhere, by
  :func:`run_groups.conv_group_size`) train as one :class:`nnopt.engine.runs.
  RunsTrainer` (:mod:`experiments.run_groups`; on an accelerator one
  compiled program, each seed the same run as alone), checkpointed under
  ``runs_dir/partial/<method>/`` so that an interrupted group resumes
  (``run.json``: the group's wall time, its runs in ``group``).
  ``runs_axis=False``: one run at a time, as the committed runs (2-core CPU).
  """
  _, config = C.load_config_file(CONFIG)
  have, _ = read_runs(runs_dir, QUICK_STEPS if quick else NUM_STEPS)
  trained, datasets = [], G.Datasets()
  spec_of = lambda m, s: C.resolve(config, m, quick=quick,
                                   overrides=[f"train.seed={s}"])
  if not runs_axis:
    for seed, method in ((s, m) for s in seeds for m in methods):
      if seed not in have[method]:
        history = G.train_alone(spec_of(method, seed), datasets,
                                progress=progress).history
        G.write_run(runs_dir / f"{method}_s{seed}", history, {
            "method": method, "seed": seed, "wall_seconds": history[-1].get(
                "wall_time") if history else None, "quick": quick})
        trained.append(f"{method}_s{seed}")
    return trained
  for method in methods:
    missing = [s for s in seeds if s not in have[method]]
    for group in G.chunks(missing, G.conv_group_size(group_size)):
      members = [G.Member(f"{method}_s{s}", spec_of(method, s)) for s in group]
      workdir = runs_dir / "partial" / method
      result = G.train_group(members, workdir, progress=progress,
                             dataset=datasets(members[0].spec),
                             checkpoints=3 if quick else 20)
      for seed, name in zip(group, result.names):
        if name in result.finite():  # a diverged run raises, as alone
          G.write_run(runs_dir / name, result.runs[name].records, {
              "method": method, "seed": seed, "wall_seconds": round(
                  result.wall_seconds, 2), "quick": quick,
              "group": result.names})
      G.discard(workdir, result.names)
      result.check_finite()
      trained += result.names
  return trained


# -- figures -------------------------------------------------------------------


def _curve(runs_of_method: Mapping[int, list[dict[str, Any]]], key: str):
  """Steps and per-seed values of ``key`` on the steps all seeds logged."""
  per_seed = [{r["step"]: r[key] for r in records if r.get(key) is not None}
              for records in runs_of_method.values()]
  steps = sorted(set.intersection(*(set(s) for s in per_seed)))
  return np.array(steps), np.array([[s[t] for t in steps] for s in per_seed])


def plot(runs, methods, path: Path, title: str) -> Path:
  """Train loss and test accuracy vs step: mean ± 1 std over seeds."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
  for method in methods:
    if not runs[method]:
      continue
    label = f"{LABELS[method]} (n={len(runs[method])})"
    for ax, key in ((left, "train_loss"), (right, "test_accuracy")):
      steps, values = _curve(runs[method], key)
      if not len(steps):
        continue
      mean = values.mean(0)
      std = values.std(0, ddof=1) if len(values) > 1 else 0 * mean
      ax.plot(steps, mean, color=COLORS[method], label=label, lw=1.2)
      ax.fill_between(steps, mean - std, mean + std, color=COLORS[method],
                      alpha=0.25, lw=0)
  left.set_yscale("log")
  left.set_ylabel("train loss (running mini-batch mean)")
  right.set_ylabel("test accuracy")
  for ax in (left, right):
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    if ax.lines:
      ax.legend(fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path


# -- claims --------------------------------------------------------------------


def _missing(methods, have, seeds) -> str:
  names = [f"runs/{m}_s{s}" for m in methods for s in seeds
           if s not in have[m]]
  return ("missing: " + ", ".join(names) + " (python experiments/"
          "reproduce_balles_p1.py --train-missing)") if names else ""


def state_claims(claims: Claims, runs, *, window: int, problem: str,
                 seeds=SEEDS) -> None:
  """Appends the P1 claims of Fig 5.4 and Fig B.3 measured on ``runs``."""
  loss = {m: {s: math.log(final_value(r, "train_loss", window))
              for s, r in runs[m].items()} for m in METHODS}
  acc = {m: {s: final_value(r, "test_accuracy", window)
             for s, r in runs[m].items()} for m in METHODS}
  loss_q = (f"log final train loss (mean of the last {window} steps' "
            "logged running loss)")
  acc_q = ("final test accuracy (mean of the evaluations in the last "
           f"{window} steps)")

  def compare(item, text, a, b, relation, values, *, margin=0.0, quote,
              is_loss):
    measured = {"caveat": CAVEAT} if is_loss else {}
    claim = claims.compare(
        item, text, values[a], values[b], relation=relation, margin=margin,
        names=(LABELS[a], LABELS[b]), quantity=loss_q if is_loss else acc_q,
        quote=quote, missing=_missing((a, b), runs, seeds) or None,
        measured=measured)
    if is_loss and claim.comparison:  # the interval as a loss ratio A / B
      claims[-1] = dataclasses.replace(claim, measured={
          **claim.measured,
          "loss_ratio_ci": [math.exp(x) for x in claim.comparison["ci"]]})

  item = f"Fig 5.4 ({problem})"
  for s in SIGN:
    for n in NON_SIGN:
      compare(item, f"{problem}: {LABELS[s]} reaches a lower final train loss "
              f"than {LABELS[n]} (sign-based beat non-sign-based)", s, n, "<",
              loss, quote=QUOTE_SIGN, is_loss=True)
  compare(item, f"{problem}: ADAM ≈ M-SSD in final train loss (within 10 %)",
          "adam", "msign_sgd", "≈", loss, margin=LOSS_MARGIN,
          quote=QUOTE_SIMILAR, is_loss=True)
  compare(item, f"{problem}: ADAM ≈ M-SSD in final test accuracy (within "
          "0.5 pp)", "adam", "msign_sgd", "≈", acc, margin=ACC_MARGIN,
          quote=QUOTE_SIMILAR, is_loss=False)
  for va, base in (("adam", "msign_sgd"), ("msvag", "msgd")):
    compare(item, f"{problem}: {LABELS[va]} at least as good as "
            f"{LABELS[base]} in final train loss (not above it by more than "
            "10 %)", va, base, "≤", loss, margin=LOSS_MARGIN, quote=QUOTE_VA,
            is_loss=True)
    compare(item, f"{problem}: {LABELS[va]} at least as good as "
            f"{LABELS[base]} in final test accuracy (not below it by more "
            "than 0.5 pp)", va, base, "≥", acc, margin=ACC_MARGIN,
            quote=QUOTE_VA, is_loss=False)
  common = [s for s in seeds if all(s in loss[m] for m in SIGN + NON_SIGN)]
  claims.fraction(
      item, f"{problem}, per seed: both sign-based methods end below both "
      "non-sign-based ones in train loss", {
          s: max(loss[m][s] for m in SIGN) < min(loss[m][s] for m in NON_SIGN)
          for s in common}, quote=QUOTE_CLUSTER,
      measured={"caveat": CAVEAT},
      missing=_missing(SIGN + NON_SIGN, runs, seeds) or None)
  summary = {}
  for m in METHODS:
    if runs[m]:
      losses = np.exp(list(loss[m].values()))
      accs = np.array(list(acc[m].values()))
      summary[LABELS[m]] = {
          "seeds": sorted(runs[m]), "final_train_loss_mean": losses.mean(),
          "final_test_accuracy_mean": accs.mean(),
          "max_test_accuracy_mean": np.mean([
              max(r["test_accuracy"] for r in recs if "test_accuracy" in r)
              for recs in runs[m].values()])}
  claims.info(item, f"{problem}: final values per method (means over seeds)",
              {"per_method": summary, "caveat": CAVEAT})
  item = f"Fig B.3 ({problem})"
  compare(item, f"{problem}: M-SVAG ≈ M-SVAG-mb in final train loss (within "
          "10 %)", "msvag", "msvag_mb", "≈", loss, margin=LOSS_MARGIN,
          quote=QUOTE_B3, is_loss=True)
  compare(item, f"{problem}: M-SVAG ≈ M-SVAG-mb in final test accuracy "
          "(within 0.5 pp)", "msvag", "msvag_mb", "≈", acc, margin=ACC_MARGIN,
          quote=QUOTE_B3, is_loss=False)


def run(out_dir: Path, quick: bool) -> Claims:
  if quick:
    runs_dir = out_dir / "quick_runs"
    shutil.rmtree(runs_dir, ignore_errors=True)  # a smoke test trains afresh
    train_runs(runs_dir, seeds=QUICK_SEEDS, quick=True, progress=False)
    runs, _ = read_runs(runs_dir, QUICK_STEPS)
    claims = Claims("balles", scope="smoke", stand_in=STAND_IN,
                    dataset="digits")
    problem, window, seeds = "digits stand-in", 50, QUICK_SEEDS
  else:
    if os.environ.get(TRAIN_ENV) == "1":
      train_runs(RUNS)
    runs, skipped = read_runs(RUNS)
    claims = Claims("balles", dataset="fashion_mnist")
    problem, window, seeds = "P1", FINAL_WINDOW, SEEDS
    if skipped:
      claims.info("Fig 5.4 (P1)", "run directories left out",
                  {"left_out": skipped})
  plot(runs, ("msgd", "adam", "msign_sgd", "msvag"),
       out_dir / ("fig5_4_p1_quick.png" if quick else "fig5_4_p1.png"),
       f"Fig 5.4, {problem}: mean ± 1 std over seeds")
  plot(runs, ("msvag", "msvag_mb"),
       out_dir / ("figB_3_p1_quick.png" if quick else "figB_3_p1.png"),
       f"Fig B.3, {problem}: M-SVAG (EMA) vs M-SVAG-mb")
  state_claims(claims, runs, window=window, problem=problem, seeds=seeds)
  return claims


REPRODUCTION = Reproduction(
    id="balles_p1_fmnist", thesis="balles",
    items=("Fig 5.4 (P1)", "Fig B.3 (P1)"), run=run,
    title="P1 on Fashion-MNIST at full size: sign vs variance adaptation, "
    "M-SVAG-mb; verdicts with intervals over seeds",
    cost="seconds (reads the committed runs); training a run: 316–743 s "
    "measured on a shared 2-core CPU, 15 runs ≈ 2.5 h (quick: about a minute)",
    smoke=STAND_IN)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--train-missing", action="store_true",
                      help=f"train the runs missing under {RUNS} first")
  parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
  parser.add_argument("--one-at-a-time", action="store_true", help="train "
                      "each run alone, not a method's seeds as one program")
  parser.add_argument("--group-size", type=int, help="seeds per program")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", default=str(RESULTS.parent),
                      help="output root (default: experiments/results)")
  args = parser.parse_args(argv)
  if args.train_missing and not args.quick:
    print("trained:", train_runs(
        RUNS, seeds=args.seeds, runs_axis=not args.one_at_a_time,
        group_size=args.group_size or "auto") or "nothing")
  return run_and_report(REPRODUCTION, args.out, quick=args.quick)


if __name__ == "__main__":
  sys.exit(main())
