"""Kronecker factors against independent oracles: jax.jacobian Fisher blocks,
a hand-written forward pass, explicit patch loops, dense Kronecker solves."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import losses
from nnopt.stats.capture import capture, layer_info
from nnopt.models import FNN, Conv, Dense, init_params
from nnopt.stats import kronecker as factors
from nnopt.stats.geometry import GeometryError, infer_layer_info
from nnopt.preconditioning.frobenius import scale_by_frobenius

CE = losses.softmax_cross_entropy


def _mlp_pieces(params, x, layer, delta):
  """Hand-written tanh MLP; returns logits with `delta` added to layer's
  pre-activation, and the layer's input."""
  names = sorted(params)
  h, layer_input = x, None
  for i, name in enumerate(names):
    if name == layer:
      layer_input = h
    y = h @ params[name]["kernel"] + params[name]["bias"]
    if name == layer:
      y = y + delta
    h = jnp.tanh(y) if i < len(names) - 1 else y
  return h, layer_input


def _setup(batch, seed=0):
  model = FNN((5, 4, 3), activation="tanh")
  x = jax.random.normal(jax.random.key(seed), (batch, 6), jnp.float64)
  y = jax.random.randint(jax.random.key(seed + 1), (batch,), 0, 3)
  params = init_params(model, jax.random.key(seed + 2), x)
  return model, params, x, y


def _per_example_losses(params, x, y, layer, delta, labels=None):
  logits, _ = _mlp_pieces(params, x, layer, delta)
  return CE.per_example(logits, y if labels is None else labels)


@pytest.mark.parametrize("layer", ["dense_0", "dense_1", "dense_2"])
def test_empirical_fisher_block_from_jacobian(layer):
  with jax.enable_x64(True):
    model, params, x, y = _setup(6)
    cap = jax.jit(lambda p: capture(model, p, x, y, CE))(params)
    st = cap.stats[layer]
    geo = infer_layer_info(params[layer]["kernel"].shape)
    a = factors.input_factor(st.inputs, geo)
    g = factors.output_factor(st.cotangents)
    # Oracle 1: hand-written forward and per-example output gradients.
    n_out = params[layer]["kernel"].shape[1]
    zero = jnp.zeros((6, n_out))
    _, a_in = _mlp_pieces(params, x, layer, zero)
    g_hat = jax.jit(jax.grad(lambda d: jnp.sum(
        _per_example_losses(params, x, y, layer, d))))(zero)
    np.testing.assert_allclose(a, a_in.T @ a_in / 6, rtol=1e-10)
    np.testing.assert_allclose(g, g_hat.T @ g_hat / 6, rtol=1e-10, atol=1e-14)

    # Oracle 2: the exact empirical Fisher block with jax.jacobian.
    def losses_of_kernel(k):
      p = {**params, layer: {**params[layer], "kernel": k}}
      return _per_example_losses(p, x, y, layer, 0.0)

    jac = jax.jit(jax.jacobian(losses_of_kernel))(params[layer]["kernel"])
    vecs = jac.reshape(6, -1)  # row-major vec of the flax kernel per example
    fisher = vecs.T @ vecs / 6
    per_example = sum(np.kron(np.outer(a_in[i], a_in[i]),
                              np.outer(g_hat[i], g_hat[i])) for i in range(6)) / 6
    np.testing.assert_allclose(fisher, per_example, rtol=1e-9, atol=1e-14)
    # For a single example the Kronecker factorization is exact (A ⊗ G order).
    a1 = factors.input_factor(st.inputs[:1], geo)
    g1 = factors.output_factor(st.cotangents[:1] * 6)  # cotangent of 1-example mean
    np.testing.assert_allclose(np.kron(a1, g1), np.outer(vecs[0], vecs[0]),
                               rtol=1e-9, atol=1e-14)


def test_sampled_fisher_converges_to_exact_fisher_factor():
  with jax.enable_x64(True):
    model, params, x, y = _setup(4, seed=3)
    layer, samples = "dense_1", 4000
    cap = jax.jit(lambda p, k: capture(model, p, x, y, CE,
                                       fisher_samples=samples, rng=k))(
                                           params, jax.random.key(7))
    g_mc = factors.output_factor(cap.stats[layer].sampled_cotangents,
                                 sampled=True)
    # Exact Fisher over the model's label distribution: enumerate classes.
    zero = jnp.zeros((4, 4))
    logits, _ = _mlp_pieces(params, x, layer, zero)
    probs = jax.nn.softmax(logits)
    exact = 0
    for c in range(3):
      labels = jnp.full((4,), c)
      gc = jax.jit(jax.grad(lambda d: jnp.sum(_per_example_losses(
          params, x, y, layer, d, labels))))(zero)
      exact = exact + (gc * probs[:, c:c + 1]).T @ gc / 4
    err = np.linalg.norm(g_mc - exact) / np.linalg.norm(exact)
    assert err < 0.08, err
    # Output layer with model samples: G_L 1 = 0 up to MC noise? No: exactly,
    # since every sampled CE gradient softmax - onehot sums to zero.
    g_out = factors.output_factor(cap.stats["dense_2"].sampled_cotangents,
                                  sampled=True)
    np.testing.assert_allclose(g_out @ np.ones(3), 0.0, atol=1e-12)


