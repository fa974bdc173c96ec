"""Damped inverses spread over the 8 simulated devices of a 'data' mesh
(conftest sets XLA_FLAGS before JAX starts): the same values as the
replicated computation, and in the compiled step every LAPACK factorization
runs in exactly one device's branch, at most 1/D of the replicated work plus
the largest block per device."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nnopt import losses
from nnopt.engine.parallel import data_mesh
from nnopt.models import FNN, init_params
from nnopt.preconditioning import damped_inverses, frobenius_sgd, kfac
from nnopt.preconditioning.distribution import (assign_blocks, device_loads,
                                                resolve_mesh)
from nnopt.stats.capture import capture
from nnopt.stats.kronecker import FactorError

MODEL = FNN((48, 40, 32, 24, 16, 10), activation="tanh")
SIZES = (65, 48, 48, 40, 40, 32, 32, 24, 24, 16, 16, 10)


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8
  return data_mesh()


def test_assignment_bound_and_coverage():
  rng = np.random.default_rng(0)
  for _ in range(200):
    costs = list(rng.integers(0, 10**6, rng.integers(1, 30)))
    d = int(rng.integers(1, 9))
    assignment = assign_blocks(costs, d)
    assert all((c == 0) == (a == -1) for c, a in zip(costs, assignment))
    assert all(-1 <= a < d for a in assignment)
    loads = device_loads(costs, assignment, d)
    assert sum(loads) == sum(costs)
    assert max(loads) <= sum(costs) / d + max(costs)
  # Largest first, each to the least loaded device.
  assert assign_blocks([1, 8, 5, 4], 2) == (0, 0, 1, 1)


def _factors(seed=0):
  out = {}
  for i in range(len(SIZES) // 2):
    pair = []
    for n in SIZES[2 * i:2 * i + 2]:
      x = jax.random.normal(jax.random.key(seed + n + i), (n, n))
      pair.append(x @ x.T / n)
    out[f"layer_{i}"] = tuple(pair)
  return out


def _assert_close(a, b):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    u, v = np.asarray(u), np.asarray(v)
    assert np.all(np.isfinite(v))
    assert np.max(np.abs(u - v)) <= 1e-5 * max(np.max(np.abs(v)), 1e-30)


def _step(make, mesh, distribute):
  tx = make(distribute)
  x = jax.random.normal(jax.random.key(0), (64, 64))
  y = jax.random.randint(jax.random.key(1), (64,), 0, 10)
  params = init_params(MODEL, jax.random.key(2), x[:1])

  def step(p, s, x, y, key):
    cap = capture(MODEL, p, x, y, losses.softmax_cross_entropy, rng=key,
                  fisher_samples=1, with_stats=True)
    u, s = tx.update(cap.grads, s, p, stats=cap.stats)
    return optax.apply_updates(p, u), s

  rep = NamedSharding(mesh, PartitionSpec())
  rows = NamedSharding(mesh, PartitionSpec("data"))
  p, s = jax.device_put((params, tx.init(params)), rep)
  x, y = jax.device_put((x, y), rows)
  fn = jax.jit(step)
  for i in range(3):
    p, s = fn(p, s, x, y, jax.random.key(i))
  return (p, s), fn.lower(p, s, x, y, jax.random.key(0)).compile().as_text()


MAKERS = {
    "frobenius": lambda mesh: lambda d: frobenius_sgd(
        0.1, 1e-2, 1e-1, track_spectra=True, distribute_inverses=d,
        mesh=mesh),
    "kfac": lambda mesh: lambda d: kfac(
        0.1, 1e-2, inverse_update_period=1, solver="eigh",
        distribute_inverses=d, mesh=mesh),
}


def _work_per_device(hlo: str, target: str, devices: int):
  """n³ of the ``target`` LAPACK calls of each device's branch, and the n."""
  loads, sizes = [0] * devices, []
  for line in hlo.splitlines():
    if f'custom_call_target="{target}"' not in line:
      continue
    n = int(re.search(r"f32\[(\d+),\d+\]", line).group(1))
    sizes.append(n)
    branch = re.search(r"shard_map/cond/branch_(\d+)_fun", line)
    for d in range(devices) if branch is None else [int(branch.group(1))]:
      loads[d] += n ** 3
  return loads, sorted(sizes)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_distributed_step_equals_replicated(kind, mesh):
  make = MAKERS[kind](mesh)
  (dist, _), hlo = _step(make, mesh, True)
  (rep, _), hlo_rep = _step(make, mesh, False)
  _assert_close(dist, rep)
  target = "lapack_spotrf_ffi" if kind == "frobenius" else "lapack_ssyevd_ffi"
  replicated, sizes = _work_per_device(hlo_rep, target, 8)
  spread, spread_sizes = _work_per_device(hlo, target, 8)
  # A (64 inputs, +1 with K-FAC's homogeneous bias) and G of every layer.
  homogeneous = int(kind == "kfac")
  expected = sorted([w + homogeneous for w in (64, 48, 40, 32, 24, 16)]
                    + [48, 40, 32, 24, 16, 10])
  assert sizes == spread_sizes == expected
  total = sum(n ** 3 for n in expected)
  assert replicated == [total] * 8
  assert sum(spread) == total  # each block on exactly one device
  assert max(spread) <= total / 8 + max(expected) ** 3
  assert max(spread) < total / 2


def test_vmapped_runs_on_runs_by_data_mesh():
  """Runs sharded over 'runs', each run's inverses over its 'data' devices."""
  mesh = Mesh(np.asarray(jax.devices()).reshape(2, 4), ("runs", "data"))
  factors = jax.tree.map(lambda *a: jnp.stack(a),
                         *[_factors(seed) for seed in range(4)])
  dampings = jnp.asarray([1e-3, 1e-2, 1e-1, 1.0])

  def inverses(distribute):
    def one(f, d):
      inv = damped_inverses(d, 2 * d, pi_damping=True, track_spectra=True,
                            distribute=distribute, mesh=mesh)
      return inv.update(inv.init({}), f)
    runs = NamedSharding(mesh, PartitionSpec("runs"))
    return jax.jit(jax.vmap(one), in_shardings=(runs, runs))(factors,
                                                              dampings)

  dist = inverses(True)
  _assert_close(dist, inverses(False))
  for r in range(4):
    alone = damped_inverses(dampings[r], 2 * dampings[r], pi_damping=True,
                            track_spectra=True)
    _assert_close(jax.tree.map(lambda a, r=r: a[r], dist),
                  alone.update(alone.init({}),
                               jax.tree.map(lambda a, r=r: a[r], factors)))


def test_mesh_resolution(mesh):
  assert resolve_mesh(False, mesh, "data") is None
  assert resolve_mesh("auto", None, "data") is None
  assert resolve_mesh("auto", mesh, "data") is mesh
  assert resolve_mesh(True, mesh, "data") is mesh
  with jax.sharding.set_mesh(mesh):
    assert resolve_mesh(True, None, "data") is not None
  with pytest.raises(FactorError, match="needs a mesh"):
    resolve_mesh(True, None, "data")
  with pytest.raises(FactorError, match="needs a mesh"):
    resolve_mesh(True, mesh, "model")
  with pytest.raises(FactorError):
    damped_inverses(distribute="yes")
