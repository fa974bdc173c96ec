"""`nnopt.models.pooling.max_pool` against `flax.linen.max_pool`, bitwise.

Inputs are small integers, so that windows hold ties: the derivative must pick
the same (first) maximal element as reduce_window's own derivative.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import losses
from nnopt.models import deepobs
from nnopt.models.pooling import max_pool

CASES = [  # (spatial shape, window, strides, padding)
    ((28, 28), (3, 3), (2, 2), "SAME"),       # Balles P1
    ((14, 14), (3, 3), (2, 2), "SAME"),
    ((13, 11), (3, 3), (2, 2), "VALID"),
    ((12, 12), (2, 2), (2, 2), "VALID"),      # non-overlapping
    ((9, 7), (2, 2), (2, 2), "SAME"),
    ((8, 8), (3, 3), None, "SAME"),           # stride 1
    ((10, 9), (3, 2), (2, 1), ((1, 0), (0, 1))),
]


def _inputs(shape, seed):
  rng = np.random.default_rng(seed)
  x = rng.integers(-2, 3, size=(3, *shape, 4)).astype(np.float32)
  return jnp.asarray(x)


@pytest.mark.parametrize("shape,window,strides,padding", CASES)
def test_values_gradients_and_jvps_equal_nn_max_pool(shape, window, strides,
                                                     padding):
  ref = lambda x: nn.max_pool(x, window, strides=strides, padding=padding)
  new = lambda x: max_pool(x, window, strides=strides, padding=padding)
  wrap = jax.jit  # (eager: the same ops, one compilation each: slow)
  x = _inputs(shape, 0)
  y_ref, vjp_ref = jax.vjp(ref, x)
  y_new, vjp_new = wrap(lambda x: jax.vjp(new, x))(x)
  np.testing.assert_array_equal(y_new, y_ref)
  cot = jnp.asarray(np.random.default_rng(1).normal(size=y_ref.shape),
                    jnp.float32)
  np.testing.assert_array_equal(vjp_new(cot)[0], vjp_ref(cot)[0])
  # Forward mode: our JVP is the transpose of our VJP, ties included ...
  tangent = jnp.asarray(np.random.default_rng(2).normal(size=x.shape),
                        jnp.float32)
  jvp = wrap(lambda x, t: jax.jvp(new, (x,), (t,))[1])
  np.testing.assert_allclose(jnp.vdot(jvp(x, tangent), cot),
                             jnp.vdot(tangent, vjp_new(cot)[0]), rtol=1e-5)
  # ... and nn.max_pool's JVP without ties. (With ties in overlapping
  # windows, XLA's CPU JVP of reduce_window picks another element than its
  # own VJP, so it is not the transpose of the gradient; we follow the VJP.)
  x_distinct = jnp.asarray(np.random.default_rng(5).normal(size=x.shape),
                           jnp.float32)
  np.testing.assert_array_equal(jvp(x_distinct, tangent),
                                jax.jvp(ref, (x_distinct,), (tangent,))[1])


def test_second_order_derivative_exists():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 6, 6, 2)),
                  jnp.float32)
  f = lambda x: jnp.sum(max_pool(x, (3, 3), (2, 2), "SAME") ** 3)
  g = lambda x: jnp.sum(nn.max_pool(x, (3, 3), (2, 2), "SAME") ** 3)
  hvp = lambda fn: jax.jvp(jax.grad(fn), (x,), (jnp.ones_like(x),))[1]
  np.testing.assert_allclose(hvp(f), hvp(g), rtol=1e-6)


def test_p1_network_gradient_equals_nn_max_pool_version(monkeypatch):
  _, options = deepobs.PRESETS["p1_fmnist"]
  model = deepobs.ConvPoolNet(**options)
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.random((8, 28, 28, 1)), jnp.float32)
  y = jnp.asarray(np.arange(8) % 10)
  params = model.init(jax.random.key(0), x)["params"]

  def loss_and_grad():
    fn = lambda p: losses.softmax_cross_entropy(
        model.apply({"params": p}, x), y)
    return jax.jit(jax.value_and_grad(fn))(params)

  loss_new, grad_new = loss_and_grad()
  monkeypatch.setattr(deepobs, "max_pool", nn.max_pool)
  loss_ref, grad_ref = loss_and_grad()
  assert float(loss_new) == float(loss_ref)
  jax.tree.map(np.testing.assert_array_equal, grad_new, grad_ref)


def test_bad_arguments():
  with pytest.raises(ValueError, match="window sizes"):
    max_pool(jnp.zeros((1, 4, 4, 1)), (2,), (2,))
  with pytest.raises(ValueError, match="floating-point"):
    max_pool(jnp.zeros((1, 4, 4, 1), jnp.int32), (2, 2), (2, 2))
