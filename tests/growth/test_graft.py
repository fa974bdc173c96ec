"""Optimizer-state grafting across insertion and widening."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import growth
from nnopt.models import FNN, init_params


def _trained_state(optimizer, model, params, steps=3):
  x = jax.random.normal(jax.random.key(0), (16, 2))
  y = jnp.arange(16) % 2
  state = optimizer.init(params)

  @jax.jit
  def step(params, state):
    g = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
        model.apply({"params": p}, x), y).mean())(params)
    updates, state = optimizer.update(g, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return params, state


def _setup(optimizer):
  model = FNN((5, 5, 2))
  params = init_params(model, jax.random.key(1), jnp.zeros((1, 2)))
  params, state = _trained_state(optimizer, model, params)
  cand = growth.candidates(model)[1]
  new_model, new_params = growth.insert(model, params, [cand])
  return model, params, state, new_model, new_params, cand


def test_graft_keeps_adam_moments_of_old_leaves_bit_for_bit():
  opt = optax.adam(1e-2)
  _, params, state, _, new_params, cand = _setup(opt)
  grafted = jax.jit(lambda s: growth.graft(s, opt.init(new_params)))(state)
  adam = grafted[0]
  assert int(adam.count) == int(state[0].count) == 3
  for name in params:
    for leaf in params[name]:
      for moment in ("mu", "nu"):
        old = np.asarray(getattr(state[0], moment)[name][leaf])
        new = np.asarray(getattr(adam, moment)[name][leaf])
        assert old.tobytes() == new.tobytes()
  assert np.all(np.asarray(adam.mu[cand.name]["kernel"]) == 0)
  assert np.all(np.asarray(adam.nu[cand.name]["bias"]) == 0)
  # a step with the grafted state runs (structure matches the new params)
  opt.update(jax.tree.map(jnp.ones_like, new_params), grafted, new_params)


def test_graft_without_growth_is_identity_for_chains_and_injected_hyperparams():
  opt = optax.chain(optax.clip_by_global_norm(1.0),
                    optax.inject_hyperparams(optax.sgd)(learning_rate=0.1,
                                                        momentum=0.9),
                    optax.apply_if_finite(optax.scale_by_adam(), 3))
  model = FNN((4, 2))
  params = init_params(model, jax.random.key(0), jnp.zeros((1, 2)))
  params, state = _trained_state(opt, model, params)
  state = growth.scale_hyperparam(state, "learning_rate", 0.5)
  grafted = growth.graft(state, opt.init(params))
  assert jax.tree.structure(grafted) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(grafted)):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
  assert float(grafted[1].hyperparams["learning_rate"]) == pytest.approx(0.05)
  fresh = growth.graft(state, opt.init(params), keep_hyperparams=False)
  assert float(fresh[1].hyperparams["learning_rate"]) == pytest.approx(0.1)


def test_graft_into_chain_after_insertion_keeps_momentum():
  opt = optax.chain(optax.add_decayed_weights(1e-4),
                    optax.inject_hyperparams(optax.sgd)(learning_rate=0.1,
                                                        momentum=0.9))
  _, params, state, _, new_params, cand = _setup(opt)
  grafted = growth.graft(state, opt.init(new_params))
  old_trace = state[1].inner_state[0].trace
  new_trace = grafted[1].inner_state[0].trace
  for name in params:
    np.testing.assert_array_equal(new_trace[name]["kernel"], old_trace[name]["kernel"])
  assert np.all(np.asarray(new_trace[cand.name]["kernel"]) == 0)
  assert int(grafted[1].count) == 3


def test_graft_after_widening_embeds_old_state():
  opt = optax.adam(1e-2)
  model = FNN((4, 3))
  params = init_params(model, jax.random.key(0), jnp.zeros((1, 2)))
  params, state = _trained_state(opt, model, params)
  wide_model, wide_params = growth.widen(model, params, "dense_0", 2)
  grafted = growth.graft(state, opt.init(wide_params))
  mu = grafted[0].mu
  np.testing.assert_array_equal(mu["dense_0"]["kernel"][:, :4],
                                state[0].mu["dense_0"]["kernel"])
  assert np.all(np.asarray(mu["dense_0"]["kernel"][:, 4:]) == 0)
  np.testing.assert_array_equal(mu["dense_1"]["kernel"][:4],
                                state[0].mu["dense_1"]["kernel"])
  assert wide_model.widths == (6, 3)


def test_scale_hyperparam_without_injection_is_an_error():
  state = optax.sgd(0.1).init({"w": jnp.ones(3)})
  with pytest.raises(growth.GrowthError, match="inject_hyperparams"):
    growth.scale_hyperparam(state, "learning_rate", 0.5)
