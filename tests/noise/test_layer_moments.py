"""nnopt.stats.layer_moments (patches / fused / Gram paths, chunking) and
captured_moments.trace_from_stats against vmap(grad) per-example gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import losses

from nnopt.stats import layer_moments
from nnopt.stats.capture import capture, conv_patches, layer_info
from nnopt.models import Conv, Dense, init_params
from nnopt.stats.captured_moments import moments_from_stats, trace_from_stats
from nnopt.stats.moments import model_example_loss, per_example_grads


class _CNN(nn.Module):
  """Three conv geometries (SAME/1, VALID/2, explicit padding) and a Dense
  layer applied to a sequence (weights shared over positions)."""

  @nn.compact
  def __call__(self, x):
    x = jax.nn.relu(Conv(6, (3, 3), name="c0")(x))
    x = jax.nn.relu(Conv(5, (3, 3), strides=(2, 2), padding="VALID",
                         name="c1")(x))
    x = jax.nn.relu(Conv(4, (2, 3), strides=(1, 2),
                         padding=((1, 0), (0, 2)), use_bias=False,
                         name="c2")(x))
    x = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, positions, channels)
    x = jnp.tanh(Dense(3, name="seq")(x))
    return Dense(3, name="out")(x.reshape(x.shape[0], -1))


def _problem(batch=10):
  model = _CNN()
  x = jax.random.normal(jax.random.key(0), (batch, 9, 9, 2))
  y = jax.random.randint(jax.random.key(1), (batch,), 0, 3)
  params = init_params(model, jax.random.key(2), x)
  w = jnp.array([1.0] * (batch - 3) + [0.0, 2.0, 0.0])
  return model, params, x, y, w


def _reference(model, params, x, y, w):
  """Σ_n w_n G_n² per coordinate and tr Σ̂ from vmap(grad), in float64."""
  loss = losses.softmax_cross_entropy
  grads = jax.jit(lambda p: per_example_grads(
      model_example_loss(model, loss), p, x, y))(params)
  w64 = np.asarray(w, np.float64)
  m = w64.sum()
  sq = jax.tree.map(
      lambda g: np.einsum("n,n...->...", w64, np.asarray(g, np.float64) ** 2),
      grads)
  mean = jax.tree.map(
      lambda g: np.einsum("n,n...->...", w64, np.asarray(g, np.float64)) / m,
      grads)
  q_total = sum(np.sum(v) for v in jax.tree.leaves(sq))
  g_total = sum(np.sum(v * v) for v in jax.tree.leaves(mean))
  trace = (q_total - m * g_total) / (m - 1)
  return sq, q_total, trace


def _stats(model, params, x, y, w):
  return jax.jit(lambda p: capture(model, p, x, y,
                                   losses.softmax_cross_entropy,
                                   weights=w))(params)


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 3, 100])
def test_sq_sum_paths_equal_vmap_reference(monkeypatch, masked, chunk_size):
  model, params, x, y, w = _problem()
  if not masked:
    w = jnp.ones_like(w)
  if chunk_size is None:  # automatic chunks, small enough to pad a chunk
    monkeypatch.setattr(layer_moments, "CHUNK_FLOATS", 1500)
  layers = layer_info(model, params, x)
  cap = _stats(model, params, x, y, w)
  mom = jax.jit(lambda cap: moments_from_stats(
      cap.stats, cap.grads, weights=w, layers=layers,
      chunk_size=chunk_size))(cap)
  sq, _, trace = _reference(model, params, x, y, w)
  for got, want in zip(jax.tree.leaves(mom.sq_sum), jax.tree.leaves(sq)):
    np.testing.assert_allclose(got, want, rtol=2e-4,
                               atol=1e-6 * np.abs(want).max())
  np.testing.assert_allclose(float(mom.trace), trace, rtol=1e-4)


@pytest.mark.parametrize("method", ["auto", "patches", "gram"])
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_trace_paths_equal_vmap_reference(method, chunk_size):
  model, params, x, y, w = _problem()
  layers = layer_info(model, params, x)
  cap = _stats(model, params, x, y, w)
  tr = jax.jit(lambda cap: trace_from_stats(
      cap.stats, cap.grads, weights=w, layers=layers, method=method,
      chunk_size=chunk_size))(cap)
  _, q_total, trace = _reference(model, params, x, y, w)
  np.testing.assert_allclose(float(tr.count), float(jnp.sum(w)))
  np.testing.assert_allclose(float(tr.sq_norm_sum), q_total, rtol=1e-5)
  np.testing.assert_allclose(float(tr.trace), trace, rtol=1e-4)
  mom = moments_from_stats(cap.stats, cap.grads, weights=w, layers=layers)
  np.testing.assert_allclose(float(tr.trace), float(mom.trace), rtol=1e-5)
  np.testing.assert_allclose(
      float(tr.grad_sq_norm),
      sum(float(jnp.sum(g * g)) for g in jax.tree.leaves(cap.grads)),
      rtol=1e-6)


def test_auto_picks_gram_for_few_positions_and_patches_for_many():
  model, params, x, y, w = _problem()
  layers = layer_info(model, params, x)
  cap = _stats(model, params, x, y, w)
  picks = {name: layer_moments.norm_method(st, layers[name])
           for name, st in cap.stats.items()}
  # The rule: Gram when P²(K + C_out + 1) < P·K·C_out.
  assert picks["c0"] == "patches"  # P = 81, K = 18, C_out = 6
  assert picks["seq"] == "patches"  # P = 8 tokens, K = 4, C_out = 3
  assert picks["out"] == "dense"
  big = layer_moments.LayerStats(jnp.zeros((2, 2, 2, 64)),
                                 jnp.zeros((2, 2, 2, 64)))
  info = layer_moments.LayerInfo("conv", True, (3, 3, 64, 64), (1, 1),
                                 "SAME")
  assert layer_moments.norm_method(big, info) == "gram"


def test_conv_patches_times_kernel_is_the_convolution():
  x = jax.random.normal(jax.random.key(3), (2, 7, 8, 3))
  kernel = jax.random.normal(jax.random.key(4), (3, 2, 3, 5))
  for strides, padding in [((1, 1), "SAME"), ((2, 1), "VALID"),
                           ((2, 3), "SAME"), ((1, 2), ((2, 1), (0, 1)))]:
    info = layer_moments.LayerInfo("conv", True, (3, 2, 3, 5), strides,
                                   padding)
    want = jax.lax.conv_general_dilated(
        x, kernel, strides, padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST)
    patches = conv_patches(x, info)
    np.testing.assert_allclose(patches @ kernel.reshape(-1, 5), want,
                               atol=1e-5)


def test_auto_chunk_prefers_divisors():
  assert layer_moments.auto_chunk(512, 1000, budget=64_000) == 64
  assert layer_moments.auto_chunk(100, 1000, budget=64_000) == 50
  assert layer_moments.auto_chunk(97, 1000, budget=64_000) == 64
  assert layer_moments.auto_chunk(8, 1000, budget=10**9) == 8
  assert layer_moments.auto_chunk(8, 10**9, budget=10) == 1


@pytest.mark.parametrize("from_input", [True, False])
def test_patch_gram_paths_equal_gram_of_conv_patches(monkeypatch, from_input):
  monkeypatch.setattr(layer_moments, "_gram_costs",
                      lambda *_: (1, 0) if from_input else (0, 1))
  x = jax.random.normal(jax.random.key(4), (2, 7, 6, 3))
  for strides, padding in [((1, 1), "SAME"), ((2, 1), "VALID"),
                           ((2, 3), "SAME"), ((1, 2), ((2, 1), (0, 1)))]:
    info = layer_moments.LayerInfo("conv", True, (3, 2, 3, 5), strides,
                                   padding)
    p = conv_patches(x, info)
    want = jnp.einsum("npk,nqk->npq", p.reshape(2, -1, p.shape[-1]),
                      p.reshape(2, -1, p.shape[-1]))
    got = layer_moments.patch_gram(x, info, p.shape[1:3])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
