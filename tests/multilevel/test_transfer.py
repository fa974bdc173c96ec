"""Transfer operators: adjointness (jax.linear_transpose), R∘P = I, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt.models.odenet import ODEResNet, same_conv
from nnopt.multilevel import (TransferError, adjoint_constant, avg_pool2,
                              basis_kernel, check_transfer, compose,
                              depth_prolongation_matrix,
                              depth_restriction_matrix, depth_transfer,
                              eigen_restriction, eigen_transfer,
                              identity_transfer, kernel_to_basis,
                              matrix_transfer, operator_norm, pinv_restriction,
                              prolong_transpose, replicate2,
                              resolution_transfer)


def tree_allclose(a, b, atol=1e-5):
  return all(np.allclose(x, y, atol=atol)
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))) and (
                 jax.tree.structure(a) == jax.tree.structure(b))


def random_like(key, tree):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten([jax.random.normal(k, x.shape)
                            for k, x in zip(keys, leaves)])


def spd(n, seed=0):
  m = np.random.default_rng(seed).normal(size=(n, n))
  return jnp.asarray(m @ m.T + n * np.eye(n), jnp.float32)


@pytest.mark.parametrize("which", ["largest", "smallest", "random"])
def test_eigen_transfer_is_orthonormal_projection(which):
  A = spd(12)
  t = eigen_transfer(A, 5, which, jax.random.key(1))
  R = eigen_restriction(A, 5, which, jax.random.key(1))
  # Lemma 3.7: R P = I, P R_g is the orthogonal projection onto the eigvecs.
  np.testing.assert_allclose(R @ R.T, np.eye(5), atol=1e-5)
  PR = jax.vmap(lambda v: t.prolong(t.restrict_grad(v)))(jnp.eye(12))
  np.testing.assert_allclose(PR @ PR, PR, atol=1e-5)
  np.testing.assert_allclose(PR, PR.T, atol=1e-5)
  # the rows span an A-invariant subspace: A commutes with PR (Lemma 3.9.1).
  np.testing.assert_allclose(A @ PR, PR @ A, atol=1e-3)
  w, v = np.linalg.eigh(np.asarray(A, np.float64))
  if which == "largest":
    np.testing.assert_allclose(np.abs(R @ v[:, -5:]), np.eye(5), atol=1e-4)
  # adjointness with c = 1, against jax.linear_transpose
  y = jax.random.normal(jax.random.key(2), (12,))
  np.testing.assert_allclose(t.restrict_grad(y),
                             prolong_transpose(t, jnp.zeros(5))(y), atol=1e-5)


def test_matrix_transfer_and_pinv():
  P = jnp.asarray(np.random.default_rng(0).normal(size=(7, 3)), jnp.float32)
  R = pinv_restriction(P)
  np.testing.assert_allclose(R, np.linalg.pinv(np.asarray(P)), atol=1e-5)
  t = matrix_transfer(R, P=P, R_g=P.T)
  np.testing.assert_allclose(t.restrict_params(t.prolong(jnp.arange(3.))),
                             jnp.arange(3.), atol=1e-5)
  c, spread = adjoint_constant(t, jnp.zeros(7), jnp.zeros(3), jax.random.key(0))
  assert abs(c - 1) < 1e-4 and spread < 1e-4
  np.testing.assert_allclose(
      operator_norm(t.prolong, jnp.zeros(3), jax.random.key(0)),
      np.linalg.norm(np.asarray(P), 2), rtol=1e-4)
  with pytest.raises(TransferError, match="length 7"):
    t.restrict_params(jnp.zeros(6))
  with pytest.raises(TransferError):
    matrix_transfer(R, P=P.T)
  with pytest.raises(TransferError, match="rank"):
    pinv_restriction(jnp.ones((4, 2)))


def stacked_tree(n, key=0):
  rng = np.random.default_rng(key)
  normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
  return {"block_0": {"kernel": normal(n, 3, 3, 2, 2), "scale": normal(n, 2)},
          "fc": {"kernel": normal(5, 3)}}


@pytest.mark.parametrize("kind,n_coarse", [("constant", 3), ("linear", 3),
                                           ("linear_odd", 3)])
def test_depth_transfer(kind, n_coarse):
  t = depth_transfer(kind)
  P = depth_prolongation_matrix(n_coarse, kind)
  n_fine = P.shape[0]
  fine, coarse = stacked_tree(n_fine), stacked_tree(n_coarse, 1)
  check_transfer(t, fine, coarse)
  restrict_then_prolong = jax.jit(lambda c: t.restrict_params(t.prolong(c)))
  assert tree_allclose(restrict_then_prolong(coarse), coarse)  # R P = I
  # R_g = Pᵀ exactly (jax.linear_transpose oracle), so c = 1.
  transpose = prolong_transpose(t, coarse)
  assert tree_allclose(t.restrict_grad(fine), transpose(fine))
  c, spread = adjoint_constant(t, fine, coarse, jax.random.key(3))
  assert abs(c - 1) < 1e-4 and spread < 1e-4
  # non-residual leaves are unchanged
  np.testing.assert_array_equal(t.prolong(coarse)["fc"]["kernel"],
                                coarse["fc"]["kernel"])
  # the layer-axis map is the matrix P (numpy oracle)
  np.testing.assert_allclose(
      t.prolong(coarse)["block_0"]["scale"],
      P @ np.asarray(coarse["block_0"]["scale"]), atol=1e-5)


def test_depth_matrices_thesis_values():
  P = depth_prolongation_matrix(3, "constant")
  np.testing.assert_allclose(0.5 * P.T @ P, np.eye(3))  # Ex. 3.35
  P = depth_prolongation_matrix(4, "linear_odd")  # Ex. 3.36, 4 -> 7
  assert P.shape == (7, 4)
  half = 0.5 * P.T @ P
  # ½PᵀP row sums ¾ at the boundary, 1 inside; interior weights (¼, ½, ¼).
  np.testing.assert_allclose(half.sum(1), [0.75, 1, 1, 0.75])
  np.testing.assert_allclose(0.5 * P.T[1, 1:6], [0.25, 0.5, 0.25, 0, 0])
  R = depth_restriction_matrix(8, "linear", "half_adjoint")
  assert not np.allclose(R @ depth_prolongation_matrix(4, "linear"), np.eye(4))
  R = depth_restriction_matrix(8, "linear")  # default: injection
  np.testing.assert_allclose(R @ depth_prolongation_matrix(4, "linear"), np.eye(4))


def test_depth_gradient_restriction_option_has_c_half():
  t = depth_transfer("constant", gradient="restriction")
  fine = {"block_0": stacked_tree(4)["block_0"]}
  coarse = {"block_0": stacked_tree(2)["block_0"]}
  c, spread = adjoint_constant(t, fine, coarse, jax.random.key(0))
  assert abs(c - 0.5) < 1e-4 and spread < 1e-4


def test_depth_odd_layers_and_mismatch_errors():
  t = depth_transfer("constant")
  with pytest.raises(TransferError, match="even number"):
    t.restrict_params(stacked_tree(7))
  with pytest.raises(TransferError, match="odd number"):
    depth_transfer("linear_odd").restrict_params(stacked_tree(8))
  with pytest.raises(TransferError, match="block_0"):
    check_transfer(t, stacked_tree(8), stacked_tree(3))
  with pytest.raises(TransferError, match="depth kind"):
    depth_transfer("cubic")


def test_compose_three_levels():
  t = depth_transfer("constant")
  both = compose(t, t)
  fine, coarse = stacked_tree(8), stacked_tree(2, 1)
  check_transfer(both, fine, coarse)
  assert tree_allclose(both.restrict_params(both.prolong(coarse)), coarse)
  assert tree_allclose(both.restrict_grad(fine), prolong_transpose(both, coarse)(fine))
  ident = identity_transfer()
  assert tree_allclose(compose(ident, t).prolong(coarse), t.prolong(coarse))


def test_image_operators():
  x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))
  np.testing.assert_allclose(avg_pool2(replicate2(avg_pool2(x))), avg_pool2(x),
                             atol=1e-6)
  # Pᵀ = 4R for replication vs average pooling
  transpose = jax.linear_transpose(replicate2, avg_pool2(x))
  np.testing.assert_allclose(transpose(x)[0], 4 * avg_pool2(x), atol=1e-5)
  with pytest.raises(ValueError, match="even"):
    avg_pool2(jnp.zeros((1, 5, 4, 1)))


def test_kernel_basis_roundtrip_and_exact_valid_correspondence():
  K = jax.random.normal(jax.random.key(0), (3, 3, 2, 2))
  a, b = kernel_to_basis(K)
  np.testing.assert_allclose(basis_kernel(a, b), K, atol=1e-5)
  # spec-mlsgd §8.2 exact test: VALID convs, conv(x, B_pq) equals
  # P(conv(avgpool x, k_pq)) on the pixels r ≡ p−1, s ≡ q−1 (mod 2).
  x = jax.random.normal(jax.random.key(1), (1, 10, 10, 1))
  valid = lambda u, k: jax.lax.conv_general_dilated(  # noqa: E731
      u, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  for p in range(2):
    for q in range(2):
      bb = jnp.zeros((2, 2, 1, 1)).at[p, q].set(1.0)
      fine = valid(x, basis_kernel(jnp.zeros((5, 1, 1)), bb))
      coarse = replicate2(valid(avg_pool2(x), bb))
      rows = slice(p, None, 2)
      cols = slice(q, None, 2)
      f = fine[0, rows, cols, 0]
      c = coarse[0, rows, cols, 0][: f.shape[0], : f.shape[1]]
      np.testing.assert_allclose(f, c, atol=1e-5)
      assert not np.allclose(fine[0, 1 - p::2, 1 - q::2, 0],
                             coarse[0, 1 - p::2, 1 - q::2, 0][:4, :4], atol=1e-3)


def test_resolution_transfer_on_odenet(numpy_params):
  x = jnp.zeros((1, 16, 16, 3))
  fine_model = ODEResNet(channels=(4, 4, 6), layers_per_block=2,
                         res_param="mlsgd_basis")
  coarse_model = ODEResNet(channels=(4, 4, 6), layers_per_block=2,
                           res_kernel=2, input_pool=1)
  fine = numpy_params(fine_model, x, seed=0)
  coarse = numpy_params(coarse_model, x, seed=1)
  t = resolution_transfer(fc_channels=6)
  check_transfer(t, fine, coarse)

  @jax.jit
  def maps(fine, coarse):
    return (t.restrict_params(t.prolong(coarse)), t.restrict_grad(fine),
            prolong_transpose(t, coarse)(fine), t.restrict_params(fine),
            t.restrict_inputs(jnp.ones((1, 4, 4, 3))))

  rp, rg, pt, rf, ri = maps(fine, coarse)
  assert tree_allclose(rp, coarse)
  assert tree_allclose(rg, pt)
  # the fc kernel restriction is 2x2 pooling of each (class, channel) image
  W = np.asarray(fine["fc"]["kernel"]).reshape(4, 4, 6, 10)
  expect = W.reshape(2, 2, 2, 2, 6, 10).mean((1, 3)).reshape(-1, 10)
  np.testing.assert_allclose(rf["fc"]["kernel"], expect, atol=1e-6)
  np.testing.assert_allclose(ri, jnp.ones((1, 2, 2, 3)))
  standard = numpy_params(ODEResNet(channels=(4, 4, 6), layers_per_block=2), x)
  with pytest.raises(TransferError, match="mlsgd_basis"):
    t.restrict_params(standard)


def test_same_conv_even_kernel_pads_bottom_right():
  x = jnp.arange(16.).reshape(1, 4, 4, 1)
  k = jnp.zeros((2, 2, 1, 1)).at[1, 1].set(1.0)
  y = same_conv(x, k)
  # output (r, s) reads x[r+1, s+1]; the last row/column read the zero pad
  np.testing.assert_allclose(y[0, :3, :3, 0], x[0, 1:, 1:, 0])
  np.testing.assert_allclose(y[0, 3, :, 0], 0.0)