def test_weights_mask_and_centering():
  with jax.enable_x64(True):
    model, params, x, y = _setup(8, seed=5)
    w = jnp.array([1.0] * 5 + [0.0] * 3)
    run = jax.jit(lambda x, y, w: capture(model, params, x, y, CE, weights=w))
    cap, ref = run(x, y, w), run(x[:5], y[:5], None)
    geo = infer_layer_info(params["dense_1"]["kernel"].shape)
    for centered in (False, True):
      a = factors.input_factor(cap.stats["dense_1"].inputs, geo, w,
                               centered=centered)
      a_ref = factors.input_factor(ref.stats["dense_1"].inputs, geo,
                                   centered=centered)
      g = factors.output_factor(cap.stats["dense_1"].cotangents, w,
                                centered=centered)
      g_ref = factors.output_factor(ref.stats["dense_1"].cotangents,
                                    centered=centered)
      np.testing.assert_allclose(a, a_ref, rtol=1e-10)
      np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-15)
    # Centered = numpy's biased covariance of inputs / per-example gradients.
    inputs = np.asarray(ref.stats["dense_1"].inputs)
    per_example = 5 * np.asarray(ref.stats["dense_1"].cotangents)
    np.testing.assert_allclose(
        factors.input_factor(inputs, geo, centered=True),
        np.cov(inputs.T, bias=True), rtol=1e-10)
    np.testing.assert_allclose(
        factors.output_factor(ref.stats["dense_1"].cotangents, centered=True),
        np.cov(per_example.T, bias=True), rtol=1e-9, atol=1e-15)


class _ConvNet(nn.Module):
  strides: tuple = (1, 1)
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x):
    x = Conv(4, (3, 3), self.strides, self.padding, name="conv")(x)
    return Dense(3, name="out")(jnp.tanh(x).reshape(x.shape[0], -1))


def _patch_loop(x, kh, kw, stride, padding):
  """Explicit unfolding in HWC order, one output position at a time."""
  if padding == "SAME":
    x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out_h = -(-(x.shape[1] - 2 * (kh // 2)) // stride)
    out_w = -(-(x.shape[2] - 2 * (kw // 2)) // stride)
  else:
    out_h = (x.shape[1] - kh) // stride + 1
    out_w = (x.shape[2] - kw) // stride + 1
  rows = np.zeros((x.shape[0], out_h * out_w, kh * kw * x.shape[3]))
  for i in range(out_h):
    for j in range(out_w):
      window = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
      rows[:, i * out_w + j] = window.reshape(x.shape[0], -1)
  return rows


@pytest.mark.parametrize("stride,padding", [(1, "SAME"), (2, "VALID")])
def test_conv_factors_against_unfolded_reference(stride, padding):
  with jax.enable_x64(True):
    model = _ConvNet((stride, stride), padding)
    x = jax.random.normal(jax.random.key(0), (3, 7, 7, 2), jnp.float64)
    y = jax.random.randint(jax.random.key(1), (3,), 0, 3)
    params = init_params(model, jax.random.key(2), x)
    cap = jax.jit(lambda p: capture(model, p, x, y, CE))(params)
    st = cap.stats["conv"]
    info = layer_info(model, params, x)["conv"]
    geo = info
    assert geo.strides == (stride, stride) and geo.padding == padding
    if padding == "SAME":  # stride 1 'SAME' is also inferred from shapes
      assert infer_layer_info(params["conv"]["kernel"].shape, st.inputs.shape,
                              st.cotangents.shape, use_bias=True) == geo
    rows = _patch_loop(np.asarray(x), 3, 3, stride, padding)
    a_ref = np.einsum("nti,ntj->ij", rows, rows) / (rows.shape[0] * rows.shape[1])
    g_hat = 3 * np.asarray(st.cotangents).reshape(3, -1, 4)
    g_ref = np.einsum("nti,ntj->ij", g_hat, g_hat) / 3
    np.testing.assert_allclose(factors.input_factor(st.inputs, geo), a_ref,
                               rtol=1e-10)
    np.testing.assert_allclose(factors.output_factor(st.cotangents), g_ref,
                               rtol=1e-10, atol=1e-15)
    # The unfolded rows reproduce the kernel gradient (patch order = HWIO).
    kgrad = np.einsum("nti,ntj->ij", rows, np.asarray(st.cotangents).reshape(
        3, -1, 4))
    np.testing.assert_allclose(kgrad.reshape(3, 3, 2, 4),
                               cap.grads["conv"]["kernel"], rtol=1e-9,
                               atol=1e-13)
    # Kronecker identity for the conv kernel with a dense solve.
    gx, gy = 0.3, 0.05
    tx = scale_by_frobenius(gx, gy, fisher="empirical",
                            layer_info={"conv": info})
    out, _ = jax.jit(lambda g, s, st: tx.update(g, s, stats=st))(
        cap.grads, tx.init(params), cap.stats)
    dense = np.kron(a_ref + gx * np.eye(18), g_ref + gy * np.eye(4))
    expected = np.linalg.solve(dense, kgrad.reshape(-1))
    np.testing.assert_allclose(np.asarray(out["conv"]["kernel"]).reshape(-1),
                               expected, rtol=1e-8, atol=1e-12)


def test_conv_geometry_ambiguity_is_reported():
  # 7 -> 3 with a 3x3 kernel fits SAME/stride 3 and VALID/stride 2.
  with pytest.raises(GeometryError, match="layer_info"):
    infer_layer_info((3, 3, 1, 2), (1, 7, 7, 1), (1, 3, 3, 2))
  # ... and the preconditioner says which layer and what to pass.
  model = _ConvNet((2, 2), "VALID")
  x = jnp.ones((2, 7, 7, 2))
  params = init_params(model, jax.random.key(0), x)
  cap = capture(model, params, x, jnp.zeros((2,), jnp.int32), CE)
  tx = scale_by_frobenius(fisher="empirical")
  with pytest.raises(factors.FactorError, match="'conv'.*layer_info="):
    tx.update(cap.grads, tx.init(params), stats=cap.stats)
