"""CABS in the engine: compilations per run and time per example vs
fixed-batch SGD at the same batch size (target ≤ 1.2×).

CABS (cabs_sgd + the CABS hook, capture of layer statistics) runs a full
run on digits; then plain SGD runs at the batch size CABS ended with, with
the same buckets. Time per example excludes compilation (the first steps of
each bucket are timed separately and subtracted via a warm-up run).

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
from nnopt.cabs import CABS  # pylint: disable=wrong-import-position
from nnopt.data import load_dataset  # pylint: disable=wrong-import-position
from nnopt.models import VGG  # pylint: disable=wrong-import-position
from nnopt.step import CaptureSpec  # pylint: disable=wrong-import-position
from nnopt.train import Hook, Trainer  # pylint: disable=wrong-import-position
from nnopt.transforms.batch_variance import cabs_sgd  # pylint: disable=wrong-import-position


class _Clock(Hook):
  """Examples and seconds after the first ``skip`` steps of each batch size."""

  def __init__(self, skip=3):
    self.skip, self.seen, self.count = skip, {}, 0
    self.examples, self.seconds, self.t = 0, 0.0, None

  def on_step(self, run, metrics):
    jax.block_until_ready(run.state)
    now = time.perf_counter()
    size = run.sampler.padded_size
    self.seen[size] = self.seen.get(size, 0) + 1
    if self.t is not None and self.seen[size] > self.skip:
      self.seconds += now - self.t
      self.examples += self.last
    self.last = run.sampler.batch_size
    self.t = time.perf_counter()


def main():
  data = load_dataset("digits")
  model = VGG(stages=((16,), (32,)), fc=(64,), n_classes=10)
  hook = CABS(0.1, m_min=16, m_max=512, c=20.0)
  clock = _Clock()
  buckets = hook.buckets()
  cabs = Trainer(model, losses.softmax_cross_entropy, cabs_sgd(0.1), data,
                 batch_size=16, num_steps=300, capture=CaptureSpec(stats=True),
                 buckets=buckets, hooks=[hook, clock], log_every=50,
                 progress=False)
  cabs.fit()
  final = cabs.history[-1]["cabs_batch_size"]
  sgd_clock = _Clock()
  sgd = Trainer(model, losses.softmax_cross_entropy, optax.sgd(0.1), data,
                batch_size=final, num_steps=300, buckets=buckets,
                hooks=[sgd_clock], log_every=50, progress=False)
  sgd.fit()
  per_ex_cabs = cabs_ms = clock.seconds / max(clock.examples, 1)
  per_ex_sgd = sgd_clock.seconds / max(sgd_clock.examples, 1)
  del cabs_ms
  print(table([[f"{cabs.num_compilations}", f"{len(buckets)}", f"{final}",
                f"{per_ex_cabs * 1e6:.1f}", f"{per_ex_sgd * 1e6:.1f}",
                f"{per_ex_cabs / per_ex_sgd:.2f}"]],
              ["CABS compilations", "buckets", "final m", "CABS µs/example",
               "SGD µs/example", "ratio (<=1.2)"]))


if __name__ == "__main__":
  main()
