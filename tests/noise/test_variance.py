"""nnopt.stats.moments / captured_moments and nnopt.noise_aware.ema against
independent oracles: numpy over explicit per-example
gradients, a Python loop over single examples, Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import losses
from nnopt.stats.capture import capture, layer_info
from nnopt.models import FNN, VGG, Conv, Dense, init_params
from nnopt.noise_aware.ema import ema_rho, ema_variance
from nnopt.stats.captured_moments import capture_moments, moments_from_stats
from nnopt.stats.moments import (VarianceError, batch_moments,
                                 model_example_loss, moments_from_per_example,
                                 per_example_grads)
import flax.linen as nn


def _loop_grads(example_loss, params, x, y):
  """Oracle: one jax.grad call per example, stacked with numpy."""
  grads = [jax.grad(example_loss)(params, x[i], y[i]) for i in range(len(x))]
  return jax.tree.map(lambda *g: np.stack([np.asarray(a) for a in g]), *grads)


def _numpy_moments(G, w, ddof=1):
  w = np.asarray(w, np.float64)
  m = w.sum()
  out = {}
  for path, g in jax.tree_util.tree_flatten_with_path(G)[0]:
    g = np.asarray(g, np.float64)[w > 0]
    key = jax.tree_util.keystr(path)
    out[key] = dict(mean=g.mean(0), var=np.var(g, axis=0, ddof=ddof),
                    sq_sum=(g * g).sum(0))
  return m, out


def _compare(mom, G, w, ddof=1, rtol=2e-4, atol=1e-7):
  m, ref = _numpy_moments(G, w, ddof)
  assert float(mom.count) == m
  trace = 0.0
  leaves = {jax.tree_util.keystr(p): v for p, v in
            jax.tree_util.tree_flatten_with_path(mom.variance)[0]}
  means = {jax.tree_util.keystr(p): v for p, v in
           jax.tree_util.tree_flatten_with_path(mom.mean)[0]}
  sqs = {jax.tree_util.keystr(p): v for p, v in
         jax.tree_util.tree_flatten_with_path(mom.sq_sum)[0]}
  mv = {jax.tree_util.keystr(p): v for p, v in
        jax.tree_util.tree_flatten_with_path(mom.mean_variance)[0]}
  for key, r in ref.items():
    scale = max(np.abs(r["var"]).max(), 1e-12)
    np.testing.assert_allclose(leaves[key], r["var"], rtol=rtol, atol=atol * scale + 1e-9)
    np.testing.assert_allclose(means[key], r["mean"], rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(sqs[key], r["sq_sum"], rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(mv[key], r["var"] / m, rtol=rtol, atol=1e-9)
    trace += r["var"].sum()
  np.testing.assert_allclose(float(mom.trace), trace, rtol=1e-4)


def _mlp_problem(batch=12, seed=0):
  model = FNN((7, 5, 3), activation="tanh")
  x = jax.random.normal(jax.random.key(seed), (batch, 4))
  y = jax.random.randint(jax.random.key(seed + 1), (batch,), 0, 3)
  params = init_params(model, jax.random.key(seed + 2), x)
  return model, params, x, y


@pytest.mark.parametrize("ddof", [0, 1])
def test_vmap_path_matches_loop_and_numpy(ddof):
  model, params, x, y = _mlp_problem()
  ex = model_example_loss(model, losses.softmax_cross_entropy)
  G = _loop_grads(ex, params, x, y)
  vm = jax.jit(lambda p: per_example_grads(ex, p, x, y))(params)
  for a, b in zip(jax.tree.leaves(vm), jax.tree.leaves(G)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  mom = jax.jit(lambda p: batch_moments(ex, p, x, y, ddof=ddof))(params)
  _compare(mom, G, np.ones(len(x)), ddof)


def test_masked_and_chunked_equal_plain_on_real_rows():
  model, params, x, y = _mlp_problem(batch=13)
  ex = model_example_loss(model, losses.softmax_cross_entropy)
  w = jnp.array([1.0] * 10 + [0.0] * 3)
  G = _loop_grads(ex, params, x, y)
  f = jax.jit(lambda p, w: batch_moments(ex, p, x, y, weights=w, chunk_size=4))
  _compare(f(params, w), G, np.asarray(w))
  plain = batch_moments(ex, params, x[:10], y[:10])
  chunked = f(params, w)
  np.testing.assert_allclose(float(chunked.trace), float(plain.trace), rtol=1e-5)


@pytest.mark.parametrize("loss", [losses.softmax_cross_entropy,
                                  losses.squared_error])
def test_dense_fast_path_equals_vmap_reference_with_mask(loss):
  model, params, x, _ = _mlp_problem(batch=16)
  y = (jax.random.randint(jax.random.key(5), (16,), 0, 3)
       if loss.is_classification else jax.random.normal(jax.random.key(5), (16, 3)))
  w = jnp.array([1.0] * 11 + [0.0] * 5)

  @jax.jit
  def fast(p):
    cap = capture(model, p, x, y, loss, weights=w)
    return moments_from_stats(cap.stats, cap.grads, weights=w)

  G = _loop_grads(model_example_loss(model, loss), params, x, y)
  _compare(fast(params), G, np.asarray(w))


class _SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = jax.nn.relu(Conv(4, (3, 3), name="c0")(x))
    x = jax.nn.relu(Conv(5, (3, 3), strides=(2, 2), padding="VALID",
                         name="c1")(x))
    x = x.reshape(x.shape[0], -1)
    return Dense(3, name="out")(x)


def test_conv_exact_path_equals_vmap_reference():
  model = _SmallCNN()
  x = jax.random.normal(jax.random.key(0), (9, 7, 7, 2))
  y = jax.random.randint(jax.random.key(1), (9,), 0, 3)
  params = init_params(model, jax.random.key(2), x)
  w = jnp.array([1.0] * 7 + [0.0] * 2)
  loss = losses.softmax_cross_entropy
  G = _loop_grads(model_example_loss(model, loss), params, x, y)

  layers = layer_info(model, params, x)

  @jax.jit
  def fast(p):
    cap = capture(model, p, x, y, loss, weights=w)
    # chunks of 4 examples, the last one padded
    return moments_from_stats(cap.stats, cap.grads, weights=w, chunk_size=4,
                              layers=layers)

  _compare(fast(params), G, np.asarray(w))
  # Without infos: 7x7 -> 3x3 by a 3x3 kernel fits VALID/2 and SAME/3.
  cap = capture(model, params, x, y, loss, weights=w)
  with pytest.raises(VarianceError, match="cannot infer"):
    moments_from_stats(cap.stats, cap.grads, weights=w)
  vgg = VGG(stages=((3,),), fc=(4,), n_classes=3)
  xv = x[:, :6, :6]
  pv = init_params(vgg, jax.random.key(3), xv)
  cap = capture(vgg, pv, xv, y, loss, weights=w)
  inferred = moments_from_stats(cap.stats, cap.grads, weights=w)  # SAME/1
  _compare(inferred, _loop_grads(model_example_loss(vgg, loss), pv, xv, y),
           np.asarray(w))
  _, mom = jax.jit(lambda p: capture_moments(model, p, x, y, loss, weights=w))(params)
  _compare(mom, G, np.asarray(w))


def test_batch_of_one_is_an_error_and_single_valid_row_gives_zero():
  model, params, x, y = _mlp_problem(batch=4)
  ex = model_example_loss(model, losses.softmax_cross_entropy)
  with pytest.raises(VarianceError, match="at least 2 examples"):
    batch_moments(ex, params, x[:1], y[:1])
  with pytest.raises(VarianceError, match="at least 2 examples"):
    cap = capture(model, params, x[:1], y[:1], losses.softmax_cross_entropy)
    moments_from_stats(cap.stats, cap.grads)
  w = jnp.array([1.0, 0.0, 0.0, 0.0])
  mom = jax.jit(lambda p: batch_moments(ex, p, x, y, weights=w))(params)
  assert float(mom.trace) == 0.0
  assert all(np.all(np.isfinite(l)) for l in jax.tree.leaves(mom))


def test_mean_variance_is_unbiased_monte_carlo():
  """E[s/m] = Var[g] on linear regression with known noise (spec §7.3)."""
  rng = np.random.default_rng(0)
  d, m, trials = 3, 8, 4000
  theta = jnp.array([0.5, -1.0, 2.0])
  ex = lambda p, x, y: 0.5 * (x @ p - y) ** 2
  X = rng.normal(size=(trials, m, d)).astype(np.float32)
  Y = (X @ np.array([1.0, 0.0, 1.0]) + rng.normal(size=(trials, m))).astype(np.float32)
  f = jax.jit(jax.vmap(lambda x, y: batch_moments(ex, theta, x, y)))
  mom = f(X, Y)
  g = np.asarray(mom.mean)
  est = np.asarray(mom.mean_variance).mean(0)
  np.testing.assert_allclose(est, g.var(0, ddof=1), rtol=0.08)


def test_rho_values_and_limits():
  t = jnp.array([0, 1, 2, 5, 10, 50])
  np.testing.assert_allclose(ema_rho(0.9, t),
                             [1.0, 0.50139, 0.33579, 0.17202, 0.10077, 0.05312],
                             atol=2e-5)
  np.testing.assert_allclose(ema_rho(0.0, t), np.ones(6))
  c = lambda b, T: np.array([(1 - b) * b ** (T - s) / (1 - b ** (T + 1))
                             for s in range(T + 1)])
  for T in (0, 3, 17):
    np.testing.assert_allclose(float(ema_rho(0.8, T)), (c(0.8, T) ** 2).sum(),
                               rtol=1e-5)


def test_ema_variance_monte_carlo():
  """E[m²] = μ² + ρσ², E[ŝ] = σ² (spec §1.3: β=0.9, T=30, μ=0.3, σ=1)."""
  beta, T, mu, runs = 0.9, 30, 0.3, 100_000
  g = mu + np.random.default_rng(1).normal(size=(T, runs)).astype(np.float32)
  w = (1 - beta) * beta ** np.arange(T - 1, -1, -1) / (1 - beta ** T)
  m = (w[:, None] * g).sum(0)
  v = (w[:, None] * g * g).sum(0)
  s = jax.jit(ema_variance)(m, v, beta, T - 1)
  rho = float(ema_rho(beta, T - 1))
  np.testing.assert_allclose((m ** 2).mean(), mu ** 2 + rho, rtol=0.02)
  np.testing.assert_allclose(float(np.mean(s)), 1.0, rtol=0.01)
  assert float(jnp.max(ema_variance(m, v, 0.0, T - 1))) == 0.0
  assert float(jnp.max(ema_variance(m, v, beta, 0))) == 0.0


def test_derived_moments_of_vmapped_batches_match_numpy():
  """variance, mean_variance and sq_mean are derived on access; read outside
  a vmap they broadcast the per-batch count against every leaf."""
  rng = np.random.default_rng(1)
  per_example = {"w": rng.normal(size=(5, 7, 3, 2)).astype(np.float32),
                 "b": rng.normal(size=(5, 7)).astype(np.float32)}
  mom = jax.jit(jax.vmap(moments_from_per_example))(per_example)
  for k, v in per_example.items():
    want = v.var(axis=1, ddof=1)
    np.testing.assert_allclose(mom.variance[k], want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(mom.mean_variance[k], want / 7, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(mom.sq_mean[k], (v * v).mean(axis=1),
                               rtol=1e-5)
  trace = sum(v.var(axis=1, ddof=1).reshape(5, -1).sum(-1)
              for v in per_example.values())
  np.testing.assert_allclose(mom.trace, trace, rtol=1e-4)
