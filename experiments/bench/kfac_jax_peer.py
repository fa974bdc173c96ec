"""The kfac-jax side of ``experiments/bench/frobenius.py`` (run in its own venv).

kfac-jax 0.0.8 needs jax 0.9 (it fails under jax 0.10), so it cannot share
a process with nnopt. This script times, in one process, a kfac-jax step and
a jitted optax SGD step on the same ReLU MLP 784-100-100-100-10 (random
MNIST-shaped batches) and prints one JSON line:
``{"kfac_ms": …, "sgd_ms": …, "ratio": kfac/sgd, …}``.

kfac-jax settings: fixed learning rate, no momentum, fixed damping λ,
curvature EMA, inverse update period K, Fisher from model samples, no
adaptive lr/momentum/damping, no burn-in.

    /work/kfac_venv/bin/python experiments/bench/kfac_jax_peer.py --period 10
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import kfac_jax
import optax

WIDTHS = (784, 100, 100, 100, 10)


def init_mlp(key):
  params = []
  for i, (m, n) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
    k1, k2, key = jax.random.split(key, 3)
    bound = 1.0 / m ** 0.5
    params.append({"w": jax.random.uniform(k1, (m, n), minval=-bound,
                                           maxval=bound),
                   "b": jax.random.uniform(k2, (n,), minval=-bound,
                                           maxval=bound)})
  return params


def logits_fn(params, x):
  h = x
  for i, layer in enumerate(params):
    h = h @ layer["w"] + layer["b"]
    if i < len(params) - 1:
      h = jax.nn.relu(h)
  return h


def loss_fn(params, batch, register=True):
  x, y = batch
  logits = logits_fn(params, x)
  if register:
    kfac_jax.register_softmax_cross_entropy_loss(logits, y)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def timed(fn, steps):
  fn()  # compile / warm up
  fn()
  start = time.perf_counter()
  for _ in range(steps):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--period", type=int, default=1)
  parser.add_argument("--damping", type=float, default=1e-2)
  parser.add_argument("--ema", type=float, default=0.95)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--steps", type=int, default=50)
  args = parser.parse_args()

  key = jax.random.PRNGKey(0)
  params = init_mlp(key)
  sgd_params = jax.tree.map(jnp.copy, params)  # kfac-jax donates its inputs
  x = jax.random.uniform(jax.random.PRNGKey(1), (args.batch, 784))
  y = jax.random.randint(jax.random.PRNGKey(2), (args.batch,), 0, 10)
  batch = (x, y)

  optimizer = kfac_jax.Optimizer(
      value_and_grad_func=jax.value_and_grad(loss_fn),
      l2_reg=0.0,
      use_adaptive_learning_rate=False,
      learning_rate_schedule=lambda step: args.lr,
      use_adaptive_momentum=False,
      momentum_schedule=lambda step: 0.0,
      use_adaptive_damping=False,
      damping_schedule=lambda step: args.damping,
      curvature_ema=args.ema,
      inverse_update_period=args.period,
      estimation_mode="fisher_gradients",
      num_burnin_steps=0,
      multi_device=False,
  )
  rng = jax.random.PRNGKey(3)
  state = optimizer.init(params, rng, batch)
  holder = {"params": params, "state": state}

  def kfac_step():
    # step donates its inputs: keep the returned ones.
    p, s, _ = optimizer.step(holder["params"], holder["state"], rng,
                             batch=batch, global_step_int=0)
    holder["params"], holder["state"] = p, s
    return p

  steps = max(args.steps, 2 * args.period)
  kfac_s = timed(kfac_step, steps)

  sgd = optax.sgd(args.lr)
  sgd_state = sgd.init(sgd_params)

  @jax.jit
  def sgd_step(params, opt_state):
    grads = jax.grad(lambda p: loss_fn(p, batch, register=False))(params)
    updates, opt_state = sgd.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  sgd_holder = {"p": sgd_params, "s": sgd_state}

  def sgd_run():
    sgd_holder["p"], sgd_holder["s"] = sgd_step(sgd_holder["p"], sgd_holder["s"])
    return sgd_holder["p"]

  sgd_s = timed(sgd_run, steps)
  print(json.dumps({"kfac_ms": 1e3 * kfac_s, "sgd_ms": 1e3 * sgd_s,
                    "ratio": kfac_s / sgd_s, "period": args.period,
                    "damping": args.damping, "jax": jax.__version__,
                    "kfac_jax": getattr(kfac_jax, "__version__", "?")}))


if __name__ == "__main__":
  main()
