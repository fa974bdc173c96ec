"""The runs of ``reproduce_kreis_fmnist.py``: names, training order, quantities.

Kreis ch. 5 Exp1–Exp3 on Fashion-MNIST (``configs/kreis_fmnist_exp{1,2,3}.py``):
each run is one (experiment, variant, seed) under
``experiments/results/kreis_fmnist/runs/<exp>_<variant>_s<seed>/``
(:mod:`experiments.fmnist_runs`). :class:`Runs` reads the finished runs of one
experiment and computes the quantities the claims compare: the thesis's MA-200
of the mini-batch loss at the end (champion criterion, spec P19), the loss
over the first tenth of training, the best / worst of a set of learning rates
per seed, test metrics and the measured time per step.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from experiments import fmnist_runs as fr

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results" / "kreis_fmnist"
#: Where runs are read from and written to; ``NNOPT_KREIS_FMNIST_RUNS`` overrides.
RUNS = Path(os.environ.get("NNOPT_KREIS_FMNIST_RUNS", RESULTS / "runs"))
EXPS = ("exp1", "exp2", "exp3")
NEIGHBOURS = ("sgd_up", "sgd_down", "frobenius_up", "frobenius_down")
VARIANTS = {e: ("sgd", "frobenius") + NEIGHBOURS for e in EXPS}
VARIANTS["exp3"] += ("sgd_long",)
SGD_SET, PRE_SET = ("sgd", "sgd_up", "sgd_down"), (
    "frobenius", "frobenius_up", "frobenius_down")
STEPS = {"exp1": 18000, "exp2": 1800, "exp3": 1800}
SEEDS = (0, 1, 2)
WINDOW = 200  # the thesis's moving average (spec P19)
#: The final loss recorded for a run whose loss turned non-finite.
DIVERGED_LOSS = 1e30
QUICK_SEEDS = (0, 1)
STAND_IN = ("scikit-learn digits 8×8 (64 inputs; autoencoder 64-200-100-50-"
            "30-50-100-200-64), 3 epochs (SGD long: 9), champions at seeds 0 "
            "and 1, grid neighbours at seed 0")


def config_path(exp: str) -> Path:
  return ROOT / "configs" / f"kreis_fmnist_{exp}.py"


def run_name(exp: str, variant: str, seed: int) -> str:
  return f"{exp}_{variant}_s{seed}"


def queue(seeds=SEEDS) -> list[tuple[str, str, int]]:
  """All runs in the order they are trained: cheap and champions first."""
  order = []
  for seed in seeds:  # Exp3 and Exp1 champions: minutes
    order += [("exp3", v, seed) for v in VARIANTS["exp3"]]
    order += [("exp1", v, seed) for v in ("sgd", "frobenius")]
  for seed in seeds[:2]:
    order += [("exp2", v, seed) for v in ("sgd", "frobenius")]
  for seed in seeds:
    order += [("exp1", v, seed) for v in NEIGHBOURS]
  order += [("exp2", v, seeds[0]) for v in NEIGHBOURS]
  order += [("exp2", v, s) for s in seeds[2:3] for v in ("sgd", "frobenius")]
  order += [("exp2", v, s) for s in seeds[1:] for v in NEIGHBOURS]
  return order


def quick_runs() -> list[tuple[str, str, int]]:
  """The smoke runs: champions (and SGD long) at two seeds, neighbours at one."""
  return [(e, v, s) for e in EXPS for v in VARIANTS[e]
          for s in (QUICK_SEEDS if v in ("sgd", "frobenius", "sgd_long")
                    else QUICK_SEEDS[:1])]


def _overrides(variant: str, quick: bool) -> list[str]:
  return ["train.num_epochs=9"] if quick and variant == "sgd_long" else []


def train(exp: str, variant: str, seed: int, runs_dir: Path = RUNS, *,
          quick: bool = False, progress: bool = False):
  return fr.train_run(config_path(exp), variant, seed,
                      runs_dir / run_name(exp, variant, seed), quick=quick,
                      overrides=_overrides(variant, quick), progress=progress)


def train_seeds(exp: str, variant: str, seeds, runs_dir: Path = RUNS, *,
                quick: bool = False, progress: bool = False):
  """``seeds`` of one (experiment, variant) as one runs-axis program
  (:func:`experiments.fmnist_runs.train_seeds`; partial files under
  ``runs_dir/partial/<exp>_<variant>/``)."""
  return fr.train_seeds(config_path(exp), variant, seeds, runs_dir,
                        [run_name(exp, variant, s) for s in seeds],
                        runs_dir / "partial" / f"{exp}_{variant}",
                        quick=quick, overrides=_overrides(variant, quick),
                        progress=progress)


def train_missing(runs_dir: Path = RUNS, seeds=SEEDS, *, quick=False,
                  progress=True, runs_axis: bool = False) -> list[str]:
  """Trains the missing runs in :func:`queue` order: one at a time, or with
  ``runs_axis`` a variant's missing seeds as one program (where it first
  appears in the queue; on an accelerator)."""
  done = []
  if runs_axis:
    groups: dict[tuple[str, str], list[int]] = {}
    for exp, variant, seed in queue(seeds):
      if fr.read_run(runs_dir / run_name(exp, variant, seed)) is None:
        groups.setdefault((exp, variant), []).append(seed)
    for (exp, variant), group in groups.items():
      done += list(train_seeds(exp, variant, group, runs_dir, quick=quick,
                               progress=progress))
    return done
  for exp, variant, seed in queue(seeds):
    if fr.read_run(runs_dir / run_name(exp, variant, seed)) is None:
      train(exp, variant, seed, runs_dir, quick=quick, progress=progress)
      done.append(run_name(exp, variant, seed))
  return done


# -- measured quantities ---------------------------------------------------------


class Runs:
  """The finished runs of one experiment and their per-run quantities."""

  def __init__(self, runs_dir: Path, exp: str, seeds, quick: bool):
    self.exp, self.seeds, self.runs_dir = exp, tuple(seeds), runs_dir
    self.runs = {}
    for v in VARIANTS[exp]:
      self.runs[v] = {}
      for s in seeds:
        got = fr.read_run(runs_dir / run_name(exp, v, s))
        if got is not None:
          self.runs[v][s] = got
    some = [r for by_seed in self.runs.values() for r, _ in by_seed.values()]
    steps = max((r[-1]["step"] for r in some), default=STEPS[exp])
    self.window = max(1, steps // 9) if quick else WINDOW

  def final(self, variant, key="train_loss"):
    """{seed: MA over the last window steps} (a diverged run counts as
    :data:`DIVERGED_LOSS`, finite so that intervals stay defined)."""
    out = {}
    for s, (records, meta) in self.runs[variant].items():
      if meta.get("diverged"):
        out[s] = DIVERGED_LOSS
        continue
      out[s] = fr.window_mean(records, key, records[-1]["step"], self.window)
    return out

  def log_final(self, variant):
    return {s: math.log(v) for s, v in self.final(variant).items()}

  def early(self, variant):
    """{seed: log mean loss over the first tenth of training}."""
    out = {}
    for s, (records, _) in self.runs[variant].items():
      # a tenth of the steps, at least three logged records
      tenth = max(records[-1]["step"] / 10, 3 * records[0]["step"])
      out[s] = math.log(fr.window_mean(records, "train_loss", tenth, tenth))
    return out

  def test_metric(self, variant):
    key = "test_loss" if self.exp == "exp2" else "test_accuracy"
    return {s: r[-1].get(key) for s, (r, m) in self.runs[variant].items()
            if not m.get("diverged")}

  def meta(self, variant, key):
    return {s: m.get(key) for s, (_, m) in self.runs[variant].items()}

  def missing(self, variants, seeds=None) -> str:
    names = [f"runs/{run_name(self.exp, v, s)}" for v in variants
             for s in (seeds or self.seeds) if s not in self.runs[v]]
    return ("missing: " + ", ".join(names) + f" (searched {self.runs_dir}; "
            "train with python experiments/reproduce_kreis_fmnist.py "
            "--train-missing)") if names else ""

  def complete_seeds(self, variants):
    return [s for s in self.seeds if all(s in self.runs[v] for v in variants)]

  def best_of(self, variants, worst=False):
    """{seed: min (or max) over ``variants`` of the log final loss}."""
    pick = max if worst else min
    logs = {v: self.log_final(v) for v in variants}
    return {s: pick(logs[v][s] for v in variants)
            for s in self.complete_seeds(variants)}

  def summary(self):
    out = {}
    for v in VARIANTS[self.exp]:
      if self.runs[v]:
        out[v] = {
            "seeds": sorted(self.runs[v]),
            "learning_rate": self.meta(v, "learning_rate"),
            "final_ma_loss_mean": float(np.mean(list(self.final(v).values()))),
            "final_test_mean": _mean(self.test_metric(v).values()),
            "ms_per_step_mean": _mean(self.meta(v, "ms_per_step").values()),
            "wall_seconds": self.meta(v, "wall_seconds"),
            "diverged": {s: d for s, d in self.meta(v, "diverged").items()
                         if d}}
    return out


def _mean(values):
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None
