"""Every public noise-aware transform under optax's wrappers and dtypes.

For each alias of :mod:`nnopt.noise_aware`: its ``Needs`` declaration (also
through ``optax.chain``, ``inject_hyperparams``, ``MultiSteps`` and
``apply_if_finite``), ``jax.eval_shape(opt.init, params)``, one compilation
for many jitted steps (also when an injected hyperparameter changes), the
wrappers' results against the plain transform, float64 (with x64 enabled) and
bfloat16 parameters with updates in the parameters' dtype. Transforms that
read layer statistics get real ones from ``capture`` of a tiny model.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import losses
from nnopt import noise_aware as na
from nnopt.models import FNN, init_params
from nnopt.stats.capture import capture
from nnopt.stats.needs import Needs, required_needs

# name -> (alias, {own float hyperparameter: value}, reads layer statistics)
TRANSFORMS = {
    "msgd": (na.msgd, {"beta": 0.8}, False),
    "sign_sgd": (na.sign_sgd, {}, False),
    "msign_sgd": (na.msign_sgd, {"beta": 0.8}, False),
    "svag": (na.svag, {"beta": 0.8}, False),
    "msvag": (na.msvag, {"beta": 0.8}, False),
    "adam_star": (na.adam_star, {"beta": 0.8}, False),
    "msvag_mb": (na.msvag_mb, {"beta": 0.8}, True),
    "l1_sign_gd": (na.l1_sign_gd, {}, False),
    "block_normalized_gd": (na.block_normalized_gd, {}, False),
    "coordinate_descent": (na.coordinate_descent, {}, False),
    "diag_ef": (functools.partial(na.diag_ef, decay=0.9), {"damping": 1e-2},
                True),
    "cabs_sgd": (na.cabs_sgd, {}, True),
}
NAMES = sorted(TRANSFORMS)
# Transforms whose accumulators are kept in float32 for bfloat16 parameters.
FLOAT32_STATE = {"svag", "msvag", "adam_star", "msvag_mb", "diag_ef"}

MODEL = FNN((5, 3), activation="tanh")
LOSS = losses.softmax_cross_entropy


def _data(dtype=jnp.float32):
  """Parameters (exact in bfloat16, so that every dtype starts from the same
  values) and 4 batches."""
  x = jax.random.normal(jax.random.key(0), (4, 8, 4))
  y = jax.random.randint(jax.random.key(1), (4, 8), 0, 3)
  params = init_params(MODEL, jax.random.key(2), x[0])
  return jax.tree.map(lambda p: p.astype(jnp.bfloat16).astype(dtype),
                      params), x, y


def _opt(name, learning_rate=0.05):
  alias, hyper, _ = TRANSFORMS[name]
  return alias(learning_rate, **hyper)


def _stepper(opt, params):
  """A jitted step and a list that grows by one per trace."""
  traces = []
  with_stats = required_needs(opt, params).stats

  @jax.jit
  def step(params, state, x, y):
    traces.append(1)
    cap = capture(MODEL, params, x, y, LOSS, with_stats=with_stats)
    extras = dict(stats=cap.stats, grad=cap.grads) if with_stats else {}
    updates, state = opt.update(cap.grads, state, params, value=cap.loss,
                                **extras)
    return optax.apply_updates(params, updates), state, updates

  return step, traces


def _run(opt, params, x, y, steps=3, state=None):
  step, traces = _stepper(opt, params)
  state = opt.init(params) if state is None else state
  history = []
  for t in range(steps):
    params, state, updates = step(params, state, x[t], y[t])
    history.append(updates)
  return params, state, history, traces


@functools.lru_cache(maxsize=None)
def _plain(name):
  """Updates of 4 jitted float32 steps of the plain alias (shared by the
  tests, which compare wrappers and dtypes against it)."""
  params, x, y = _data()
  _, _, history, traces = _run(_opt(name), params, x, y, steps=4)
  assert len(traces) == 1
  return jax.device_get(history)


def _assert_trees_close(a, b, **tol):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(u, np.float64),
                               np.asarray(v, np.float64), **tol)


@pytest.mark.parametrize("name", NAMES)
def test_needs_declared_through_every_wrapper(name):
  params, _, _ = _data()
  alias, hyper, stats = TRANSFORMS[name]
  want = Needs(stats=stats)
  wrapped = [
      _opt(name),
      optax.chain(optax.clip_by_global_norm(1.0), _opt(name)),
      optax.inject_hyperparams(alias)(learning_rate=0.1, **hyper),
      optax.MultiSteps(_opt(name), every_k_schedule=2),
      optax.apply_if_finite(_opt(name), max_consecutive_errors=2),
      optax.MultiSteps(optax.apply_if_finite(optax.chain(
          optax.inject_hyperparams(alias)(learning_rate=0.1, **hyper)), 2), 2),
  ]
  for opt in wrapped:
    assert required_needs(opt, params) == want


@pytest.mark.parametrize("name", NAMES)
def test_eval_shape_init_equals_init(name):
  params, _, _ = _data()
  opt = _opt(name)
  abstract = jax.eval_shape(opt.init, params)
  concrete = opt.init(params)
  assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
  for a, b in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete)):
    assert (a.shape, a.dtype) == (b.shape, b.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_equals_plain_and_compiles_once(name):
  params, x, y = _data()
  alias, hyper, _ = TRANSFORMS[name]
  plain = _plain(name)
  opt = optax.inject_hyperparams(alias)(learning_rate=0.05, **hyper)
  step, traces = _stepper(opt, params)
  p, state = params, opt.init(params)
  for t in range(3):
    p, state, updates = step(p, state, x[t], y[t])
    _assert_trees_close(updates, plain[t], rtol=2e-4, atol=1e-7)
  if hyper:  # the transform's own injected hyperparameter takes effect ...
    for key in hyper:
      state.hyperparams[key] = state.hyperparams[key] * 0.5
    p4, state4, updates = step(p, state, x[3], y[3])
    assert any(not np.allclose(a, b) for a, b in zip(
        jax.tree.leaves(updates), jax.tree.leaves(plain[3])))
    p, state = p4, state4
  # ... and changing injected values reuses the compiled step
  state.hyperparams["learning_rate"] = state.hyperparams["learning_rate"] * 0.5
  p, state, updates = step(p, state, x[3], y[3])
  assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates))
  assert len(traces) == 1


@pytest.mark.parametrize("name", NAMES)
def test_chain_apply_if_finite_and_multisteps(name):
  params, x, y = _data()
  plain = _plain(name)
  chained = optax.chain(optax.identity(), _opt(name), optax.identity())
  _, _, history, traces = _run(chained, params, x, y)
  for a, b in zip(history, plain):
    _assert_trees_close(a, b, rtol=2e-4, atol=1e-7)
  assert len(traces) == 1
  guarded = optax.apply_if_finite(_opt(name), max_consecutive_errors=2)
  _, _, history, traces = _run(guarded, params, x, y)
  for a, b in zip(history, plain):
    _assert_trees_close(a, b, rtol=2e-4, atol=1e-7)
  assert len(traces) == 1
  multi = optax.MultiSteps(_opt(name), every_k_schedule=2)
  _, state, history, traces = _run(multi, params, x, y, steps=4)
  assert len(traces) == 1
  for t, updates in enumerate(history):
    leaves = jax.tree.leaves(updates)
    assert all(np.all(np.isfinite(u)) for u in leaves)
    emitted = any(np.any(u != 0) for u in leaves)
    assert emitted == (t % 2 == 1), t  # an update every second mini-step
  assert int(state.gradient_step) == 2


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_params_give_bfloat16_updates(name):
  params16, x, y = _data(jnp.bfloat16)
  alias, hyper, _ = TRANSFORMS[name]
  firsts = []
  for opt in (_opt(name),
              optax.inject_hyperparams(alias)(learning_rate=0.05, **hyper)):
    new16, state, history, traces = _run(opt, params16, x, y)
    firsts.append(history[0])
    assert len(traces) == 1
    for updates in history:
      for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16 and np.all(np.isfinite(np.float32(u)))
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(new16))
  # the first step (same parameter values, a fresh state) against float32:
  # the model computes in float32 (float32 inputs), its bfloat16 gradients
  # are rounded (and so are injected hyperparameters)
  for a, b in zip(jax.tree.leaves(firsts),
                  2 * jax.tree.leaves(_plain(name)[0])):
    scale = float(np.max(np.abs(b))) + 1e-12
    np.testing.assert_allclose(np.float32(a), b, atol=0.03 * scale)
  state = _opt(name).init(params16)
  floats = {leaf.dtype for leaf in jax.tree.leaves(state)
            if jnp.issubdtype(leaf.dtype, jnp.floating)}
  if name in FLOAT32_STATE:
    assert floats == {jnp.dtype(jnp.float32)}
  elif name == "msgd":  # as optax.ema: the EMA in the parameters' dtype
    assert floats == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize("name", NAMES)
def test_float64_with_x64(name):
  params, x, y = _data()
  ref = _plain(name)[:3]
  with jax.enable_x64(True):
    params64 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    x64 = jnp.asarray(x, jnp.float64)
    _, state, history, traces = _run(_opt(name), params64, x64, y)
    assert len(traces) == 1
    for updates in history:
      assert all(u.dtype == jnp.float64 for u in jax.tree.leaves(updates))
    floats = {leaf.dtype for leaf in jax.tree.leaves(state)
              if jnp.issubdtype(leaf.dtype, jnp.floating)}
    if name in FLOAT32_STATE or name in ("msgd", "msign_sgd"):
      assert floats == {jnp.dtype(jnp.float64)}
    history = jax.device_get(history)
  for a, b in zip(history, ref):
    _assert_trees_close(a, b, rtol=2e-3, atol=1e-6)


def test_find_batch_variance_through_wrappers():
  params, x, y = _data()
  opt = optax.MultiSteps(optax.apply_if_finite(optax.chain(
      optax.inject_hyperparams(na.cabs_sgd)(learning_rate=0.1)), 2), 1)
  _, state, _, _ = _run(opt, params, x, y, steps=2)
  found = na.find_batch_variance(state)
  assert isinstance(found, na.BatchVarianceState)
  assert int(found.count) == 2 and float(found.trace) > 0
  assert float(found.batch_size) == 8 and float(found.loss) > 0
  assert na.find_batch_variance(optax.adam(0.1).init(params)) is None
