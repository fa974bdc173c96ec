"""Embedded datasets that need no download: the SensLI spiral and sklearn digits.

These are the data of the default runs and of the test suite (DESIGN.md, Data
policy): both are built in memory, deterministically, in well under a second.
"""

from __future__ import annotations

import numpy as np

from nnopt.data.dataset import CLASSIFICATION
from nnopt.data.dataset import Dataset
from nnopt.data.dataset import DatasetError
from nnopt.data.dataset import check_positive
from nnopt.data.dataset import seeded_rngs
from nnopt.data.dataset import shuffle_split

# Fixed split of scikit-learn's digits: stratified, 360 test images, drawn with
# this seed whatever the `seed` passed to the loader, so that every run and every
# paper number refers to the same 1437 / 360 images.
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0


def spiral_points(
    n_per_class: int = 300,
    *,
    r0: float = 0.5,
    circles: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
  """The two interleaved spirals of SensLI, unshuffled and noise-free.

  For :math:`i = 0, \\dots, N-1`

  .. math::

     \\varphi_i = 2\\pi\\,c\\,i/N, \\qquad r_i = r_0 + c\\,i/N,

  class 0 is :math:`-r_i(\\cos\\varphi_i, \\sin\\varphi_i)` and class 1 is
  :math:`+r_i(\\cos\\varphi_i, \\sin\\varphi_i)`, with :math:`c` = ``circles``.

  Args:
    n_per_class: Points per class, :math:`N`.
    r0: Radius at which both spirals start.
    circles: Number of turns, :math:`c`.

  Returns:
    ``(x, y)``: float64 points of shape ``(2N, 2)`` (class 0 first) and int32
    labels of shape ``(2N,)``.

  References:
    Kreis thesis, §2.2 "Data sets" (spiral); spec-sensli.md §1.6.
  """
  i = np.arange(n_per_class, dtype=np.float64)
  phi = 2.0 * np.pi * circles * i / n_per_class
  r = r0 + circles * i / n_per_class
  arm = r[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
  x = np.concatenate([-arm, arm], axis=0)
  y = np.repeat(np.arange(2, dtype=np.int32), n_per_class)
  return x, y


def load_spiral(
    *,
    data_dir: str | None = None,
    seed: int = 0,
    n_per_class: int = 300,
    noise: float = 0.0,
    circles: float = 1.0,
    r0: float = 0.5,
    train_fraction: float = 0.75,
) -> Dataset:
  """The SensLI spiral: 2 classes in 2-D, 450 train / 150 test by default.

  Points come from :func:`spiral_points`; optional isotropic Gaussian noise of
  standard deviation ``noise`` is added; the 2N points are shuffled with a
  generator seeded by ``seed`` and the first ``int(train_fraction * 2N)`` form
  the training split. Noise and shuffle use independent streams of ``seed``, so
  switching on noise does not change which points are in which split.

  Args:
    data_dir: Ignored (embedded data).
    seed: Seed of the shuffle (and of the noise).
    n_per_class: Points per class (reference: 300).
    noise: Standard deviation of additive Gaussian noise (reference: 0).
    circles: Number of spiral turns (reference: 1); more is harder.
    r0: Start radius (reference: 0.5); smaller starts are closer, hence harder.
    train_fraction: Fraction of points used for training (reference: 0.75).

  Returns:
    A classification :class:`Dataset` with float32 ``x`` of shape ``(., 2)``
    and int32 labels in {0, 1}.

  References:
    Kreis thesis, §2.2 "Data sets"; spec-sensli.md §1.6.
  """
  del data_dir
  n_per_class = check_positive("n_per_class", n_per_class, "spiral")
  if noise < 0:
    raise DatasetError(f"Dataset 'spiral': noise must be >= 0, got {noise}.")
  x, y = spiral_points(n_per_class, r0=r0, circles=circles)
  noise_rng, split_rng = seeded_rngs(seed, 2)
  if noise > 0:
    x = x + noise * noise_rng.standard_normal(x.shape)
  num_train = int(train_fraction * len(x))
  x_tr, y_tr, x_te, y_te = shuffle_split(x.astype(np.float32), y, num_train,
                                         split_rng)
  return Dataset(
      x_train=x_tr,
      y_train=y_tr,
      x_test=x_te,
      y_test=y_te,
      name="spiral",
      num_classes=2,
      task=CLASSIFICATION,
      meta=dict(n_per_class=n_per_class, noise=float(noise),
                circles=float(circles), r0=float(r0)),
  )


def load_digits(
    *,
    data_dir: str | None = None,
    seed: int = 0,
    flatten: bool = False,
) -> Dataset:
  """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

  Pixel values 0..16 are scaled to [0, 1]. The split is FIXED: a stratified
  split with ``DIGITS_TEST_SIZE = 360`` test images drawn with
  ``random_state = DIGITS_SPLIT_SEED = 0`` (``sklearn.model_selection.
  train_test_split``), giving 1437 train / 360 test images whatever ``seed`` is.

  Args:
    data_dir: Ignored (the data ship with scikit-learn; no network).
    seed: Ignored: the split is fixed (see above). Shuffling for training is
      the sampler's job.
    flatten: If True, inputs have shape ``(N, 64)``; else NHWC ``(N, 8, 8, 1)``.

  Returns:
    A classification :class:`Dataset` with float32 inputs in [0, 1] and int32
    labels in 0..9.
  """
  del data_dir, seed
  from sklearn import datasets as sk_datasets  # Lazy: sklearn is slow to import.
  from sklearn import model_selection

  digits = sk_datasets.load_digits()
  x = (digits.images / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  x_tr, x_te, y_tr, y_te = model_selection.train_test_split(
      x, y, test_size=DIGITS_TEST_SIZE, stratify=y,
      random_state=DIGITS_SPLIT_SEED)
  if flatten:
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
  else:
    x_tr, x_te = x_tr[..., None], x_te[..., None]
  return Dataset(
      x_train=np.ascontiguousarray(x_tr),
      y_train=y_tr,
      x_test=np.ascontiguousarray(x_te),
      y_test=y_te,
      name="digits",
      num_classes=10,
      task=CLASSIFICATION,
      meta=dict(split_seed=DIGITS_SPLIT_SEED, test_size=DIGITS_TEST_SIZE),
  )
