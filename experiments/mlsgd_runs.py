"""MLSGD CIFAR-10 tables: the seeds of a config variant as engine runs, one
at a time or together on the runs axis (fine-model accuracy curves, wall
times), where CIFAR-10 and the seeds come from, and the times at which a
curve reaches an accuracy."""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from nnopt import config as C
from nnopt.data import EpochSampler
from nnopt.data.image_sources import locate
from nnopt.engine.runs import RunSpec, RunsTrainer
from nnopt.losses import accuracy
from nnopt.multilevel import MLSGDHook


def cifar_missing() -> str | None:
  """None when CIFAR-10 is found, else the NOT RUN reason with the places
  searched."""
  found, notes = locate("cifar10")
  if found is not None:
    return None
  return ("CIFAR-10 not found (nnopt never downloads); searched: "
          + "; ".join(notes) + ". Provide it with `tfds build cifar10 "
          "--data_dir DIR` and set TFDS_DATA_DIR=DIR")


def seeds_from_env(quick: bool) -> tuple[int, ...]:
  if quick:
    return (0,)
  return tuple(int(s) for s in os.environ.get("MLSGD_SEEDS", "0,1,2").split(","))


# -- CIFAR-10 tables: runs ------------------------------------------------------


def make_evaluate(model, dataset, chunk: int = 1000):
  """Fine params → train and test accuracy (the thesis's curves)."""
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))

  def acc(params, x, y):
    hits = sum(float(accuracy(apply(params, x[i:i + chunk]), y[i:i + chunk]))
               * len(x[i:i + chunk]) for i in range(0, len(x), chunk))
    return hits / len(x)

  def evaluate(params):
    return {"test_accuracy": acc(params, dataset.x_test, dataset.y_test),
            "train_accuracy": acc(params, dataset.x_train, dataset.y_train)}
  return evaluate


def _plain(value):
  if hasattr(value, "to_dict"):
    return value.to_dict()
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return value


def smoke_overrides(config, variant: str, cycle_epochs: int) -> list[str]:
  """One V-cycle (MLSGD) or the epochs of one cycle (SGD): --set overrides."""
  hooks = _plain(config.variants[variant]).get("hooks")
  if not hooks:
    return [f"train.num_epochs={cycle_epochs}"]
  hooks = [dict(h, options=dict(h["options"], n_cycles=1)) for h in hooks]
  return [f"variants.{variant}.hooks={hooks!r}"]


def runs_axis_from_env(quick: bool) -> bool:
  """Whether the seeds of a variant train together on the runs axis.

  ``$MLSGD_RUNS_AXIS`` (``1``/``0``); by default the full-size tables train
  one engine run per seed, because their time claims (time to 80/84/85 %,
  curves over time, GC/no-GC time ratios) read each run's own wall time, as
  the thesis's single runs do; ``--quick`` (no time claims) uses the runs
  axis.
  """
  value = os.environ.get("MLSGD_RUNS_AXIS")
  if value is None:
    return quick
  return value.strip().lower() not in ("", "0", "false", "no")


def wall_time_note(runs_axis: bool, seeds) -> str:
  """What ``wall_time`` means in the curves (appended to the time claims)."""
  if not runs_axis:
    return ""
  return (f" [wall time on the runs axis: the {len(seeds)} seeds of a variant "
          "train together as one program, so a record's time is the time "
          "since that program started, spent on all of them]")


def _resolved(config, variant: str, seed: int, quick: bool, datasets):
  cycle = sum(_plain(config.variants["mlsgd_const"])["hooks"][0]["options"]
              ["epochs"])
  overrides = [f"train.seed={seed}"]
  if quick:
    overrides += smoke_overrides(config, variant, cycle)
  spec = C.resolve(config, variant, quick=quick, overrides=overrides)
  key = spec["dataset"]["name"]
  experiment = C.build(spec, dataset=datasets.get(key))
  datasets[key] = ds = experiment.dataset
  extra = {}
  if not any(isinstance(h, MLSGDHook) for h in experiment.hooks):
    # SGD: the engine evaluates after every epoch
    extra = dict(eval_every=EpochSampler(len(ds.x_train),
                                         spec["train"]["batch_size"]
                                         ).steps_per_epoch, eval_train=True)
  return experiment, make_evaluate(experiment.model, ds), extra


