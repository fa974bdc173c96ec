"""Tests for the synthetic datasets: Gaussian classes and linear regression."""

import numpy as np
import pytest

import nnopt.data as nd


def test_gaussian_classes_statistics():
  ds = nd.load_dataset("gaussian_classes", seed=1, num_classes=4, dim=3,
                       n_train=4000, n_test=400, separation=5.0, std=0.5)
  assert ds.x_train.shape == (4000, 3) and ds.x_train.dtype == np.float32
  assert ds.y_train.dtype == np.int32 and ds.num_classes == 4
  means = ds.meta["means"]
  np.testing.assert_allclose(np.linalg.norm(means, axis=1), 5.0)
  assert np.all(np.bincount(ds.y_train) == 1000)
  for k in range(4):
    xk = ds.x_train[ds.y_train == k]
    # Mean within 5 standard errors, spread close to std.
    np.testing.assert_allclose(xk.mean(0), means[k], atol=5 * 0.5 / np.sqrt(1000))
    assert xk.std(0) == pytest.approx(np.full(3, 0.5), rel=0.1)


def test_gaussian_classes_nearest_mean_oracle():
  ds = nd.load_dataset("gaussian_classes", seed=0, num_classes=5, dim=20,
                       separation=6.0, std=1.0)
  means = ds.meta["means"]
  dist = ((ds.x_test[:, None, :] - means[None]) ** 2).sum(-1)
  accuracy = (dist.argmin(1) == ds.y_test).mean()
  assert accuracy > 0.95


def test_gaussian_classes_deterministic():
  a = nd.load_dataset("gaussian_classes", seed=7)
  b = nd.load_dataset("gaussian_classes", seed=7)
  c = nd.load_dataset("gaussian_classes", seed=8)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  assert not np.array_equal(a.x_train, c.x_train)
  with pytest.raises(nd.DatasetError):
    nd.load_dataset("gaussian_classes", num_classes=1)


def test_linear_regression_least_squares_recovers_w_star():
  ds = nd.load_dataset("linear_regression", seed=2, dim=8, output_dim=2,
                       n_train=2000, noise_std=0.2)
  assert ds.task == "regression" and ds.num_classes is None
  assert ds.y_train.shape == (2000, 2) and ds.y_train.dtype == np.float32
  w_star, sigma = ds.meta["w_star"], ds.meta["noise_std"]
  assert w_star.shape == (8, 2) and sigma == 0.2
  x = ds.x_train.astype(np.float64)
  w_hat, *_ = np.linalg.lstsq(x, ds.y_train.astype(np.float64), rcond=None)
  # Standard error of each coefficient is about sigma / sqrt(n).
  assert np.abs(w_hat - w_star).max() < 5 * sigma / np.sqrt(2000)
  residual = ds.y_test - ds.x_test @ w_hat
  assert residual.std() == pytest.approx(sigma, rel=0.1)


def test_linear_regression_input_scales():
  scales = np.array([1.0, 10.0, 0.1])
  ds = nd.load_dataset("linear_regression", dim=3, n_train=4000,
                       input_scales=scales, noise_std=0.0)
  assert ds.x_train.std(0) == pytest.approx(scales, rel=0.1)
  np.testing.assert_allclose(ds.x_test @ ds.meta["w_star"], ds.y_test,
                             rtol=1e-4, atol=1e-4)
  with pytest.raises(nd.DatasetError):
    nd.load_dataset("linear_regression", dim=2, input_scales=scales)
