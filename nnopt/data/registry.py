"""The dataset registry: one name -> one loader, and `load_dataset`.

A loader is a function ``loader(*, data_dir, seed, **options) -> Dataset``.
Built-in loaders are a literal table; users may add their own with
:func:`register_dataset`. Options are checked against the loader's signature,
so a misspelt option is an error that lists the valid ones, not a silent no-op.

Example::

  ds = load_dataset("spiral", seed=1)              # 450 train / 150 test
  ds = load_dataset("digits", flatten=True)        # (1437, 64) / (360, 64)
  ds = load_dataset("cifar10", data_dir="/data/tfds", normalize=True)
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable

from nnopt.data.dataset import Dataset
from nnopt.data.dataset import DatasetError
from nnopt.data.embedded import load_digits
from nnopt.data.embedded import load_spiral
from nnopt.data.synthetic import load_gaussian_classes
from nnopt.data.text import load_embedded_text, load_tolstoi
from nnopt.data.synthetic import load_linear_regression
from nnopt.data.image_sources import IDX_DATASETS
from nnopt.data.image_sources import image_loader
from nnopt.data.tfds_loader import TFDS_DATASETS
from nnopt.data.tfds_loader import tfds_loader

Loader = Callable[..., Dataset]

#: The built-in loaders by (canonical) name; :func:`register_dataset` adds more.
_REGISTRY: dict[str, Loader] = {
    "spiral": load_spiral,
    "digits": load_digits,
    "gaussian_classes": load_gaussian_classes,
    "linear_regression": load_linear_regression,
    "tolstoi": load_tolstoi,
    "embedded_text": load_embedded_text,
    **{name: image_loader(name) if name in IDX_DATASETS else tfds_loader(name)
       for name in TFDS_DATASETS},
}
_ALIASES = {"svhn": "svhn_cropped", "fmnist": "fashion_mnist"}
_RESERVED = ("data_dir", "seed")


def _canonical(name: str) -> str:
  key = str(name).strip().lower().replace("-", "_")
  return _ALIASES.get(key, key)


def register_dataset(name: str, loader: Loader, *,
                     overwrite: bool = False) -> None:
  """Registers ``loader`` under ``name``.

  Args:
    name: Dataset name (case-insensitive; ``-`` and ``_`` are equivalent).
    loader: Callable ``loader(*, data_dir, seed, **options) -> Dataset``.
    overwrite: Allow replacing an existing entry.

  Raises:
    DatasetError: If the name is taken and ``overwrite`` is False, or the
      loader does not accept ``data_dir`` and ``seed`` keywords.
  """
  key = _canonical(name)
  if key in _REGISTRY and not overwrite:
    raise DatasetError(f"Dataset {key!r} is already registered.")
  params = inspect.signature(loader).parameters
  has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
  missing = [r for r in _RESERVED if r not in params and not has_var_kw]
  if missing:
    raise DatasetError(f"Loader for {key!r} must accept keyword arguments "
                       f"{_RESERVED}; missing {missing}.")
  _REGISTRY[key] = loader


def available_datasets() -> tuple[str, ...]:
  """Names of all registered datasets, in registration order."""
  return tuple(_REGISTRY)


def _lookup(name: str) -> tuple[str, Loader]:
  key = _canonical(name)
  if key not in _REGISTRY:
    raise DatasetError(f"Unknown dataset {name!r}. Known datasets: "
                       f"{', '.join(available_datasets())}.")
  return key, _REGISTRY[key]


def dataset_options(name: str) -> dict[str, Any]:
  """The options ``name`` accepts (besides ``data_dir`` and ``seed``), with defaults.

  Args:
    name: A registered dataset name.

  Returns:
    ``{option: default}``; an option without default maps to
    ``inspect.Parameter.empty``.
  """
  _, loader = _lookup(name)
  return {
      p.name: p.default
      for p in inspect.signature(loader).parameters.values()
      if p.name not in _RESERVED
      and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
  }


def load_dataset(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                 seed: int = 0, **options: Any) -> Dataset:
  """Builds or loads the dataset registered as ``name``.

  Args:
    name: Registered name, e.g. ``"spiral"``, ``"digits"``, ``"mnist"``; see
      :data:`KNOWN_DATASETS` and :func:`available_datasets`.
    data_dir: Local data directory for real datasets; ignored by embedded
      and synthetic datasets. MNIST, Fashion-MNIST and KMNIST are looked up
      as IDX files or TFDS data there, then in ``NNOPT_DATA_DIR``,
      ``TFDS_DATA_DIR``, ``~/tensorflow_datasets`` and (Fashion-MNIST)
      Debian's ``/usr/share/datasets/fashion-mnist``
      (:mod:`nnopt.data.image_sources`); the other image datasets are TFDS
      data in ``data_dir``, else ``TFDS_DATA_DIR``, else
      ``~/tensorflow_datasets``.
    seed: Seed of everything random in the construction (shuffle, noise, ...).
      Datasets with a fixed published split document that they ignore it.
    **options: Dataset-specific options; see :func:`dataset_options`.

  Returns:
    The :class:`Dataset`.

  Raises:
    DatasetError: Unknown name (the message lists the known names), unknown
      option (the message lists the valid ones), or a corrupt file.
    MissingDataError: (a DatasetError) the data are in none of the places
      searched; the message lists them and how to provide the data.
  """
  key, loader = _lookup(name)
  params = inspect.signature(loader).parameters
  if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
    accepted = dataset_options(key)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
      raise DatasetError(
          f"Dataset {key!r} has no option(s) {unknown}. Valid options: "
          f"{', '.join(sorted(accepted)) or '(none)'}.")
  return loader(data_dir=data_dir, seed=seed, **options)


#: Names of nnopt's built-in datasets (see `available_datasets` for all).
KNOWN_DATASETS: tuple[str, ...] = available_datasets()
