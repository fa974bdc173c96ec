"""Steps per second of the nnopt engine vs a minimal hand-written loop.

Both loops train the same model with the same optax optimizer on the same
batches in this process; the peer is the loop a flax/optax user writes by
hand (jitted value_and_grad + optax update, batches gathered from numpy).
The engine runs its full loop (sampler, sharding over a device mesh, metrics,
non-finite guard), timed after compilation. Printed: the ratio
engine steps/s ÷ hand-written steps/s (target ≥ 0.95), median of repeats.

    python experiments/bench/engine.py [--steps 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt import losses
from nnopt.data import Dataset, load_dataset
from nnopt.models import FNN, VGG, init_params
from nnopt.engine.trainer import Trainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import StepTimer  # pylint: disable=wrong-import-position


def engine_steps_per_second(model, dataset, batch_size, steps, warmup):
  timer = StepTimer(warmup, warmup + steps)
  # Metrics are fetched every 100 steps, as in a real run.
  trainer = Trainer(model, losses.softmax_cross_entropy, optax.sgd(0.01, 0.9),
                    dataset, batch_size=batch_size, num_steps=warmup + steps,
                    hooks=[timer], log_every=100, progress=False)
  trainer.fit()
  return steps / timer.seconds


def handwritten_steps_per_second(model, dataset, batch_size, steps, warmup):
  optimizer = optax.sgd(0.01, 0.9)
  x_all, y_all = dataset.x_train, dataset.y_train
  params = init_params(model, jax.random.key(0), x_all[:1])
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(0)
  perm = rng.permutation(len(x_all))
  per_epoch = len(x_all) // batch_size
  start = None
  for i in range(warmup + steps):
    if i == warmup:
      jax.block_until_ready(params)
      start = time.perf_counter()
    j = i % per_epoch
    if j == 0:
      perm = rng.permutation(len(x_all))
    idx = perm[j * batch_size:(j + 1) * batch_size]
    params, opt_state, loss = step(params, opt_state, x_all[idx], y_all[idx])
  jax.block_until_ready(params)
  return steps / (time.perf_counter() - start)


def random_images(n: int = 2048, seed: int = 0) -> Dataset:
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 32, 32, 3)).astype(np.float32)
  y = rng.integers(0, 10, n).astype(np.int32)
  return Dataset(x, y, x[:256], y[:256], name="random32", num_classes=10)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--cnn-steps", type=int, default=15)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  cases = [
      ("MLP 64-256-256-10, digits, B=128", FNN((256, 256, 10)),
       load_dataset("digits", flatten=True), 128, args.steps),
      ("VGG (64,128,256)+FC 500-500, 32x32, B=128", VGG(), random_images(),
       128, args.cnn_steps),
  ]
  print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}")
  print(f"{'case':44s} {'engine it/s':>12s} {'hand it/s':>10s} {'ratio':>7s}")
  for name, model, data, batch, steps in cases:
    ratios, eng, hand = [], [], []
    for _ in range(args.repeats):
      e = engine_steps_per_second(model, data, batch, steps, warmup=3)
      h = handwritten_steps_per_second(model, data, batch, steps, warmup=3)
      eng.append(e), hand.append(h), ratios.append(e / h)
    print(f"{name:44s} {statistics.median(eng):12.1f} "
          f"{statistics.median(hand):10.1f} {statistics.median(ratios):7.3f}")
  print("ratio = engine steps/s / hand-written steps/s (target >= 0.95)")


if __name__ == "__main__":
  main()
