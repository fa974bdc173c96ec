"""capture() against autodiff: Dense and Conv, true and sampled labels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from nnopt import losses
from nnopt.stats.capture import capture, conv_patches, layer_gradients, layer_info
from nnopt.models import FNN, VGG, ResNet, init_params


def _layer_params(params, name):
  node = params
  for key in name.split("/"):
    node = node[key]
  return node


def _check_against_autodiff(model, x, y, loss, weights=None):
  params = init_params(model, jax.random.key(0), x)

  @jax.jit
  def run(params):
    return capture(model, params, x, y, loss, weights=weights)

  cap = run(params)
  ref_loss, ref_grads = jax.value_and_grad(
      lambda p: loss(model.apply({"params": p}, x), y, weights))(params)
  np.testing.assert_allclose(cap.loss, ref_loss, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(cap.grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  infos = layer_info(model, params, x)
  assert set(infos) == set(cap.stats)
  n_params = len(traverse_util.flatten_dict(params))
  n_rebuilt = 0
  for name, info in infos.items():
    rebuilt = layer_gradients(cap.stats[name], info)
    ref = _layer_params(ref_grads, name)
    for key, value in rebuilt.items():
      np.testing.assert_allclose(value, ref[key], rtol=2e-4, atol=1e-6)
      n_rebuilt += 1
  assert n_rebuilt == n_params  # every parameter comes from some layer's stats
  return cap, params


def test_dense_fnn_matches_autodiff():
  x = jax.random.normal(jax.random.key(1), (16, 7))
  y = jax.random.randint(jax.random.key(2), (16,), 0, 3)
  _check_against_autodiff(FNN((9, 8, 3), activation="tanh"), x, y,
                          losses.softmax_cross_entropy)


def test_resnet_with_weights_and_squared_error():
  x = jax.random.normal(jax.random.key(1), (12, 2))
  y = jax.random.normal(jax.random.key(2), (12, 2))
  w = jnp.array([1.0] * 9 + [0.0] * 3)
  cap, _ = _check_against_autodiff(ResNet(3, 2, 2, form="reference"), x, y,
                                   losses.squared_error, weights=w)
  # Padded examples get exactly zero cotangent.
  for stats in cap.stats.values():
    assert np.all(np.asarray(stats.cotangents[9:]) == 0.0)


def test_conv_via_patches_matches_autodiff():
  x = jax.random.normal(jax.random.key(3), (4, 8, 8, 3))
  y = jax.random.randint(jax.random.key(4), (4,), 0, 5)
  model = VGG(stages=((4, 6), (5,)), fc=(7,), n_classes=5)
  _check_against_autodiff(model, x, y, losses.softmax_cross_entropy)


def test_conv_patches_reproduce_strided_valid_convolution():
  from nnopt.models import Conv
  x = jax.random.normal(jax.random.key(5), (2, 9, 9, 3))
  conv = Conv(4, kernel_size=(3, 2), strides=(2, 1), padding="VALID")
  params = conv.init(jax.random.key(6), x)["params"]
  info = layer_info(conv, params, x)[""]
  out = conv.apply({"params": params}, x)
  patches = conv_patches(x, info)
  rebuilt = patches @ params["kernel"].reshape(-1, 4) + params["bias"]
  np.testing.assert_allclose(rebuilt, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", [losses.softmax_cross_entropy,
                                  losses.squared_error])
def test_sampled_cotangents_are_pullbacks_of_sampled_targets(loss):
  model = FNN((6, 3))
  x = jax.random.normal(jax.random.key(1), (10, 4))
  y = (jax.random.randint(jax.random.key(2), (10,), 0, 3)
       if loss.is_classification else jax.random.normal(jax.random.key(2), (10, 3)))
  params = init_params(model, jax.random.key(0), x)
  rng = jax.random.key(7)
  cap = jax.jit(lambda p: capture(model, p, x, y, loss, fisher_samples=3,
                                  rng=rng))(params)
  keys = jax.random.split(rng, 3)
  outputs = model.apply({"params": params}, x)
  for s in range(3):
    t = loss.sample_targets(keys[s], outputs)
    ref = capture(model, params, x, t, loss)
    for name in cap.stats:
      np.testing.assert_allclose(cap.stats[name].sampled_cotangents[s],
                                 ref.stats[name].cotangents, rtol=1e-5,
                                 atol=1e-7)
  # Sampling matches the predictive distribution on average (Fisher identity:
  # E_y[∇ℓ] = 0 at the model's own distribution).
  many = capture(model, params, x, y, loss, fisher_samples=4000, rng=rng)
  mean_cot = jnp.mean(many.stats["dense_1"].sampled_cotangents, axis=0)
  assert float(jnp.max(jnp.abs(mean_cot))) < 0.01
