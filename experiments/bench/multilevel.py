"""MLSGD cost benchmark: V-cycle overhead, MLSGD vs SGD, gradient-correction cost.

Runs in one process on scikit-learn's digits with a small ODE-ResNet depth
hierarchy (3 levels, 4/2/1 residual layers per block) and prints ratios:

* overhead share of a V-cycle (transfers, restriction/prolongation, gate and
  correction set-up, host work) = 1 − (time inside the level epochs) / (cycle
  time), without gradient correction (target ≤ 5 %);
* time per fine-epoch equivalent of MLSGD vs SGD, where a level-l epoch counts
  t_l / t_L with t_l the measured plain-SGD epoch time of the level-l model;
* time per V-cycle of each gradient-correction variant relative to none (the
  thesis measured 1.3–1.95× on CPU).

    python experiments/bench/multilevel.py [--cycles 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from experiments.reproduce_mlsgd import classification_loss, digits  # noqa: E402
from nnopt.models.odenet import ODEResNet  # noqa: E402
from nnopt.multilevel import (LevelProblem, MLSGDConfig, depth_transfer,  # noqa: E402
                              mlsgd, sgd_baseline)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cycles", type=int, default=3)
  args = parser.parse_args()
  x, y, _, _ = digits()
  models = [ODEResNet(channels=(8, 8, 8), layers_per_block=n, h=4 / n,
                      connect_norm="tv") for n in (1, 2, 4)]
  problems = [LevelProblem(classification_loss(m), x, y) for m in models]
  transfers = [depth_transfer(), depth_transfer()]
  p0 = models[-1].init(jax.random.key(0), x[:2])["params"]
  epochs = (3, 2, 1)

  # per-level plain SGD epoch time (the cost unit of each level)
  level_epoch = []
  for l, prob in enumerate(problems):
    params = models[l].init(jax.random.key(0), x[:2])["params"]
    sgd_baseline(prob, params, epochs=1, batch_size=50, lr=0.05)  # compile
    t0 = time.perf_counter()
    sgd_baseline(prob, params, epochs=3, batch_size=50, lr=0.05)
    level_epoch.append((time.perf_counter() - t0) / 3)

  rows, times = [], {}
  for variant in ("none", "det", "det_vr", "stoch", "stoch_vr"):
    cfg = MLSGDConfig(epochs=epochs, n_cycles=args.cycles + 1, batch_size=50,
                      lr=0.01, variant=variant, first_cycle_no_gc=False)
    mlsgd(problems, transfers, p0, MLSGDConfig(
        epochs=epochs, n_cycles=1, batch_size=50, lr=0.01, variant=variant,
        first_cycle_no_gc=False))  # compile every level function
    t0 = time.perf_counter()
    out = mlsgd(problems, transfers, p0, cfg)
    jax.block_until_ready(out.params)
    total = time.perf_counter() - t0
    inside = sum(out.level_time)
    equivalents = sum(e * level_epoch[l] / level_epoch[-1]
                      for l, e in enumerate(out.level_epochs))
    times[variant] = total / cfg.n_cycles
    rows.append((variant, total / cfg.n_cycles, 1 - inside / total,
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
