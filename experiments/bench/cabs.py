"""CABS in the engine: compilations per run and time per example vs
fixed-batch SGD at the same batch size (target ≤ 1.2×).

1. A CABS run (cabs_sgd + the CABS hook, capture of layer statistics), 300
   steps on digits from m = 16: compilations (at most one per bucket), the
   final batch size m, and the run's µs/example after compilation ("run",
   for information: it includes the ramp-up at small and bucket-padded
   batches, so it is not a same-batch-size figure).
2. Time per example at the SAME batch size m: trainers for SGD, CABS
   (``lag=0``, Algorithm 1: step k+1's size from step k's statistics, so the
   host waits for every step) and CABS with the one-step-lag read (``lag=1``)
   at ``m_min = m_max = m`` (the hook does all its per-step work: device→host
   read, EMAs, decision) run ``ROUNDS`` short fits each, interleaved, so that
   the varying load of a shared machine hits all three alike. A clock hook
   blocks only every ``BLOCK`` steps (after ``SKIP`` warm-up steps), so
   dispatch stays asynchronous within a block as in a normal run. Ratio: of
   the fastest blocks; the ratio of the median blocks is printed too.

    python experiments/bench/cabs.py
"""

from __future__ import annotations

import os
import sys
import time

import jax
import optax

sys.path.insert(0, os.path.dirname(__file__))
from _timing import table  # pylint: disable=wrong-import-position

from nnopt import losses  # pylint: disable=wrong-import-position
from nnopt.noise_aware.cabs import CABS  # pylint: disable=wrong-import-position
from nnopt.data import load_dataset  # pylint: disable=wrong-import-position
from nnopt.models import VGG  # pylint: disable=wrong-import-position
from nnopt.stats.needs import Needs  # pylint: disable=wrong-import-position
from nnopt.engine.trainer import Hook, Trainer  # pylint: disable=wrong-import-position
from nnopt.noise_aware.batch_variance import cabs_sgd  # pylint: disable=wrong-import-position

STEPS, ROUNDS, FIT_STEPS, SKIP, BLOCK = 300, 6, 33, 3, 10


class _Clock(Hook):
  """Wall time and examples of blocks of ``block`` steps at one batch size.

  Goes after the batch-size hook (which sets the NEXT step's size in its
  ``on_step``). Blocks on the state ``skip`` steps into a segment of one
  batch size and then every ``block`` steps; a block never spans two sizes.
  """

  def __init__(self, num_steps: int, skip: int = SKIP, block: int = BLOCK):
    self.num_steps, self.skip, self.block = num_steps, skip, block
    self.blocks = []  # (batch size, padded size, steps, examples, seconds)

  def on_start(self, run):
    self._size = (run.sampler.batch_size, run.sampler.padded_size)
    self._count, self._t0 = 0, None

  def _mark(self, run):
    jax.block_until_ready(run.state)
    now, seen = time.perf_counter(), run.sampler.examples_seen
    if self._t0 is not None and self._count > self._c0:
      self.blocks.append((*self._size, self._count - self._c0,
                          seen - self._seen0, now - self._t0))
    self._t0, self._seen0, self._c0 = now, seen, self._count

  def on_step(self, run, metrics):
    self._count += 1
    size = (run.sampler.batch_size, run.sampler.padded_size)
    end = size != self._size or run.step >= self.num_steps
    if self._count == self.skip or (
        self._count > self.skip and
        (end or (self._count - self.skip) % self.block == 0)):
      self._mark(run)
    if end:
      self._size, self._count, self._t0 = size, 0, None

  def run_per_example(self) -> float:
    """Seconds per example over all blocks (every batch size)."""
    return sum(b[4] for b in self.blocks) / max(
        sum(b[3] for b in self.blocks), 1)

  def per_example(self, batch_size: int) -> tuple[float, float, int]:
    """``(min, median)`` seconds per example over full blocks at
    ``batch_size`` (unpadded), and their number."""
    per = sorted(b[4] / b[3] for b in self.blocks
                 if b[0] == batch_size == b[1] and b[2] == self.block)
    return per[0], per[len(per) // 2], len(per)


def _trainer(model, data, opt, batch_size, buckets, hooks, capture,
             steps=STEPS):
  return Trainer(model, losses.softmax_cross_entropy, opt, data,
                 batch_size=batch_size, num_steps=steps, needs=capture,
                 buckets=buckets, hooks=hooks, log_every=50, progress=False)


def main():
  data = load_dataset("digits")
  model = VGG(stages=((16,), (32,)), fc=(64,), n_classes=10)
  m_max = 512
  hook = CABS(0.1, m_min=16, m_max=m_max, c=20.0)
  buckets = hook.buckets()
  clock = _Clock(STEPS)
  run = _trainer(model, data, cabs_sgd(0.1), 16, buckets, [hook, clock],
                 Needs(stats=True))
  run.fit()
  final = run.history[-1]["cabs_batch_size"]

  fixed = {"SGD": ([], optax.sgd(0.1), Needs())}
  for lag in (0, 1):
    fixed[f"CABS lag={lag}"] = (
        [CABS(0.1, m_min=final, m_max=final, c=20.0, lag=lag)],
        cabs_sgd(0.1), Needs(stats=True))
  trainers = {}
  for name, (hooks, opt, spec) in fixed.items():
    clk = _Clock(FIT_STEPS)
    trainers[name] = (_trainer(model, data, opt, final, buckets,
                               hooks + [clk], spec, FIT_STEPS), clk)
  for _ in range(ROUNDS):
    for trainer, _ in trainers.values():
      trainer.fit()
  s_min, s_med, _ = trainers["SGD"][1].per_example(final)
  rows = []
  for name, (trainer, clk) in trainers.items():
    c_min, c_med, blocks = clk.per_example(final)
    label = name + (" (Alg. 1)" if name.endswith("0") else "")
    rows.append([label, f"{final}", f"{blocks}", f"{c_min * 1e6:.1f}",
                 f"{c_med * 1e6:.1f}", f"{c_min / s_min:.2f}",
                 f"{c_med / s_med:.2f}", f"{trainer.num_compilations}"])
  print(f"CABS run: {STEPS} steps, {run.num_compilations} compilations, "
        f"{len(buckets)} buckets, final m = {final}, "
        f"{clock.run_per_example() * 1e6:.1f} µs/example over the run")
  print(table(rows, ["at m", "m", "blocks", "µs/ex (min)", "µs/ex (median)",
                     "ratio (<=1.2)", "median ratio", "compilations"]))


if __name__ == "__main__":
  main()
