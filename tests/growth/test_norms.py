"""Sensitivity norms against dense matrices (App. B.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import growth


def _circular_conv_matrix(kernel, n, m):
  """Dense matrix of x ↦ K ⊛ x with periodic boundaries, (n·m·c_out, n·m·c_in)."""
  kh, kw, cin, cout = kernel.shape

  def conv(flat):
    x = flat.reshape(1, n, m, cin)
    x = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)),
                mode="wrap")
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.reshape(-1)

  return jax.jacfwd(conv)(jnp.zeros(n * m * cin))


@pytest.mark.parametrize("n,m,cin,cout", [(4, 4, 2, 3), (5, 3, 3, 2), (6, 6, 1, 1)])
def test_fft_operator_norm_is_largest_singular_value(n, m, cin, cout):
  kernel = jax.random.normal(jax.random.key(n * 7 + cin), (3, 3, cin, cout))
  dense = _circular_conv_matrix(kernel, n, m)
  expected = np.linalg.svd(np.asarray(dense), compute_uv=False).max() ** 2
  got = jax.jit(lambda k: growth.conv_operator_sq(k, (n, m)))(kernel)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_fft_operator_norm_on_images_smaller_than_the_kernel():
  kernel = jax.random.normal(jax.random.key(0), (3, 3, 2, 2))
  # a 2x2 torus folds the 3x3 taps; a dense 2x2 periodic conv checks it
  x_size = 2

  def conv(flat):
    x = flat.reshape(x_size, x_size, 2)
    out = jnp.zeros((x_size, x_size, 2))
    for i in range(3):
      for j in range(3):
        shifted = jnp.roll(x, (-(i - 1), -(j - 1)), axis=(0, 1))
        out = out + shifted @ kernel[i, j]
    return out.reshape(-1)

  dense = jax.jacfwd(conv)(jnp.zeros(x_size * x_size * 2))
  expected = np.linalg.svd(np.asarray(dense), compute_uv=False).max() ** 2
  np.testing.assert_allclose(growth.conv_operator_sq(kernel, (2, 2)), expected,
                             rtol=1e-5)


def test_per_output_channel_norms_against_dense_maps():
  n, cin, cout = 4, 3, 2
  kernel = jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
  full, summed = [], []
  for l in range(cout):
    full.append(np.linalg.norm(np.asarray(
        _circular_conv_matrix(kernel[..., l:l + 1], n, n)), 2))
    summed.append(np.linalg.norm(np.asarray(_circular_conv_matrix(
        kernel[..., l:l + 1].sum(axis=2, keepdims=True), n, n)), 2))
  full, summed = np.array(full), np.array(summed)
  np.testing.assert_allclose(growth.conv_per_output_sum_sq(
      kernel, (n, n), slice_mode="full_in"), np.sum(full ** 2), rtol=1e-5)
  np.testing.assert_allclose(growth.conv_per_output_l1_sq(
      kernel, (n, n), slice_mode="full_in"), np.sum(full) ** 2, rtol=1e-5)
  np.testing.assert_allclose(growth.conv_per_output_sum_sq(kernel, (n, n)),
                             np.sum(summed ** 2), rtol=1e-5)
  np.testing.assert_allclose(growth.conv_per_output_l1_sq(kernel, (n, n)),
                             np.sum(summed) ** 2, rtol=1e-5)


def test_repo_compat_norm_runs_fft_over_channels():
  kernel = np.asarray(jax.random.normal(jax.random.key(2), (3, 3, 5, 4)))
  oihw = kernel.transpose(3, 2, 0, 1)
  expected = np.linalg.svd(np.fft.fft2(oihw, (3, 3), axes=[0, 1]),
                           compute_uv=False).max() ** 2
  got = growth.conv_operator_sq_repo(jnp.asarray(kernel))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  changed = kernel.copy()
  changed[:, :, 3:, :] += 1.0      # input channels >= 3 do not matter there
  np.testing.assert_allclose(growth.conv_operator_sq_repo(jnp.asarray(changed)),
                             got, rtol=1e-6)
  assert abs(float(growth.conv_operator_sq(jnp.asarray(changed), (8, 8))) -
             float(growth.conv_operator_sq(jnp.asarray(kernel), (8, 8)))) > 1e-2


def test_frobenius_norms_and_unknown_norm():
  g = jnp.arange(12.0).reshape(3, 4)
  assert float(growth.frobenius_sq(g)) == pytest.approx(float(np.sum(np.arange(12.0) ** 2)))
  assert float(growth.frobenius_sq_scaled(g)) == pytest.approx(
      float(np.sum(np.arange(12.0) ** 2)) / 12)
  assert float(growth.norm_fn("op")(g)) == pytest.approx(
      np.linalg.norm(np.asarray(g), 2) ** 2, rel=1e-5)
  with pytest.raises(ValueError, match="unknown sensitivity norm"):
    growth.norm_fn("nuclear")
  with pytest.raises(ValueError, match="input size"):
    growth.norm_fn("op")(jnp.ones((3, 3, 2, 2)))
