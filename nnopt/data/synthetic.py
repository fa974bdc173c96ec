"""Synthetic problems with known ground truth: Gaussian classes, linear regression.

Both record their generating parameters in ``Dataset.meta`` so that tests and
experiments can compare what an optimizer finds with the truth (the class means,
the true weights, the noise level).
"""

from __future__ import annotations

import numpy as np

from nnopt.data.dataset import CLASSIFICATION
from nnopt.data.dataset import REGRESSION
from nnopt.data.dataset import Dataset
from nnopt.data.dataset import DatasetError
from nnopt.data.dataset import check_positive
from nnopt.data.dataset import seeded_rngs


def _balanced_labels(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
  """``n`` labels in 0..k-1, as balanced as possible, in random order."""
  return rng.permutation(np.arange(n) % k).astype(np.int32)


def load_gaussian_classes(
    *,
    data_dir: str | None = None,
    seed: int = 0,
    num_classes: int = 3,
    dim: int = 2,
    n_train: int = 600,
    n_test: int = 300,
    separation: float = 3.0,
    std: float = 1.0,
) -> Dataset:
  """k isotropic Gaussian classes in d dimensions.

  The class means :math:`\\mu_k` are drawn once, uniformly on the sphere of
  radius ``separation``; an example of class :math:`y` is

  .. math::  x = \\mu_y + \\sigma\\,\\varepsilon, \\qquad
             \\varepsilon \\sim \\mathcal N(0, I_d),

  with balanced labels. With equal priors and shared covariance the Bayes
  classifier is nearest-mean, so ``meta["means"]`` gives an oracle.

  Args:
    data_dir: Ignored (generated data).
    seed: Seed of the means, labels and noise.
    num_classes: Number of classes k (>= 2).
    dim: Input dimension d.
    n_train: Training examples.
    n_test: Test examples.
    separation: Norm of every class mean.
    std: Standard deviation :math:`\\sigma` of each class.

  Returns:
    A classification :class:`Dataset` (float32 ``(N, d)``, int32 labels) with
    ``meta = {"means": (k, d) float64, "std": float}``.
  """
  del data_dir
  name = "gaussian_classes"
  num_classes = check_positive("num_classes", num_classes, name)
  if num_classes < 2:
    raise DatasetError(f"Dataset {name!r}: num_classes must be >= 2.")
  dim = check_positive("dim", dim, name)
  n_train = check_positive("n_train", n_train, name)
  n_test = check_positive("n_test", n_test, name)
  if std < 0:
    raise DatasetError(f"Dataset {name!r}: std must be >= 0, got {std}.")
  mean_rng, train_rng, test_rng = seeded_rngs(seed, 3)
  directions = mean_rng.standard_normal((num_classes, dim))
  directions /= np.linalg.norm(directions, axis=1, keepdims=True)
  means = separation * directions

  def sample(n, rng):
    y = _balanced_labels(n, num_classes, rng)
    x = means[y] + std * rng.standard_normal((n, dim))
    return x.astype(np.float32), y

  x_tr, y_tr = sample(n_train, train_rng)
  x_te, y_te = sample(n_test, test_rng)
  return Dataset(
      x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
      name=name, num_classes=num_classes, task=CLASSIFICATION,
      meta=dict(means=means, std=float(std), separation=float(separation)),
  )


def load_linear_regression(
    *,
    data_dir: str | None = None,
    seed: int = 0,
    dim: int = 10,
    output_dim: int = 1,
    n_train: int = 512,
    n_test: int = 128,
    noise_std: float = 0.1,
    w_scale: float = 1.0,
    input_scales: tuple[float, ...] | np.ndarray | None = None,
) -> Dataset:
  """Noisy linear regression with known true weights.

  .. math::  y = x^\\top W^* + \\sigma\\,\\varepsilon, \\qquad
             x \\sim \\mathcal N(0, \\operatorname{diag}(s)^2), \\quad
             W^*_{ij} \\sim \\mathcal N(0, \\text{w\\_scale}^2), \\quad
             \\varepsilon \\sim \\mathcal N(0, I),

  so the Bayes risk of the mean squared error is :math:`\\sigma^2` per output.
  Ill-conditioned problems are made with ``input_scales`` (the per-feature
  standard deviations :math:`s`, default all ones).

  Args:
    data_dir: Ignored (generated data).
    seed: Seed of the weights, inputs and noise.
    dim: Input dimension d.
    output_dim: Number of outputs m.
    n_train: Training examples.
    n_test: Test examples.
    noise_std: Noise standard deviation :math:`\\sigma`.
    w_scale: Standard deviation of the entries of :math:`W^*`.
    input_scales: Optional length-d per-feature input standard deviations.

  Returns:
    A regression :class:`Dataset` with float32 ``x`` of shape ``(N, d)`` and
    ``y`` of shape ``(N, m)``; ``meta = {"w_star": (d, m) float64,
    "noise_std": float, "input_scales": (d,) float64}``.
  """
  del data_dir
  name = "linear_regression"
  dim = check_positive("dim", dim, name)
  output_dim = check_positive("output_dim", output_dim, name)
  n_train = check_positive("n_train", n_train, name)
  n_test = check_positive("n_test", n_test, name)
  if noise_std < 0:
    raise DatasetError(f"Dataset {name!r}: noise_std must be >= 0.")
  if input_scales is None:
    scales = np.ones(dim)
  else:
    scales = np.asarray(input_scales, dtype=np.float64)
    if scales.shape != (dim,):
      raise DatasetError(
          f"Dataset {name!r}: input_scales must have length dim={dim}, got "
          f"shape {scales.shape}.")
  w_rng, train_rng, test_rng = seeded_rngs(seed, 3)
  w_star = w_scale * w_rng.standard_normal((dim, output_dim))

  def sample(n, rng):
    x = rng.standard_normal((n, dim)) * scales
    y = x @ w_star + noise_std * rng.standard_normal((n, output_dim))
    return x.astype(np.float32), y.astype(np.float32)

  x_tr, y_tr = sample(n_train, train_rng)
  x_te, y_te = sample(n_test, test_rng)
  return Dataset(
      x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
      name=name, num_classes=None, task=REGRESSION,
      meta=dict(w_star=w_star, noise_std=float(noise_std), input_scales=scales),
  )
