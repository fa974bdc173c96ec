"""The covariance preconditioner on a runs axis: ``jit(vmap(run))`` over three
runs (own parameters, batches, and traced learning rate and damping) of
``lax.scan`` loops equals each run alone, and the compiled program issues one
LAPACK call per matrix (batched potrf/syevd/trsm deadlock XLA:CPU's intra-op
pool, :mod:`nnopt.preconditioning.solvers`)."""

import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import losses
from nnopt.models import FNN, init_params
from nnopt.preconditioning import frobenius_sgd, kfac
from nnopt.stats.capture import capture

MODEL = FNN((12, 10, 4), activation="tanh")
STEPS, BATCH, DIM = 4, 16, 8
LRS = (0.05, 0.1, 0.2)
DAMPINGS = (1e-2, 1e-1, 1.0)
KINDS = ("frobenius_cholesky", "frobenius_eigh", "kfac")


def _make(kind, lr, damping):
  """The optax factory, called with the run's (possibly traced) floats."""
  if kind == "kfac":
    return kfac(lr, damping, inverse_update_period=2, momentum=0.5,
                curvature_ema=0.9)
  solver = kind.split("_")[1]
  return frobenius_sgd(lr, damping, 2 * damping, solver=solver,
                       estimation="ema_cov", ema_weight=0.5,
                       pi_damping=solver == "eigh",
                       track_spectra=solver == "eigh")


def _run(kind, lr, damping, params, xs, ys, keys):
  """``STEPS`` steps of one run in a ``lax.scan``."""
  tx = _make(kind, lr, damping)

  def body(carry, batch):
    p, s = carry
    x, y, key = batch
    cap = capture(MODEL, p, x, y, losses.softmax_cross_entropy, rng=key,
                  fisher_samples=1, with_stats=True)
    u, s = tx.update(cap.grads, s, p, stats=cap.stats)
    return (optax.apply_updates(p, u), s), cap.loss

  (params, state), loss = jax.lax.scan(body, (params, tx.init(params)),
                                       (xs, ys, keys))
  return params, state, loss


def _inputs(run):
  key = jax.random.key(100 + run)
  kx, ky, kp, ks = jax.random.split(key, 4)
  xs = jax.random.normal(kx, (STEPS, BATCH, DIM))
  ys = jax.random.randint(ky, (STEPS, BATCH), 0, 4)
  params = init_params(MODEL, kp, xs[0, :1])
  return params, xs, ys, jax.random.split(ks, STEPS)


def _stacked():
  runs = [_inputs(r) for r in range(len(LRS))]
  return jax.tree.map(lambda *a: jnp.stack(a), *runs)


def _vmapped(kind):
  return jax.jit(jax.vmap(lambda lr, d, *args: _run(kind, lr, d, *args)))


@pytest.mark.parametrize("kind", KINDS)
def test_vmapped_scan_equals_runs_one_by_one(kind):
  batched = _vmapped(kind)(jnp.asarray(LRS), jnp.asarray(DAMPINGS),
                           *_stacked())
  for r, (lr, damping) in enumerate(zip(LRS, DAMPINGS)):
    alone = jax.jit(lambda *args, lr=lr, d=damping: _run(kind, lr, d, *args))(
        *_inputs(r))
    mine = jax.tree.map(lambda a, r=r: a[r], batched)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(alone)):
      a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
      assert np.all(np.isfinite(b))
      scale = max(np.max(np.abs(b)), 1e-30)
      assert np.max(np.abs(a - b)) <= 1e-5 * scale, (kind, r)


def _lapack_operand_shapes(hlo: str) -> list[tuple[int, ...]]:
  shapes = []
  for line in hlo.splitlines():
    if 'custom_call_target="lapack_' not in line:
      continue
    constraints = re.search(r"operand_layout_constraints=\{(.*?)\}\s*,", line)
    assert constraints, line
    for dims in re.findall(r"\[([\d,]*)\]", constraints.group(1)):
      shapes.append(tuple(int(d) for d in dims.split(",") if d))
  return shapes


@pytest.mark.parametrize("kind", KINDS)
def test_vmapped_program_has_no_batched_lapack_call(kind):
  hlo = _vmapped(kind).lower(jnp.asarray(LRS), jnp.asarray(DAMPINGS),
                             *_stacked()).compile().as_text()
  shapes = _lapack_operand_shapes(hlo)
  assert shapes, "no LAPACK call found: the check would be vacuous"
  assert all(len(s) == 2 for s in shapes), sorted(set(shapes))


HANG_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, optax
    from nnopt import losses
    from nnopt.models import FNN, init_params
    from nnopt.preconditioning import frobenius_sgd
    from nnopt.stats.capture import capture
    model = FNN((100, 100, 100, 10), activation="relu")
    x = jax.random.normal(jax.random.key(0), (100, 784))
    y = jax.random.randint(jax.random.key(1), (100,), 0, 10)
    params = init_params(model, jax.random.key(2), x[:1])
    def step(p, lr, d):
      tx = frobenius_sgd(lr, d, d)
      cap = capture(model, p, x, y, losses.softmax_cross_entropy,
                    fisher_samples=1, rng=jax.random.key(3), with_stats=True)
      u, _ = tx.update(cap.grads, tx.init(p), p, stats=cap.stats)
      return optax.apply_updates(p, u)
    stack = jax.tree.map(lambda a: jnp.stack([a] * 3), params)
    out = jax.jit(jax.vmap(step))(stack, jnp.array([.1, .2, .3]),
                                  jnp.array([1e-2, 1e-1, 1.]))
    jax.block_until_ready(out)
    print("done")
""")


@pytest.mark.slow
def test_full_size_vmapped_step_does_not_hang():
  """The configuration that deadlocked (4 of 4 tries) with batched LAPACK."""
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", HANG_SCRIPT], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]
