"""MLSGD CIFAR-10 tables: one engine run of a config variant (fine-model
accuracy curves, wall times), where CIFAR-10 and the seeds come from, and
the times at which a curve reaches an accuracy."""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from nnopt import config as C
from nnopt.data import EpochSampler
from nnopt.data.image_sources import locate
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


def train_variant(config, variant: str, seed: int, quick: bool, datasets):
  """One engine run of a config variant; its curves and final numbers."""
  cycle = sum(_plain(config.variants["mlsgd_const"])["hooks"][0]["options"]
              ["epochs"])
  overrides = [f"train.seed={seed}"]
  if quick:
    overrides += smoke_overrides(config, variant, cycle)
  spec = C.resolve(config, variant, quick=quick, overrides=overrides)
  key = spec["dataset"]["name"]
  experiment = C.build(spec, dataset=datasets.get(key))
  datasets[key] = ds = experiment.dataset
  hooks = [h for h in experiment.hooks if isinstance(h, MLSGDHook)]
  evaluate = make_evaluate(experiment.model, ds)
  extra = {}
  if hooks:
    hooks[0].evaluate = evaluate
  else:  # SGD: the engine evaluates after every epoch
    extra = dict(eval_every=EpochSampler(len(ds.x_train),
                                         spec["train"]["batch_size"]
                                         ).steps_per_epoch, eval_train=True)
  trainer = experiment.trainer(progress=sys.stderr.isatty(), **extra)
  run = trainer.fit()
  prefix = "fine_" if hooks else ""
  curve = [(r["wall_time"], r[f"{prefix}test_accuracy"],
            r[f"{prefix}train_accuracy"]) for r in trainer.history
           if f"{prefix}test_accuracy" in r]
  finite = all(bool(np.all(np.isfinite(v)))
               for v in jax.tree.leaves(run.params))
  return dict(curve=curve, time=trainer.history[-1]["wall_time"],
              test=curve[-1][1] if curve else float("nan"),
              train=curve[-1][2] if curve else float("nan"), finite=finite,
              level_epochs=list(hooks[0].level_epochs) if hooks else None,
              expected_epochs=(list(hooks[0].epochs) if hooks else None))


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
