"""Balles P1 (2c2d, Fashion-MNIST shapes, batch 64): nnopt vs a plain step.

In one process, interleaved (so a shared machine's load hits all alike):

* ``plain``: a hand-written jitted flax + optax step of the same network
  (``nn.Conv``, ``nn.Dense``, ``nn.max_pool``; ``value_and_grad`` of the mean
  cross-entropy, ``opt.update``, ``apply_updates``): the reference;
* ``plain+pool``: the same with :func:`nnopt.models.pooling.max_pool`, the
  max-pool with the cheap CPU derivative that nnopt's ``ConvPoolNet`` uses;
* ``engine step``: the engine's jitted step (``Trainer.step_fn``) for the P1
  config's variant, on the same batch;
* ``engine loop``: ``Trainer.fit`` per step after warm-up (host sampling,
  gather, transfer and logging included), from its metrics' wall times.

The plain steps use the variant's own optax transformation (its declared
needs aside: M-SVAG-mb's per-example statistics exist only in the engine, so
its plain reference is M-SVAG's step). Ratios are nnopt/plain; quote those,
not the milliseconds, which depend on the machine's load.

    python experiments/bench/p1_step.py [--variants msgd msvag] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import flax.linen as nn
import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(__file__))
from _timing import table, time_calls  # pylint: disable=wrong-import-position

from nnopt import config as C  # pylint: disable=wrong-import-position
from nnopt import data as nd  # pylint: disable=wrong-import-position
from nnopt.engine.step import metric_names  # pylint: disable=wrong-import-position
from nnopt.models.pooling import max_pool  # pylint: disable=wrong-import-position

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                      "balles_p1_fmnist.py")
BATCH = 64


class PlainNet(nn.Module):
  """The P1 network from flax's own layers (spec §4.7)."""

  pool: str = "nn"

  @nn.compact
  def __call__(self, x):
    pool = nn.max_pool if self.pool == "nn" else max_pool
    for features in (32, 64):
      x = nn.relu(nn.Conv(features, (5, 5), padding="SAME")(x))
      x = pool(x, (3, 3), strides=(2, 2), padding="SAME")
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(1024)(x))
    return nn.Dense(10)(x)


def plain_step(net, optimizer):
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = net.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return jax.jit(step)


def dataset():
  try:
    ds = nd.load_dataset("fashion_mnist", normalize=True, max_test=BATCH)
    return ds, "real Fashion-MNIST"
  except nd.MissingDataError:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 28, 28, 1)).astype(np.float32)
    y = (np.arange(6000) % 10).astype(np.int32)
    return nd.Dataset(x, y, x[:BATCH], y[:BATCH], "fashion_mnist", 10), (
        "random data of Fashion-MNIST's shapes")


def loop_ms(experiment, warmup: int, steps: int) -> float:
  trainer = experiment.trainer(progress=False, num_steps=warmup + steps,
                               log_every=warmup, eval_every=None,
                               eval_train=False)
  trainer.fit()
  times = [r["wall_time"] for r in trainer.history]
  return 1e3 * (times[-1] - times[0]) / steps


def bench_variant(name, cfg, ds, x, y, args):
  experiment = C.build(C.resolve(cfg, name), dataset=ds)
  trainer = experiment.trainer(progress=False, num_steps=1, eval_every=None)
  run = trainer._initial_run()  # pylint: disable=protected-access
  engine = trainer.step_fn(run)
  indices, mask = run.sampler.next_batch()
  batch = trainer._batch(run, ds.x_train, ds.y_train, indices, mask)  # pylint: disable=protected-access
  sums = {k: np.float32(0) for k in (*metric_names(trainer.loss), "count")}

  optimizer = experiment.optimizer
  if name == "msvag_mb":
    optimizer = C.build(C.resolve(cfg, "msvag"), dataset=ds).optimizer
  calls = {"engine step": lambda: engine(run.state, batch, sums)}
  for label, pool in (("plain", "nn"), ("plain+pool", "nnopt")):
    net = PlainNet(pool)
    params = net.init(jax.random.key(0), x)["params"]
    step = plain_step(net, optimizer)
    opt_state = optimizer.init(params)
    calls[label] = (lambda step=step, params=params, opt_state=opt_state:
                    step(params, opt_state, x, y))
  times = time_calls({k: (lambda f=f: f()) for k, f in calls.items()},
                     repeats=args.repeats, number=args.number)
  times = {k: 1e3 * v for k, v in times.items()}
  loops = [loop_ms(experiment, args.warmup, args.steps)
           for _ in range(args.loops)]
  times["engine loop"] = statistics.median(loops)
  return times


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variants", nargs="*",
                      default=["msgd", "adam", "msign_sgd", "msvag",
                               "msvag_mb"])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--number", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=10)
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--loops", type=int, default=1)
  args = parser.parse_args(argv)

  _, cfg = C.load_config_file(CONFIG)
  ds, what = dataset()
  x = jax.numpy.asarray(ds.x_train[:BATCH])
  y = jax.numpy.asarray(ds.y_train[:BATCH])
  print(f"P1 2c2d, batch {BATCH}, {what}, {jax.device_count()} "
        f"{jax.default_backend()} device(s)")
  rows = []
  for name in args.variants:
    t = bench_variant(name, cfg, ds, x, y, args)
    rows.append([name, f"{t['plain']:.1f}", f"{t['plain+pool']:.1f}",
                 f"{t['engine step']:.1f}", f"{t['engine loop']:.1f}",
                 f"{t['plain+pool'] / t['plain']:.2f}",
                 f"{t['engine step'] / t['plain']:.2f}",
                 f"{t['engine loop'] / t['plain']:.2f}",
                 f"{t['engine loop'] / t['plain+pool']:.2f}"])
    print(rows[-1], flush=True)
  print(table(rows, ["variant", "plain ms", "plain+pool ms", "step ms",
                     "loop ms", "plain+pool/plain", "step/plain",
                     "loop/plain", "loop/plain+pool"]))


if __name__ == "__main__":
  main()
