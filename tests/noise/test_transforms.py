"""The noise-aware transforms (momentum, variance_adaptation, msvag_mb,
steepest_descent, diag_ef) against the numpy references of
numpy_reference.py, over many steps and under jit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from optax.tree_utils import tree_bias_correction

from nnopt import noise_aware as na
from nnopt.stats.moments import VarianceError
from tests.noise.numpy_reference import Reference, block_normalized

PARAMS = {"a": jnp.array([1.0, -2.0, 0.5]), "b": {"w": jnp.ones((2, 2)) * 0.3}}
H = np.array([1.0, 4.0, 0.5, 2.0, 0.1, 3.0, 1.5])

ALIASES = {
    "msgd": na.msgd,
    "sign": na.sign_sgd,
    "msign": functools.partial(na.msign_sgd, beta=0.8),
    "svag": na.svag,
    "msvag": na.msvag,
    "adam_star": functools.partial(na.adam_star, beta=0.7),
    "msvag_mb": na.msvag_mb,
    "l1_sign": na.l1_sign_gd,
    "coordinate": na.coordinate_descent,
    "diag_ef": functools.partial(na.diag_ef, damping=1e-3),
}
BETAS = {"msign": 0.8, "adam_star": 0.7}


def _run_nnopt(name, lr, steps, noise, extra):
  opt = ALIASES[name](lr)
  flat0, unravel = ravel_pytree(PARAMS)

  @jax.jit
  def step(params, state, noise_t, extra_t):
    flat, _ = ravel_pytree(params)
    grads = unravel(jnp.asarray(H, jnp.float32) * flat + noise_t)
    kw = {}
    if name == "msvag_mb":
      kw["variance"] = unravel(extra_t)
    if name == "diag_ef":
      kw["sq_grad_mean"] = unravel(extra_t)
    updates, state = opt.update(grads, state, params, **kw)
    return optax.apply_updates(params, updates), state

  params, state = PARAMS, opt.init(PARAMS)
  traj = []
  for t in range(steps):
    params, state = step(params, state, noise[t], extra[t])
    traj.append(np.asarray(ravel_pytree(params)[0]))
  return np.array(traj)


def _run_numpy(name, lr, steps, noise, extra):
  ref = Reference(name, beta=BETAS.get(name, 0.9))
  theta = np.asarray(ravel_pytree(PARAMS)[0], np.float64)
  traj = []
  for t in range(steps):
    g = H * theta + noise[t]
    u = ref.direction(g, batch_var=extra[t], sq_mean=extra[t])
    theta = theta - lr * u
    traj.append(theta.copy())
  return np.array(traj)


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_matches_numpy_reference_over_many_steps(name):
  steps = 60
  rng = np.random.default_rng(0)
  noise = rng.normal(scale=0.5, size=(steps, 7)).astype(np.float32)
  noise[:, 6] = 0.0  # one coordinate without noise
  extra = rng.uniform(0.05, 1.0, size=(steps, 7)).astype(np.float32)
  lr = 0.01 if name == "l1_sign" else 0.05
  ours = _run_nnopt(name, lr, steps, noise, extra)
  ref = _run_numpy(name, lr, steps, noise, extra)
  np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=2e-5)


def test_block_normalize_reference_and_l1b_off():
  g = {"a": jnp.array([3.0, 4.0]), "b": jnp.zeros(3), "c": jnp.array([[1.0, -1.0]])}
  u, _ = jax.jit(na.scale_by_block_normalize().update)(g, optax.EmptyState())
  ref = block_normalized([np.asarray(x) for x in jax.tree.leaves(g)])
  for a, b in zip(jax.tree.leaves(u), ref):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  u, _ = na.scale_by_block_normalize(False).update(g, optax.EmptyState())
  np.testing.assert_allclose(u["a"], [0.6, 0.8], rtol=1e-6)


def test_msgd_equals_optax_ema_debiased():
  rng = np.random.default_rng(1)
  ours, theirs = na.scale_by_msgd(0.9), optax.ema(0.9, debias=True)
  s1, s2 = ours.init(PARAMS), theirs.init(PARAMS)
  for _ in range(20):
    g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32),
                     PARAMS)
    u1, s1 = ours.update(g, s1)
    u2, s2 = theirs.update(g, s2)
    for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _grads(rng):
  return jax.tree.map(
      lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), PARAMS)


def test_msvag_first_step_is_sgd_and_beta_zero_reductions():
  rng = np.random.default_rng(2)
  g0 = _grads(rng)
  u, _ = na.msvag(0.3).update(g0, na.msvag(0.3).init(PARAMS))
  for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, -0.3 * b, rtol=1e-6)
  pairs = [(na.scale_by_msvag(0.0), lambda g: g),
           (na.scale_by_svag(0.0), lambda g: g),
           (na.scale_by_adam_star(0.0), jnp.sign),
           (na.scale_by_msign(0.0), jnp.sign)]
  for opt, expected in pairs:
    state = opt.init(PARAMS)
    for _ in range(5):
      g = _grads(rng)
      u, state = jax.jit(opt.update)(g, state)
      for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
        np.testing.assert_allclose(a, expected(b), rtol=1e-6)


def test_gamma_in_unit_interval_and_zero_coordinates_stay_put():
  rng = np.random.default_rng(3)
  opt = na.scale_by_msvag(0.9)
  state = opt.init(PARAMS)
  for _ in range(30):
    g = _grads(rng)
    g["b"]["w"] = g["b"]["w"].at[0, 0].set(0.0)
    u, state = opt.update(g, state)
    m = tree_bias_correction(state.mu, 0.9, state.count)
    gamma = jax.tree.map(lambda u, m: np.where(m != 0, u / np.where(m != 0, m, 1), 0), u, m)
    for x in jax.tree.leaves(gamma):
      assert np.all((x >= -1e-6) & (x <= 1 + 1e-6))
    assert float(u["b"]["w"][0, 0]) == 0.0


def test_adam_is_sign_times_variance_factor():
  """(5.5): m/√v = (1 + (v−m²)/m²)^{-1/2} sign(m) for ε = 0, b1 = b2."""
  rng = np.random.default_rng(4)
  opt = optax.scale_by_adam(b1=0.9, b2=0.9, eps=0.0)
  state = opt.init(PARAMS)
  for _ in range(10):
    u, state = opt.update(_grads(rng), state)
  m = tree_bias_correction(state.mu, 0.9, 10)
  v = tree_bias_correction(state.nu, 0.9, 10)
  for uu, mm, vv in zip(*map(jax.tree.leaves, (u, m, v))):
    eta2 = (vv - mm ** 2) / mm ** 2
    np.testing.assert_allclose(uu, (1 + eta2) ** -0.5 * np.sign(mm), rtol=1e-4)


ALL = dict(ALIASES, block=na.block_normalized_gd)


@pytest.mark.parametrize("name", sorted(ALL))
def test_chain_inject_hyperparams_jit_once_and_shape_dtype_init(name):
  extra_name = {"msvag_mb": "variance", "diag_ef": "sq_grad_mean"}.get(name)
  factory = ALL[name]
  opt = optax.chain(optax.clip_by_global_norm(10.0),
                    optax.inject_hyperparams(factory)(
                        learning_rate=optax.linear_schedule(0.1, 0.01, 10)))
  shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), PARAMS)
  # init from ShapeDtypeStruct (optax.inject_hyperparams itself cannot: it
  # converts the params to arrays, so the plain alias is checked here)
  plain = factory(0.1)
  abstract = plain.init(shapes)
  concrete = plain.init(PARAMS)
  assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
  for a, b in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete)):
    assert a.shape == b.shape and a.dtype == b.dtype
  state = opt.init(PARAMS)
  traces = []

  @jax.jit
  def step(params, state, g):
    traces.append(1)
    kw = {extra_name: jax.tree.map(jnp.abs, g)} if extra_name else {}
    updates, state = opt.update(g, state, params, unknown_extra=1.0, **kw)
    return optax.apply_updates(params, updates), state

  params, rng = PARAMS, np.random.default_rng(5)
  for _ in range(3):
    params, state = step(params, state, _grads(rng))
  assert len(traces) == 1
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))


@pytest.mark.parametrize("name", sorted(ALL))
def test_nonfinite_gradient_skips_step_and_keeps_state(name):
  extra_name = {"msvag_mb": "variance", "diag_ef": "sq_grad_mean"}.get(name)
  opt = ALL[name](0.1)
  rng = np.random.default_rng(6)
  kw = lambda g: {extra_name: jax.tree.map(jnp.abs, g)} if extra_name else {}
  state = opt.init(PARAMS)
  g = _grads(rng)
  _, state = opt.update(g, state, PARAMS, **kw(g))
  bad = jax.tree.map(lambda x: x, g)
  bad["a"] = bad["a"].at[1].set(jnp.nan)
  u, new_state = jax.jit(lambda g, s: opt.update(g, s, PARAMS, **kw(g)))(bad, state)
  assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(u))
  for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, float("nan")])
def test_beta_outside_unit_interval_is_an_error(beta):
  for factory in (na.msgd, na.msign_sgd, na.svag, na.msvag, na.adam_star,
                  na.msvag_mb):
    with pytest.raises(VarianceError, match=r"beta must lie in \[0, 1\)"):
      factory(0.1, beta)
  with pytest.raises(VarianceError, match="decay"):
    na.diag_ef(0.1, decay=beta)


def test_msvag_mb_without_variance_source_is_a_clear_error():
  opt = na.msvag_mb(0.1)
  with pytest.raises(VarianceError, match="Needs\\(stats=True\\)"):
    opt.update(PARAMS, opt.init(PARAMS), PARAMS)