def _mlsgd_hooks(hooks, evaluate=None) -> list:
  """The MLSGD hooks of ``hooks``; the first evaluates the fine model with
  ``evaluate`` after every fine-level epoch (when given)."""
  hooks = [h for h in hooks if isinstance(h, MLSGDHook)]
  if hooks and evaluate is not None:
    hooks[0].evaluate = evaluate
  return hooks


def _result(history, params, hooks) -> dict:
  """A run's curves (wall time, test and train accuracy of the fine model)
  and final numbers."""
  prefix = "fine_" if hooks else ""
  curve = [(r["wall_time"], r[f"{prefix}test_accuracy"],
            r[f"{prefix}train_accuracy"]) for r in history
           if f"{prefix}test_accuracy" in r]
  finite = all(bool(np.all(np.isfinite(v)))
               for v in jax.tree.leaves(params))
  return dict(curve=curve, time=history[-1]["wall_time"],
              test=curve[-1][1] if curve else float("nan"),
              train=curve[-1][2] if curve else float("nan"), finite=finite,
              level_epochs=list(hooks[0].level_epochs) if hooks else None,
              expected_epochs=(list(hooks[0].epochs) if hooks else None))


def train_variant(config, variant: str, seeds, quick: bool, datasets, *,
                  runs_axis: bool = False) -> dict[int, dict]:
  """``{seed: curves and final numbers}`` of a config variant.

  ``runs_axis=False``: one engine run (:class:`~nnopt.engine.trainer.Trainer`)
  per seed, one after the other; ``wall_time`` is that run's own time.
  ``runs_axis=True``: every seed as one :class:`~nnopt.engine.runs.
  RunsTrainer` (one program per MLSGD level, the seeds batched);
  ``wall_time`` is then the time since the shared program started, spent on
  all the seeds together (:func:`wall_time_note`). A batched run is its run
  alone up to the round-off of the batched convolutions; the digits
  stand-in ODE-ResNet of ``--quick`` grows a 1e-7 relative change of its
  weights to 0.09 in 6 SGD steps and to O(1) in 15 (measured: one engine
  run against itself), so its batched seeds leave their runs alone after a
  few steps, as any change of summation order would make them (measured: 7e-7
  after 1 step, 0.09 after 6). A group of one run steps the engine's step.
  """
  progress = sys.stderr.isatty()
  if not runs_axis:
    out = {}
    for seed in seeds:
      experiment, evaluate, extra = _resolved(config, variant, seed, quick,
                                              datasets)
      hooks = _mlsgd_hooks(experiment.hooks, evaluate)
      trainer = experiment.trainer(progress=progress, **extra)
      run = trainer.fit()
      out[seed] = _result(trainer.history, run.params, hooks)
    return out
  experiment, evaluate, extra = _resolved(config, variant, seeds[0], quick,
                                          datasets)
  kwargs = {**experiment.trainer_kwargs, **extra}
  kwargs.pop("seed")

  def hooks_for(spec):
    hooks = experiment.hooks_for(spec.seed)
    _mlsgd_hooks(hooks, evaluate)
    return hooks

  trainer = RunsTrainer(experiment.model, experiment.loss,
                        experiment.optimizer, experiment.dataset,
                        runs=[RunSpec(seed=s, name=f"s{s}") for s in seeds],
                        hooks=hooks_for, augment=experiment.augment,
                        progress=progress, **kwargs)
  return {slot.spec.seed: _result(slot.history, slot.params,
                                  _mlsgd_hooks(slot.hooks))
          for slot in trainer.fit()}


def time_to(curve, threshold):
  """First evaluation time with accuracy ≥ threshold (None: never)."""
  return next((t for t, acc, _ in curve if acc >= threshold), None)


def above_everywhere(a_curve, b_curve) -> bool:
  """A's accuracy ≥ B's latest accuracy at every A evaluation after B's
  first one (the curves of Fig 4.3 over time)."""
  ok = True
  for t, acc, _ in a_curve:
    earlier = [b for tb, b, _ in b_curve if tb <= t]
    if earlier:
      ok &= acc >= earlier[-1]
  return bool(ok)
