"""Tests for the embedded datasets (spiral, digits) and the registry."""

import math

import numpy as np
import pytest

import nnopt.data as nd


def _spiral_oracle(n=300, r0=0.5, circles=1.0):
  """SensLI reference construction, written point by point."""
  rows = []
  for i in range(n):
    phi = 2 * math.pi * circles * i / n
    r = r0 + circles * i / n
    rows.append((-r * math.cos(phi), -r * math.sin(phi), 0))
  for i in range(n):
    phi = 2 * math.pi * circles * i / n
    r = r0 + circles * i / n
    rows.append((r * math.cos(phi), r * math.sin(phi), 1))
  return np.array(rows)


def _sorted_rows(a):
  return a[np.lexsort(a.T[::-1])]


def test_spiral_matches_reference_formula_and_split():
  ds = nd.load_dataset("spiral")
  assert (ds.num_train, ds.num_test) == (450, 150)
  assert ds.input_shape == (2,)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == 2 and ds.task == "classification"
  got = np.concatenate([
      np.column_stack([ds.x_train, ds.y_train]),
      np.column_stack([ds.x_test, ds.y_test]),
  ]).astype(np.float64)
  want = _spiral_oracle()
  np.testing.assert_allclose(_sorted_rows(got), _sorted_rows(want), atol=1e-6)


def test_spiral_points_unshuffled_equal_oracle():
  x, y = nd.spiral_points(50, r0=0.2, circles=2.0)
  want = _spiral_oracle(50, 0.2, 2.0)
  np.testing.assert_allclose(x, want[:, :2], atol=1e-12)
  np.testing.assert_array_equal(y, want[:, 2])


def test_spiral_seed_controls_shuffle_only():
  a, b = nd.load_dataset("spiral", seed=3), nd.load_dataset("spiral", seed=3)
  c = nd.load_dataset("spiral", seed=4)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  assert not np.array_equal(a.x_train, c.x_train)
  # Noise does not change which points go to which split.
  noisy = nd.load_dataset("spiral", seed=3, noise=0.05)
  np.testing.assert_array_equal(noisy.y_train, a.y_train)
  delta = noisy.x_train - a.x_train
  assert 0.03 < delta.std() < 0.07


def test_spiral_options():
  ds = nd.load_dataset("spiral", n_per_class=100, circles=2.0)
  assert ds.num_train + ds.num_test == 200 and ds.num_train == 150
  radii = np.linalg.norm(np.concatenate([ds.x_train, ds.x_test]), axis=1)
  assert radii.max() == pytest.approx(0.5 + 2.0 * 99 / 100, abs=1e-5)
  with pytest.raises(nd.DatasetError):
    nd.load_dataset("spiral", noise=-1.0)


def test_digits_shapes_values_and_fixed_split():
  ds = nd.load_dataset("digits")
  assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
  assert ds.num_classes == 10
  # Fixed: independent of seed.
  other = nd.load_dataset("digits", seed=123)
  np.testing.assert_array_equal(ds.x_test, other.x_test)
  np.testing.assert_array_equal(ds.y_train, other.y_train)
  # Stratified: every class has its share of the 360 test images (+-1).
  counts = np.bincount(ds.y_test, minlength=10)
  shares = np.bincount(np.concatenate([ds.y_train, ds.y_test])) * 360 / 1797
  assert np.all(np.abs(counts - shares) <= 1)


def test_digits_is_sklearn_data_partitioned():
  from sklearn.datasets import load_digits
  ref = load_digits()
  ds = nd.load_dataset("digits", flatten=True)
  assert ds.input_shape == (64,)
  got = np.concatenate([
      np.column_stack([ds.x_train * 16, ds.y_train]),
      np.column_stack([ds.x_test * 16, ds.y_test]),
  ])
  want = np.column_stack([ref.data, ref.target])
  np.testing.assert_allclose(_sorted_rows(got), _sorted_rows(want), atol=1e-4)


def test_registry_unknown_name_and_option():
  with pytest.raises(nd.DatasetError) as err:
    nd.load_dataset("imagenet")
  assert isinstance(err.value, ValueError)
  for name in nd.KNOWN_DATASETS:
    assert name in str(err.value)
  with pytest.raises(nd.DatasetError, match="n_per_class"):
    nd.load_dataset("spiral", n_per_clas=3)


def test_known_datasets_and_options():
  assert set(nd.KNOWN_DATASETS) == {
      "spiral", "digits", "gaussian_classes", "linear_regression", "mnist",
      "fashion_mnist", "kmnist", "cifar10", "cifar100", "svhn_cropped",
      "tolstoi", "embedded_text"}
  assert nd.dataset_options("digits") == {"flatten": False}
  assert "max_train" in nd.dataset_options("cifar10")
  # Names are case-insensitive, '-' == '_', and 'svhn' aliases svhn_cropped.
  assert nd.dataset_options("Fashion-MNIST") == nd.dataset_options("svhn")


def test_register_custom_dataset():
  def loader(*, data_dir=None, seed=0, n=4):
    del data_dir
    x = np.full((n, 1), seed, np.float32)
    y = np.zeros((n,), np.int32)
    return nd.Dataset(x, y, x, y, name="tiny", num_classes=1)

  nd.register_dataset("tiny_test_set", loader, overwrite=True)
  ds = nd.load_dataset("tiny_test_set", seed=2, n=3)
  assert ds.num_train == 3 and ds.x_train[0, 0] == 2
  with pytest.raises(nd.DatasetError):
    nd.register_dataset("tiny_test_set", loader)


def test_dataset_validation():
  x = np.zeros((3, 2), np.float32)
  y = np.zeros((3,), np.int32)
  with pytest.raises(nd.DatasetError):
    nd.Dataset(x, y[:2], x, y, name="bad", num_classes=2)
  with pytest.raises(nd.DatasetError):
    nd.Dataset(x, y, x, y, name="bad", num_classes=None)
  ds = nd.Dataset(x, y, x, y, name="ok", num_classes=2)
  assert ds.meta == {} and ds.train_arrays["x"] is x
