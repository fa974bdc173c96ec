"""M-SVAG vs optax.adam: optimizer update alone and a full train step, on an
MLP and a CNN, in one process (target: ratio ≤ 1.10).

    python experiments/bench/noise_aware.py
"""

from __future__ import annotations

import os
import sys

import functools

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(__file__))
from _timing import table, time_calls  # pylint: disable=wrong-import-position

from nnopt import losses  # pylint: disable=wrong-import-position
from nnopt.models import FNN, VGG, init_params  # pylint: disable=wrong-import-position
from nnopt.noise_aware import msvag  # pylint: disable=wrong-import-position


def problems():
  key = jax.random.key(0)
  yield ("MLP 784-512-512-10, B=128", FNN((512, 512, 10), activation="relu"),
         jax.random.normal(key, (128, 784)))
  yield ("CNN VGG(32,64)+FC128, 32x32x3, B=64",
         VGG(stages=((32,), (64,)), fc=(128,), n_classes=10),
         jax.random.normal(key, (64, 32, 32, 3)))


def main():
  rows = []
  for name, model, x in problems():
    y = jax.random.randint(jax.random.key(1), (x.shape[0],), 0, 10)
    params = init_params(model, jax.random.key(2), x)
    grads = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
    calls = {}
    for opt_name, opt in (("msvag", msvag(0.1)), ("adam", optax.adam(1e-3))):
      state = opt.init(params)
      update = jax.jit(lambda g, s, p, opt=opt: opt.update(g, s, p))

      def train_step(p, s, opt=opt):
        loss, g = jax.value_and_grad(
            lambda p: losses.softmax_cross_entropy(model.apply({"params": p}, x), y))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

      step = jax.jit(train_step)
      calls[(opt_name, "update")] = functools.partial(update, grads, state,
                                                      params)
      calls[(opt_name, "step")] = functools.partial(step, params, state)
    # Interleaved, so that the machine's varying load hits both alike.
    times = time_calls(calls)
    for what in ("update", "step"):
      ratio = times[("msvag", what)] / times[("adam", what)]
      rows.append([name, what, f"{times[('msvag', what)] * 1e3:.3f}",
                   f"{times[('adam', what)] * 1e3:.3f}", f"{ratio:.2f}",
                   "yes" if ratio <= 1.10 else "no"])
  print(table(rows, ["problem", "timed", "msvag ms", "adam ms",
                     "msvag/adam", "<= 1.10"]))


if __name__ == "__main__":
  main()
