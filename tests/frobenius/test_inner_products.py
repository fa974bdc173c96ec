"""scale_by_inner_products against the Riesz / variational identities (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt.preconditioning.inner_products import (InnerProductError, euclidean,
                                                  fixed_spd, inner_product_sgd,
                                                  scale_by_inner_products,
                                                  scaled_identity, sobolev_grid)


def _spd(rng, n):
  q = rng.standard_normal((n, n))
  return q @ q.T + 0.5 * np.eye(n)


def _layer(rng, m, n):
  return {"layer": {"kernel": rng.standard_normal((m, n)),
                    "bias": rng.standard_normal(n)}}


def test_riesz_identity_and_variational_characterization():
  rng = np.random.default_rng(0)
  m, n = 5, 3
  with jax.enable_x64(True):
    rx, ry = _spd(rng, m), _spd(rng, n)
    grads = _layer(rng, m, n)
    tx = scale_by_inner_products({"layer": (fixed_spd(rx), fixed_spd(ry))})
    out, _ = jax.jit(tx.update)(jax.tree.map(jnp.asarray, grads), tx.init(grads))
    p_k = np.asarray(out["layer"]["kernel"])
    e_k = grads["layer"]["kernel"]
    # Thesis layout W = Kᵀ: (P, D)_{X→Y} = tr(R_X^{-1} Pᵀ R_Y D) = tr(Eᵀ D).
    p_w, e_w = p_k.T, e_k.T
    for _ in range(4):
      d_w = rng.standard_normal((n, m))
      lhs = np.trace(np.linalg.inv(rx) @ p_w.T @ ry @ d_w)
      np.testing.assert_allclose(lhs, np.trace(e_w.T @ d_w), rtol=1e-10)
    # -P minimizes <E, δ> + ½ (δ, δ)_{X→Y}; row-major vec of the flax kernel
    # has Gram matrix R_X^{-1} ⊗ R_Y.
    gram = np.kron(np.linalg.inv(rx), ry)
    delta = np.linalg.solve(gram, -e_k.reshape(-1))
    np.testing.assert_allclose(delta, -p_k.reshape(-1), rtol=1e-9, atol=1e-12)
    # Bias: R_Y^{-1} ∇_b (Remark 5.3).
    np.testing.assert_allclose(out["layer"]["bias"],
                               np.linalg.solve(ry, grads["layer"]["bias"]),
                               rtol=1e-10)


def test_identity_inner_products_are_exactly_sgd():
  rng = np.random.default_rng(1)
  grads = jax.tree.map(jnp.asarray, {**_layer(rng, 4, 3),
                                     "other": {"kernel": jnp.ones((3, 2))}})
  opt = optax.chain(scale_by_inner_products({"*": (euclidean(), euclidean())}),
                    optax.scale_by_learning_rate(0.1))
  ours, _ = jax.jit(opt.update)(grads, opt.init(grads))
  sgd, _ = optax.sgd(0.1).update(grads, optax.sgd(0.1).init(grads))
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(sgd)):
    np.testing.assert_array_equal(a, b)


def test_scaled_identity_scales_kernel_and_bias():
  rng = np.random.default_rng(2)
  grads = jax.tree.map(jnp.asarray, _layer(rng, 4, 3))
  tx = scale_by_inner_products({"layer": (scaled_identity(3.0),
                                          scaled_identity(2.0))})
  out, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(out["layer"]["kernel"],
                             grads["layer"]["kernel"] * 3.0 / 2.0, rtol=1e-6)
  np.testing.assert_allclose(out["layer"]["bias"], grads["layer"]["bias"] / 2.0,
                             rtol=1e-6)


def test_sobolev_grid_energy_and_first_layer_update():
  h, w = 4, 5
  ip = sobolev_grid(h, w, mass=0.5, stiffness=2.0)
  rng = np.random.default_rng(3)
  u = rng.standard_normal((h, w))
  # Independent oracle: the H¹ energy written with finite differences.
  energy = (0.5 * np.sum(u * u) + 2.0 * (np.sum(np.diff(u, axis=0) ** 2)
                                          + np.sum(np.diff(u, axis=1) ** 2)))
  r = np.asarray(ip.gram, np.float64)
  np.testing.assert_allclose(u.reshape(-1) @ r @ u.reshape(-1), energy,
                             rtol=1e-5)
  assert np.linalg.eigvalsh(r).min() > 0.49
  # Example 5.4: Sobolev on X_0, Euclidean on Y_1 gives P_K = R_X K.
  grads = {"dense_0": {"kernel": jnp.asarray(rng.standard_normal((h * w, 3)),
                                             jnp.float32)}}
  tx = scale_by_inner_products({"dense_0": (ip, euclidean())})
  out, _ = jax.jit(tx.update)(grads, tx.init(grads))
  np.testing.assert_allclose(out["dense_0"]["kernel"],
                             r @ np.asarray(grads["dense_0"]["kernel"]),
                             rtol=1e-4, atol=1e-5)


def test_bad_inner_products_are_rejected():
  with pytest.raises(InnerProductError, match="positive definite"):
    fixed_spd(np.diag([1.0, -1.0]))
  with pytest.raises(InnerProductError, match="symmetric"):
    fixed_spd(np.array([[1.0, 2.0], [0.0, 1.0]]))
  with pytest.raises(InnerProductError, match="scale > 0"):
    scaled_identity(0.0)
  tx = scale_by_inner_products({"layer": (fixed_spd(np.eye(3)), euclidean())})
  with pytest.raises(InnerProductError, match="dimension 3"):
    tx.init({"layer": {"kernel": jnp.ones((4, 2))}})


def test_inner_product_sgd_under_optax_wrappers_and_dtypes():
  rng = np.random.default_rng(4)
  rx, ry = _spd(rng, 4), _spd(rng, 3)
  ips = {"layer": (fixed_spd(rx.astype(np.float32)),
                   fixed_spd(ry.astype(np.float32)))}
  grads = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), _layer(rng, 4, 3))
  expected = {"kernel": -0.1 * rx @ np.asarray(grads["layer"]["kernel"])
                        @ np.linalg.inv(ry),
              "bias": -0.1 * np.linalg.solve(ry, grads["layer"]["bias"])}
  for opt in (inner_product_sgd(0.1, inner_products=ips),
              optax.inject_hyperparams(inner_product_sgd)(
                  learning_rate=0.1, inner_products=ips),
              optax.MultiSteps(inner_product_sgd(0.1, inner_products=ips), 2),
              optax.apply_if_finite(inner_product_sgd(0.1, inner_products=ips),
                                    2)):
    shapes = jax.eval_shape(opt.init, grads)
    state = opt.init(grads)
    assert jax.tree.structure(shapes) == jax.tree.structure(state)
    step = jax.jit(opt.update)
    for _ in range(2):
      out, state = step(grads, state, grads)
    assert step._cache_size() == 1
    # (MultiSteps: the second step applies the mean of two equal gradients.)
    for leaf in ("kernel", "bias"):
      np.testing.assert_allclose(out["layer"][leaf], expected[leaf],
                                 rtol=1e-4, atol=1e-6)
  # bfloat16 in and out, solved in float32 on the same rounded numbers.
  to16 = lambda t: jax.tree.map(lambda v: v.astype(jnp.bfloat16), t)
  opt = inner_product_sgd(0.1, inner_products=ips)
  out16, _ = opt.update(to16(grads), opt.init(to16(grads)))
  ref, _ = opt.update(jax.tree.map(lambda v: v.astype(jnp.float32),
                                   to16(grads)), opt.init(grads))
  for a, b in zip(jax.tree.leaves(out16), jax.tree.leaves(ref)):
    assert a.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=1e-2,
                               atol=1e-2 * np.abs(b).max())
  with jax.enable_x64(True):
    g64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), grads)
    out64, _ = opt.update(g64, opt.init(g64))
    assert all(l.dtype == jnp.float64 for l in jax.tree.leaves(out64))
