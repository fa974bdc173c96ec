"""MLSGD cost benchmark on the engine: V-cycle overhead, MLSGD vs SGD,
gradient-correction cost.

Runs in one process on scikit-learn's digits with a small ODE-ResNet depth
hierarchy (3 levels, 4/2/1 residual layers per block), all through
``nnopt.engine.trainer.Trainer`` (MLSGD: :class:`nnopt.multilevel.MLSGDHook`),
and prints ratios measured after the first cycle (so that every level's step
is compiled):

* overhead share of a V-cycle (level switches, transfers, gate and
  correction set-up, host work) = 1 − Σ_l e_l t_l / (cycle time), with e_l the
  level-l epochs and t_l the measured plain-SGD epoch time of the level-l
  model through the same engine;
* time per fine-epoch equivalent of MLSGD vs SGD, where a level-l epoch
  counts t_l / t_L;
* time per V-cycle of each gradient-correction variant relative to none (the
  thesis measured 1.3–1.95× on CPU).

    python experiments/bench/multilevel.py [--cycles 3]
"""

from __future__ import annotations

import argparse

import jax
import optax

from nnopt.data import load_dataset
from nnopt.engine.trainer import Trainer
from nnopt.losses import softmax_cross_entropy
from nnopt.models.odenet import ODEResNet
from nnopt.multilevel import MLSGDHook, depth_transfer

BATCH, EPOCHS = 50, (3, 2, 1)


def timed_fit(model, ds, hooks, *, num_epochs, params):
  """The trainer's history after a fit (``wall_time`` per step record)."""
  trainer = Trainer(model, softmax_cross_entropy, optax.sgd(0.05), ds,
                    batch_size=BATCH, num_epochs=num_epochs, hooks=hooks,
                    params=params, model_state={}, progress=False,
                    log_every=1)
  trainer.fit()
  return trainer.history


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cycles", type=int, default=3)
  args = parser.parse_args()
  ds = load_dataset("digits")
  models = [ODEResNet(channels=(8, 8, 8), layers_per_block=n, h=4 / n,
                      connect_norm="tv") for n in (1, 2, 4)]
  x0 = ds.x_train[:1]
  params = [m.init(jax.random.key(0), x0)["params"] for m in models]

  # per-level plain SGD epoch time (the cost unit of each level), epochs 2-4
  level_epoch = []
  for l, model in enumerate(models):
    hist = timed_fit(model, ds, [], num_epochs=4, params=params[l])
    per_epoch = len(hist) // 4
    level_epoch.append((hist[-1]["wall_time"] - hist[per_epoch - 1]
                        ["wall_time"]) / 3)

  rows, times = [], {}
  for variant in ("none", "det", "det_vr", "stoch", "stoch_vr"):
    hook = MLSGDHook(models, [depth_transfer()] * 2, EPOCHS, lr=0.01,
                     loss=softmax_cross_entropy, dataset=ds, variant=variant,
                     first_cycle_no_gc=False, n_cycles=args.cycles + 1)
    hist = timed_fit(models[-1], ds, [hook], num_epochs=10 ** 6,
                     params=params[-1])
    # time from the start of cycle 2 (all levels compiled) to the end
    start = hook.switches[len(models)][0]
    total = hist[-1]["wall_time"] - hist[start - 1]["wall_time"]
    cycles = args.cycles
    inside = cycles * sum(e * t for e, t in zip(EPOCHS, level_epoch))
    equivalents = cycles * sum(e * t / level_epoch[-1]
                               for e, t in zip(EPOCHS, level_epoch))
    times[variant] = total / cycles
    rows.append((variant, total / cycles, 1 - inside / total,
                 total / equivalents / level_epoch[-1]))
  print(f"device: {jax.devices()[0].device_kind}; level SGD epoch times (s): "
        + ", ".join(f"{t:.3f}" for t in level_epoch))
  print(f"{'variant':10s} {'s/cycle':>9s} {'overhead':>9s} "
        f"{'MLSGD/SGD per fine-epoch-eq':>28s} {'cycle time / none':>18s}")
  for variant, per_cycle, overhead, ratio in rows:
    print(f"{variant:10s} {per_cycle:9.3f} {overhead:9.1%} {ratio:28.2f} "
          f"{per_cycle / times['none']:18.2f}")


if __name__ == "__main__":
  main()
