"""Layer geometry inferred from shapes against the geometry that real nnopt
convolutions record, and its ambiguity against brute-force 1-D convolutions."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt.models import Conv, Dense, LayerInfo, init_params
from nnopt.stats.capture import layer_info
from nnopt.stats.geometry import (GeometryError, conv_output_spatial,
                                  conv_patches, infer_layer_info)
from nnopt.stats.layer_moments import VarianceError, infer_conv_info
from nnopt.stats.capture import LayerStats


def _distinct_1d_convolutions(size, k, out, rng):
  """How many different 1-D convolutions (any stride, SAME or VALID) map a
  signal of ``size`` to ``out`` values, by evaluating each of them."""
  x, w = rng.standard_normal(size), rng.standard_normal(k)
  found = []
  for padding in ("SAME", "VALID"):
    for stride in range(1, max(size, k) + 2):
      if padding == "SAME":
        n = -(-size // stride)
        total = max((n - 1) * stride + k - size, 0)
        pads = (total // 2, total - total // 2)
      else:
        n, pads = (size - k) // stride + 1 if size >= k else 0, (0, 0)
      if n != out:
        continue
      xp = np.pad(x, pads)
      y = np.array([xp[i * stride:i * stride + k] @ w for i in range(n)])
      if not any(np.allclose(y, f) for f in found):
        found.append(y)
  return len(found)


CASES = [(spatial, kernel, strides, padding)
         for spatial, kernel, strides, padding in itertools.product(
             [(5, 5), (7, 6), (8, 8), (9, 4)], [(1, 1), (3, 3), (2, 3)],
             [(1, 1), (2, 2), (1, 2)], ["SAME", "VALID"])]


def test_inferred_geometry_matches_recorded_convolutions():
  rng = np.random.default_rng(0)
  inferred_count = 0
  for spatial, kernel, strides, padding in CASES:
    conv = Conv(3, kernel, strides, padding, use_bias=False)
    x = jax.random.normal(jax.random.key(0), (2, *spatial, 2))
    params = init_params(conv, jax.random.key(1), x)
    recorded = layer_info(conv, params, x)[""]
    assert recorded == LayerInfo("conv", False, (*kernel, 2, 3), strides,
                                 padding)
    y = conv.apply({"params": params}, x)
    assert tuple(y.shape[1:3]) == conv_output_spatial(recorded, spatial)
    unique = all(_distinct_1d_convolutions(spatial[i], kernel[i],
                                           y.shape[1 + i], rng) == 1
                 for i in range(2))
    if not unique:
      with pytest.raises(GeometryError, match="cannot infer"):
        infer_layer_info(recorded.kernel_shape, x.shape, y.shape)
      continue
    inferred = infer_layer_info(recorded.kernel_shape, x.shape, y.shape)
    inferred_count += 1
    # The same convolution: same patches, and a conv with the inferred
    # geometry reproduces the layer's output.
    np.testing.assert_array_equal(conv_patches(x, inferred),
                                  conv_patches(x, recorded))
    padding_arg = (inferred.padding if isinstance(inferred.padding, str)
                   else tuple(tuple(p) for p in inferred.padding))
    again = jax.lax.conv_general_dilated(
        x, params["kernel"], inferred.strides, padding_arg,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(again, y, rtol=1e-6, atol=1e-6)
    if strides == (1, 1) and padding == "SAME" and kernel != (1, 1):
      assert inferred == recorded
  assert inferred_count >= len(CASES) // 2


def test_dense_and_bad_kernels():
  assert infer_layer_info((4, 3), use_bias=True) == LayerInfo(
      "dense", True, (4, 3))
  assert LayerInfo("conv", True, (3, 3, 2, 5)).in_dim == 18
  assert LayerInfo("dense", True, (4, 3)).out_dim == 3
  with pytest.raises(GeometryError, match="neither Dense"):
    infer_layer_info((3, 3, 3))
  with pytest.raises(GeometryError, match="shapes"):
    infer_layer_info((3, 3, 1, 2))


def test_variance_and_recorded_dense_use_the_same_type():
  model = Dense(3)
  x = jnp.ones((2, 4))
  params = init_params(model, jax.random.key(0), x)
  assert layer_info(model, params, x)[""] == infer_layer_info(
      (4, 3), use_bias=True)
  stats = LayerStats(jnp.zeros((1, 7, 7, 1)), jnp.zeros((1, 3, 3, 2)))
  with pytest.raises(VarianceError, match="cannot infer.*layers="):
    infer_conv_info(stats, (3, 3, 1, 2), True)
  stats = LayerStats(jnp.zeros((1, 6, 6, 1)), jnp.zeros((1, 6, 6, 2)))
  assert infer_conv_info(stats, (3, 3, 1, 2), True) == LayerInfo(
      "conv", True, (3, 3, 1, 2), (1, 1), "SAME")
