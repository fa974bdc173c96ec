"""Step time and memory of the covariance preconditioner vs SGD, and vs kfac-jax.

Part 1 (one process): for the Exp1 MLP (784-100-100-100-10, bs 100), the
Exp2 autoencoder (784-1000-500-250-30-250-500-1000-784, bs 1000) and the VGG
CNN (CIFAR-shaped, stages 64/128/256, fc 500/500, bs 32), the jitted train
step with ``frobenius_sgd`` (Fisher from one model sample, refresh period
K = 1, 10, 100) is timed against a jitted optax SGD step on the same batch.
A window of K steps (at least 3) is timed, so each K row contains exactly one
refresh. Memory = XLA's compiled memory analysis of the step (arguments +
outputs + temporaries).

Part 2 (two processes): nnopt's ``kfac`` and kfac-jax 0.0.8 on the same MLP
with the same inverse period K, damping and curvature EMA. kfac-jax needs jax
0.9 and runs in its own venv (``--kfac-python``, default
/work/kfac_venv/bin/python) via ``experiments/bench/kfac_jax_peer.py``. Each
side is compared to an optax SGD step timed in its own process, and the table
prints the ratio of the two ratios (target ≤ 1.0).

    python experiments/bench/frobenius.py [--models mlp,ae,vgg] [--periods 1,10,100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import optax

from nnopt import losses
from nnopt.stats.capture import capture
from nnopt.models import FNN, VGG, init_params
from nnopt.preconditioning.frobenius import frobenius_sgd
from nnopt.preconditioning.kfac_preset import kfac

MODELS = {
    "mlp": lambda: (FNN((100, 100, 100, 10), "relu"), (100, 784),
                    losses.softmax_cross_entropy, 1e-2),
    "ae": lambda: (FNN((1000, 500, 250, 30, 250, 500, 1000, 784), "sigmoid"),
                   (1000, 784), losses.squared_error, 1e-3),
    "vgg": lambda: (VGG(), (32, 32, 32, 3), losses.softmax_cross_entropy, 1e-2),
}


def make_step(model, loss, optimizer, samples):
  def step(params, opt_state, x, y, key):
    cap = capture(model, params, x, y, loss, fisher_samples=samples, rng=key,
                  with_stats=samples > 0)
    updates, opt_state = optimizer.update(cap.grads, opt_state, params,
                                          stats=cap.stats)
    return optax.apply_updates(params, updates), opt_state, cap.loss
  return jax.jit(step, donate_argnums=(0, 1))


def measure(model, loss, optimizer, x, y, samples, steps):
  params = init_params(model, jax.random.key(0), x[:1])
  opt_state = optimizer.init(params)
  step = make_step(model, loss, optimizer, samples)
  key = jax.random.key(1)
  compiled = step.lower(params, opt_state, x, y, key).compile()
  mem = compiled.memory_analysis()
  mib = None if mem is None else (mem.argument_size_in_bytes
                                  + mem.output_size_in_bytes
                                  + mem.temp_size_in_bytes) / 2**20
  params, opt_state, out = step(params, opt_state, x, y, key)  # count 0 → 1
  # Skip to the next refresh boundary so the window holds exactly one refresh.
  jax.block_until_ready(out)
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state, out = step(params, opt_state, x, y, key)
  jax.block_until_ready((params, out))
  return (time.perf_counter() - start) / steps, mib


def part1(names, periods):
  print("\n## frobenius_sgd vs optax SGD (same process)\n")
  print("| model | K | SGD ms/step | precond ms/step | ratio | SGD MiB | "
        "precond MiB |")
  print("|---|---|---|---|---|---|---|")
  for name in names:
    model, shape, loss, damping = MODELS[name]()
    x = jax.random.uniform(jax.random.key(2), shape)
    if loss is losses.squared_error:
      y = x.reshape(shape[0], -1)
    else:
      y = jax.random.randint(jax.random.key(3), (shape[0],), 0, 10)
    sgd_t, sgd_mib = measure(model, loss, optax.sgd(1e-3), x, y, 0, 10)
    for k in periods:
      opt = frobenius_sgd(1e-4, damping, damping, refresh_period=k)
      # A window of K steps starting right after a refresh holds exactly one
      # refresh (the step at count K); measure() took the step at count 0.
      t, mib = measure(model, loss, opt, x, y, 1, max(k, 3))
      print(f"| {name} | {k} | {1e3 * sgd_t:.2f} | {1e3 * t:.2f} | "
            f"{t / sgd_t:.1f}x | {sgd_mib:.0f} | {mib:.0f} |", flush=True)


def part2(periods, damping, ema, kfac_python):
  print("\n## nnopt kfac vs kfac-jax 0.0.8 (ratio of ratios; each side vs an "
        "optax SGD step in its own process)\n")
  print("| K | nnopt kfac ms | nnopt SGD ms | nnopt ratio | kfac-jax ms | "
        "kfac-jax SGD ms | kfac-jax ratio | nnopt/kfac-jax |")
  print("|---|---|---|---|---|---|---|---|")
  model, shape, loss, _ = MODELS["mlp"]()
  x = jax.random.uniform(jax.random.key(2), shape)
  y = jax.random.randint(jax.random.key(3), (shape[0],), 0, 10)
  sgd_t, _ = measure(model, loss, optax.sgd(1e-3), x, y, 0, 50)
  peer_script = os.path.join(os.path.dirname(__file__), "kfac_jax_peer.py")
  for k in periods:
    steps = max(50, 2 * k)
    ours, _ = measure(model, loss, kfac(1e-3, damping=damping,
                                        curvature_ema=ema,
                                        inverse_update_period=k),
                      x, y, 1, steps)
    if not os.path.exists(kfac_python):
      print(f"| {k} | {1e3 * ours:.2f} | {1e3 * sgd_t:.2f} | "
            f"{ours / sgd_t:.1f}x | NOT RUN: {kfac_python} missing | | | |")
      continue
    env = {k_: v for k_, v in os.environ.items() if k_ != "XLA_FLAGS"}
    proc = subprocess.run(
        [kfac_python, peer_script, "--period", str(k), "--damping",
         str(damping), "--ema", str(ema), "--steps", str(steps)],
        capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
      print(f"| {k} | {1e3 * ours:.2f} | | | peer failed: "
            f"{proc.stderr.strip().splitlines()[-1]} | | | |")
      continue
    peer = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = (ours / sgd_t) / peer["ratio"]
    print(f"| {k} | {1e3 * ours:.2f} | {1e3 * sgd_t:.2f} | {ours / sgd_t:.1f}x"
          f" | {peer['kfac_ms']:.2f} | {peer['sgd_ms']:.2f} | "
          f"{peer['ratio']:.1f}x | {ratio:.2f} |", flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="mlp,ae,vgg")
  parser.add_argument("--periods", default="1,10,100")
  parser.add_argument("--damping", type=float, default=1e-2)
  parser.add_argument("--ema", type=float, default=0.95)
  parser.add_argument("--kfac-python", default="/work/kfac_venv/bin/python")
  parser.add_argument("--skip-peer", action="store_true")
  args = parser.parse_args()
  periods = [int(p) for p in args.periods.split(",")]
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}")
  part1(args.models.split(","), periods)
  if not args.skip_peer:
    part2(periods, args.damping, args.ema, args.kfac_python)


if __name__ == "__main__":
  main()
