"""Distributed damped inverses on 8 simulated CPU devices (issue 13 item 5).

For a jitted ``frobenius_sgd`` step on a data mesh of 8 devices (batch
sharded along ``'data'``) it prints, for the replicated step
(``distribute_inverses=False``) and the distributed one (``True``):

* the inverse work of the most loaded device relative to the replicated
  step, read from the compiled program: the ``n³`` of every LAPACK Cholesky
  factorization (``lapack_spotrf_ffi``), counted for the device whose
  ``lax.switch`` branch holds it (for every device when outside a branch);
  the bound ``1/D + largest block`` beside it;
* the wall time per step (the 8 simulated devices share this machine's
  cores, so replicated inverses cost 8 times the work here), with
  ``OPENBLAS_NUM_THREADS=1`` unless set.

Two networks: the thesis's Exp1 MLP 784-100-100-100-10 (one 784×784 block
dominates, so little can be gained) and a deep MLP 256-256×8-10 of equal
blocks. ``main()`` runs the measurement in a child process whose
``XLA_FLAGS`` is set before JAX starts (importing JAX does not start it), so
it works from a process whose JAX already runs on one device.

    python experiments/bench/distributed_inverses.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import jax
import optax
from jax.sharding import NamedSharding, PartitionSpec

from nnopt import losses
from nnopt.engine.parallel import data_mesh
from nnopt.models import FNN, init_params
from nnopt.preconditioning import frobenius_sgd
from nnopt.stats.capture import capture

DEVICES = 8
NETWORKS = {"exp1 784-100-100-100-10": (784, (100, 100, 100, 10)),
            "deep 256-256x8-10": (256, (256,) * 8 + (10,))}


def work_per_device(hlo: str, devices: int) -> tuple[list[int], int]:
  """n³ of the Cholesky factorizations per device, and the largest n³."""
  loads, largest = [0] * devices, 0
  for line in hlo.splitlines():
    if 'custom_call_target="lapack_spotrf_ffi"' not in line:
      continue
    n = int(re.search(r"f32\[(\d+),\d+\]", line).group(1))
    largest = max(largest, n ** 3)
    branch = re.search(r"shard_map/cond/branch_(\d+)_fun", line)
    for d in range(devices) if branch is None else [int(branch.group(1))]:
      loads[d] += n ** 3
  return loads, largest


def measure(name: str, repeats: int = 3) -> None:
  """Prints the per-device inverse work and step times of one network."""
  dim, widths = NETWORKS[name]
  mesh = data_mesh()
  model = FNN(widths, activation="relu")
  x = jax.random.normal(jax.random.key(0), (104, dim))
  y = jax.random.randint(jax.random.key(1), (104,), 0, widths[-1])
  params = init_params(model, jax.random.key(2), x[:1])
  rows = NamedSharding(mesh, PartitionSpec("data"))
  rep = NamedSharding(mesh, PartitionSpec())
  x, y = jax.device_put((x, y), rows)
  results = {}
  for distribute in (False, True):
    tx = frobenius_sgd(0.1, 1e-2, 1e-2, distribute_inverses=distribute,
                       mesh=mesh)

    def step(p, s, key, tx=tx):
      cap = capture(model, p, x, y, losses.softmax_cross_entropy, rng=key,
                    fisher_samples=1, with_stats=True)
      u, s = tx.update(cap.grads, s, p, stats=cap.stats)
      return optax.apply_updates(p, u), s

    fn = jax.jit(step)
    p, s = jax.device_put((params, tx.init(params)), rep)
    key = jax.random.key(3)
    loads, largest = work_per_device(
        fn.lower(p, s, key).compile().as_text(), DEVICES)
    p, s = jax.block_until_ready(fn(p, s, key))
    start = time.perf_counter()
    for _ in range(repeats):
      p, s = fn(p, s, key)
    jax.block_until_ready(p)
    results[distribute] = (loads, largest,
                           (time.perf_counter() - start) / repeats)
  (rep_loads, largest, rep_t), (dist_loads, _, dist_t) = results[False], \
      results[True]
  total = max(rep_loads)
  print(f"{name}: per-device inverse FLOPs (n^3 of the Cholesky blocks, most "
        f"loaded device) relative to the replicated step: "
        f"{max(dist_loads) / total:.3f} (bound 1/D + largest block = "
        f"{1 / DEVICES + largest / total:.3f}; 1/D = {1 / DEVICES:.3f}); "
        f"step time distributed/replicated on {DEVICES} simulated devices: "
        f"{dist_t * 1e3:.1f} ms / {rep_t * 1e3:.1f} ms = {dist_t / rep_t:.2f}",
        flush=True)


def main() -> None:
  """Runs :func:`measure` for both networks in a child with 8 devices."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      os.environ.get("XLA_FLAGS", "") +
      f" --xla_force_host_platform_device_count={DEVICES}").strip())
  # OpenBLAS's threads make every factorization several times slower on a
  # few shared cores (docs/distributed_inverses.md).
  env.setdefault("OPENBLAS_NUM_THREADS", "1")
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"],
                        env=env, capture_output=True, text=True, check=False)
  print(proc.stdout, end="")
  if proc.returncode:
    raise RuntimeError(f"distributed inverses bench failed:\n"
                       f"{proc.stderr[-3000:]}")


if __name__ == "__main__":
  if sys.argv[1:] == ["--child"]:
    for network in NETWORKS:
      measure(network)
  else:
    main()
