"""The in-memory `Dataset` container shared by every nnopt data loader.

Every loader in :mod:`nnopt.data` returns one :class:`Dataset`: four host-side
numpy arrays (train/test inputs and targets) plus a little metadata. Batching is
done separately, by the index samplers of :mod:`nnopt.data.samplers`, so that a
training loop only ever moves the selected rows to the accelerator.

This module also holds :class:`DatasetError` and two small helpers used by the
loaders: :func:`seeded_rngs` (independent random streams from one seed) and
:func:`shuffle_split` (a seeded shuffle followed by a train/test cut).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)


class DatasetError(ValueError):
  """A dataset cannot be built or found (unknown name, bad option, missing data)."""


class MissingDataError(DatasetError):
  """A real dataset's files are in none of the places searched.

  The message lists every place searched and every way to provide the files;
  a file that is there but corrupt is a plain :class:`DatasetError`.
  """


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A supervised dataset held in host memory as numpy arrays.

  Inputs are float32 with the example axis first; images are NHWC. For
  classification the targets are int32 class indices of shape ``(N,)``; for
  regression they are float32 of shape ``(N, output_dim)``.

  Attributes:
    x_train: Training inputs, shape ``(num_train, *input_shape)``.
    y_train: Training targets, one row per training input.
    x_test: Test inputs, shape ``(num_test, *input_shape)``.
    y_test: Test targets, one row per test input.
    name: Registry name of the dataset (e.g. ``"spiral"``).
    num_classes: Number of classes, or ``None`` for regression.
    task: ``"classification"`` or ``"regression"``.
    meta: Extra facts about how the data were made, e.g. the true weights
      ``w_star`` and ``noise_std`` of a synthetic regression problem, or the
      normalization ``mean``/``std`` of an image dataset. Empty by default.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  name: str
  num_classes: int | None
  task: str = CLASSIFICATION
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.task not in TASKS:
      raise DatasetError(f"task must be one of {TASKS}, got {self.task!r}.")
    if (self.task == CLASSIFICATION) != (self.num_classes is not None):
      raise DatasetError(
          f"Dataset {self.name!r}: num_classes must be an int for classification "
          f"and None for regression (task={self.task!r}, "
          f"num_classes={self.num_classes!r})."
      )
    for split in ("train", "test"):
      x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
      if len(x) != len(y):
        raise DatasetError(
            f"Dataset {self.name!r}: x_{split} has {len(x)} rows but y_{split} "
            f"has {len(y)}."
        )
    if self.x_train.shape[1:] != self.x_test.shape[1:]:
      raise DatasetError(
          f"Dataset {self.name!r}: train inputs have shape {self.x_train.shape[1:]}"
          f" but test inputs {self.x_test.shape[1:]}."
      )

  @property
  def input_shape(self) -> tuple[int, ...]:
    """Shape of one input example (without the example axis)."""
    return tuple(self.x_train.shape[1:])

  @property
  def num_train(self) -> int:
    """Number of training examples."""
    return int(self.x_train.shape[0])

  @property
  def num_test(self) -> int:
    """Number of test examples."""
    return int(self.x_test.shape[0])

  @property
  def train_arrays(self) -> dict[str, np.ndarray]:
    """The training split as ``{"x": x_train, "y": y_train}``."""
    return {"x": self.x_train, "y": self.y_train}

  @property
  def test_arrays(self) -> dict[str, np.ndarray]:
    """The test split as ``{"x": x_test, "y": y_test}``."""
    return {"x": self.x_test, "y": self.y_test}

  def __repr__(self) -> str:
    return (
        f"Dataset(name={self.name!r}, task={self.task!r}, "
        f"num_classes={self.num_classes}, input_shape={self.input_shape}, "
        f"num_train={self.num_train}, num_test={self.num_test}, "
        f"x dtype={self.x_train.dtype}, y dtype={self.y_train.dtype})"
    )


def seeded_rngs(seed: int, count: int) -> list[np.random.Generator]:
  """Returns ``count`` statistically independent generators derived from ``seed``.

  Independent streams keep, e.g., the shuffle of a dataset unchanged when an
  option that draws noise is switched on.

  Args:
    seed: Non-negative integer seed.
    count: Number of generators.

  Returns:
    A list of ``count`` :class:`numpy.random.Generator`.
  """
  children = np.random.SeedSequence(int(seed)).spawn(count)
  return [np.random.default_rng(child) for child in children]


def shuffle_split(
    x: np.ndarray,
    y: np.ndarray,
    num_train: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Shuffles ``(x, y)`` with ``rng`` and cuts off the first ``num_train`` rows.

  Args:
    x: Inputs, example axis first.
    y: Targets, same number of rows as ``x``.
    num_train: Number of rows for the training split; the rest is test.
    rng: Generator that draws the permutation.

  Returns:
    ``(x_train, y_train, x_test, y_test)``.
  """
  if not 0 < num_train < len(x):
    raise DatasetError(
        f"num_train must be in (0, {len(x)}) to leave a non-empty test split, "
        f"got {num_train}."
    )
  perm = rng.permutation(len(x))
  train, test = perm[:num_train], perm[num_train:]
  return x[train], y[train], x[test], y[test]


def check_positive(name: str, value: Any, dataset: str) -> int:
  """Returns ``value`` as an int, or raises DatasetError if it is not >= 1."""
  if isinstance(value, bool) or int(value) != value or value < 1:
    raise DatasetError(
        f"Dataset {dataset!r}: option {name} must be a positive integer, "
        f"got {value!r}."
    )
  return int(value)
