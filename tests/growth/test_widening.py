"""Widening (Kreis §4.4): function preservation and the merit's closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import growth, losses
from nnopt.models import FNN, ResNet, init_params

CE = losses.softmax_cross_entropy


def test_widening_preserves_function_and_gradients_match_4_19():
  model = FNN((4, 3, 2))
  x = jax.random.normal(jax.random.key(0), (32, 2))
  y = jnp.arange(32) % 2
  params = init_params(model, jax.random.key(1), x[:1])
  ext, ext_params, widened = growth.widen_all(model, params, k=2, w1_value=0.3)
  assert ext.widths == (6, 5, 2) and widened == {"dense_0": 2, "dense_1": 2}
  apply = lambda m: jax.jit(lambda p, x: m.apply({"params": p}, x))
  np.testing.assert_allclose(apply(ext)(ext_params, x),
                             apply(model)(params, x), atol=1e-6)
  grads = jax.jit(jax.grad(lambda p: CE(ext.apply({"params": p}, x), y)))(ext_params)
  # ∇W1_new = 0 and ∇b1_new = 0 at the first step
  assert np.all(np.asarray(grads["dense_0"]["kernel"][:, 4:]) == 0)
  assert np.all(np.asarray(grads["dense_0"]["bias"][4:]) == 0)
  # ∇W2_new = Σ_n σ(W1_new x_n + 0) ⊗ ∇_{y3} f_n, from the baseline's cotangent
  h0 = jax.nn.relu(x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"])
  new_act = jax.nn.relu(x @ jnp.full((2, 2), 0.3))          # the 2 new neurons
  def loss_from_y3(y3):
    h1 = jax.nn.relu(y3)
    return CE(h1 @ params["dense_2"]["kernel"] + params["dense_2"]["bias"], y)
  y3 = h0 @ params["dense_1"]["kernel"] + params["dense_1"]["bias"]
  dy3 = jax.grad(loss_from_y3)(y3)
  np.testing.assert_allclose(grads["dense_1"]["kernel"][4:, :3], new_act.T @ dy3,
                             rtol=1e-5, atol=1e-7)
  merits, reference = growth.widening_merits(ext, grads, widened)
  assert merits["dense_0"] == pytest.approx(float(jnp.sum((new_act.T @ dy3) ** 2)),
                                            rel=1e-5)
  assert len(reference) == 4 + 3       # outgoing columns of the old neurons


def test_widening_bad_input():
  model = FNN((4, 2))
  params = init_params(model, jax.random.key(0), jnp.zeros((1, 2)))
  with pytest.raises(growth.GrowthError, match="no such layer"):
    growth.widen(model, params, "dense_7")
  with pytest.raises(growth.GrowthError, match="output layer"):
    growth.widen(model, params, "dense_1")
  with pytest.raises(growth.GrowthError, match="non-zero"):
    growth.widen(model, params, "dense_0", w1_value=0.0)
  res = ResNet(3, 1, 2)
  with pytest.raises(growth.GrowthError, match="FNNs only"):
    growth.widen(res, init_params(res, jax.random.key(0), jnp.zeros((1, 2))),
                 "block_0")
