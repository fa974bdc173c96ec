"""Real image datasets (MNIST, Fashion-MNIST, KMNIST, CIFAR-10/100, SVHN) from local TFDS files.

nnopt never downloads (DESIGN.md, Data policy). Data are read from a local
tensorflow-datasets directory, chosen in this order: the ``data_dir`` argument,
the ``TFDS_DATA_DIR`` environment variable, ``~/tensorflow_datasets``.

Two readers are tried, in order:

1. ``tfds.data_source`` (random access to ``array_record`` files): needs the
   ``array_record`` package but NOT tensorflow; images are decoded with PIL.
2. ``tfds.as_numpy(tfds.load(..., batch_size=-1))``: for data prepared in the
   default ``tfrecord`` format; used only when tensorflow is importable.

If the data are absent, one :class:`MissingDataError` names the dataset, the
directory searched and the command that prepares the files on a machine with
internet (see :func:`prepare_command`).

MNIST, Fashion-MNIST and KMNIST are also read from their original IDX files
(:mod:`nnopt.data.idx`); :mod:`nnopt.data.image_sources` searches both kinds.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import shlex
from typing import Any, Callable, Sequence

import numpy as np

from nnopt.data.dataset import CLASSIFICATION
from nnopt.data.dataset import Dataset
from nnopt.data.dataset import DatasetError
from nnopt.data.dataset import MissingDataError

DEFAULT_DATA_DIR = "~/tensorflow_datasets"
_CHUNK = 2048  # Examples fetched per data-source call.


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
  """How one nnopt dataset maps onto a TFDS dataset.

  Attributes:
    tfds_name: Name in the TFDS catalog.
    num_classes: Number of classes of the default label.
    mean: Per-channel mean of the training images in [0, 1] (for normalize).
    std: Per-channel standard deviation (for normalize).
    train_split: TFDS split used for training.
    test_split: TFDS split used for testing.
  """

  tfds_name: str
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  train_split: str = "train"
  test_split: str = "test"


# CIFAR-10 statistics are those of the SensLI reference (spec-sensli.md §1.6);
# the others are the commonly published training-set statistics.
TFDS_DATASETS: dict[str, TfdsSpec] = {
    "mnist": TfdsSpec("mnist", 10, (0.1307,), (0.3081,)),
    "fashion_mnist": TfdsSpec("fashion_mnist", 10, (0.2860,), (0.3530,)),
    "kmnist": TfdsSpec("kmnist", 10, (0.1918,), (0.3483,)),
    "cifar10": TfdsSpec("cifar10", 10, (0.4914, 0.4822, 0.4465),
                        (0.2023, 0.1994, 0.2010)),
    "cifar100": TfdsSpec("cifar100", 100, (0.5071, 0.4865, 0.4409),
                         (0.2673, 0.2564, 0.2762)),
    "svhn_cropped": TfdsSpec("svhn_cropped", 10, (0.4377, 0.4438, 0.4728),
                             (0.1980, 0.2010, 0.1970)),
}


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> tuple[str, str]:
  """Returns ``(directory, where it came from)`` for the TFDS data directory."""
  if data_dir:
    return os.path.expanduser(os.fspath(data_dir)), "the data_dir argument"
  env = os.environ.get("TFDS_DATA_DIR")
  if env:
    return os.path.expanduser(env), "the TFDS_DATA_DIR environment variable"
  return os.path.expanduser(DEFAULT_DATA_DIR), "the TFDS default"


def prepare_command(tfds_name: str, data_dir: str) -> str:
  """The shell command that prepares ``tfds_name`` under ``data_dir``.

  It needs internet and tensorflow (TFDS builders use it to generate); the
  resulting ``array_record`` files are then read here without tensorflow.
  """
  return (f"pip install tensorflow tensorflow-datasets array_record && "
          f"tfds build {tfds_name} --data_dir={shlex.quote(data_dir)} "
          f"--file_format=array_record")


def _missing_error(name: str, spec: TfdsSpec, data_dir: str, origin: str,
                   searched: str) -> MissingDataError:
  return MissingDataError(
      f"Dataset {name!r} (TFDS {spec.tfds_name!r}) was not found in data "
      f"directory {data_dir!r} (from {origin}; searched {searched!r}). nnopt "
      f"never downloads. On a machine with internet access run\n\n"
      f"    {prepare_command(spec.tfds_name, data_dir)}\n\n"
      f"and copy {os.path.join(data_dir, spec.tfds_name)!r} to this machine, or "
      f"pass --data_dir / set TFDS_DATA_DIR to a directory that holds it.")


def _tensorflow_available() -> bool:
  return importlib.util.find_spec("tensorflow") is not None


def _get_items(source: Any, keys: Sequence[int]) -> list[dict[str, Any]]:
  """Fetches ``keys`` with the batched ``__getitems__`` when it works."""
  getitems = getattr(source, "__getitems__", None)
  if getitems is not None:
    try:
      return list(getitems(list(keys)))
    except TypeError:
      # `tfds.testing.mock_data` (tfds 4.9.10) installs a `__getitems__` that
      # is not bound to the mock; single-item access works there.
      pass
  return [source[k] for k in keys]


def _read_data_source(tfds: Any, spec: TfdsSpec, split: str, data_dir: str,
                      limit: int | None,
                      label_key: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads a split with ``tfds.data_source`` into uint8 images and labels."""
  source = tfds.data_source(spec.tfds_name, split=split, data_dir=data_dir,
                            download=False)
  n = len(source) if limit is None else min(limit, len(source))
  images = labels = None
  for start in range(0, n, _CHUNK):
    items = _get_items(source, range(start, min(n, start + _CHUNK)))
    if images is None:
      first = np.asarray(items[0]["image"])
      images = np.empty((n, *first.shape), dtype=first.dtype)
      labels = np.empty((n,), dtype=np.int32)
    for offset, item in enumerate(items):
      images[start + offset] = item["image"]
      labels[start + offset] = item[label_key]
  if images is None:
    raise DatasetError(f"TFDS {spec.tfds_name!r} split {split!r} is empty.")
  return images, labels


def _read_tensorflow(tfds: Any, spec: TfdsSpec, split: str, data_dir: str,
                     limit: int | None,
                     label_key: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads a split with ``tfds.load`` (needs tensorflow) in one batch."""
  split_spec = split if limit is None else f"{split}[:{int(limit)}]"
  tensors = tfds.load(spec.tfds_name, split=split_spec, data_dir=data_dir,
                      download=False, batch_size=-1)
  arrays = tfds.as_numpy(tensors)
  return np.asarray(arrays["image"]), np.asarray(arrays[label_key], np.int32)


def _read_split(name: str, spec: TfdsSpec, split: str, data_dir: str,
                origin: str, limit: int | None,
                label_key: str) -> tuple[np.ndarray, np.ndarray, str]:
  """Reads one split with the first reader that works; returns the reader too."""
  import tensorflow_datasets as tfds  # Lazy: keeps `import nnopt.data` light.

  try:
    return (*_read_data_source(tfds, spec, split, data_dir, limit, label_key),
            "data_source")
  except DatasetError:
    raise
  except Exception as err:  # pylint: disable=broad-except
    data_source_error = err
  try:
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    prepared = builder.is_prepared()
    searched = os.fspath(builder.data_dir)
    file_format = str(getattr(builder.info, "file_format", "") or "")
  except Exception:  # pylint: disable=broad-except
    prepared, searched, file_format = False, os.path.join(
        data_dir, spec.tfds_name), ""
  if not prepared:
    # The data-source error ("TFRECORD not supported") would only mislead.
    raise _missing_error(name, spec, data_dir, origin, searched) from None
  if "tfrecord" not in file_format.lower():
    raise data_source_error  # The files exist but could not be read: a bug.
  if _tensorflow_available():
    return (*_read_tensorflow(tfds, spec, split, data_dir, limit, label_key),
            "tensorflow")
  raise DatasetError(
      f"Dataset {name!r} is prepared in {searched!r} in the tfrecord format, "
      f"which needs tensorflow to read, and tensorflow is not installed. "
      f"Either `pip install tensorflow`, or re-prepare it as array_record on a "
      f"machine with internet access:\n\n"
      f"    {prepare_command(spec.tfds_name, data_dir)}"
  ) from data_source_error


def _channel_stats(values: Sequence[float] | None, default: tuple[float, ...],
                   channels: int, what: str, name: str) -> np.ndarray:
  """Per-channel statistics as a float32 ``(channels,)`` array."""
  stats = np.asarray(default if values is None else values,
                     dtype=np.float32).reshape(-1)
  if stats.size == 1:
    stats = np.repeat(stats, channels)
  if stats.shape != (channels,):
    raise DatasetError(f"Dataset {name!r}: {what} must have {channels} "
                       f"entries (one per channel), got {stats.size}.")
  return stats


def check_limits(name: str, max_train: int | None,
                 max_test: int | None) -> None:
  """Raises DatasetError unless each limit is None or a positive integer."""
  for option, value in (("max_train", max_train), ("max_test", max_test)):
    if value is not None and (isinstance(value, bool) or int(value) != value
                              or value < 1):
      raise DatasetError(f"Dataset {name!r}: {option} must be a positive "
                         f"integer or None, got {value!r}.")


def image_dataset(name: str, arrays: dict[str, np.ndarray], *,
                  num_classes: int, normalize: bool,
                  mean: Sequence[float] | None, std: Sequence[float] | None,
                  flatten: bool, meta: dict[str, Any]) -> Dataset:
  """The classification Dataset of uint8 NHWC images, scaled as documented.

  Shared by every reader of a :data:`TFDS_DATASETS` name (TFDS, IDX), so the
  source of the files never changes the numbers: x/255, then with
  ``normalize`` :math:`(x - \\mu_c)/\\sigma_c`, then with ``flatten`` one row
  per example. ``meta`` is extended with ``normalized``, ``mean``, ``std``.
  """
  spec = TFDS_DATASETS[name]
  channels = arrays["x_train"].shape[-1]
  mean_c = _channel_stats(mean, spec.mean, channels, "mean", name)
  std_c = _channel_stats(std, spec.std, channels, "std", name)

  def to_float(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    if normalize:
      x -= mean_c
      x /= std_c
    return x.reshape(len(x), -1) if flatten else x

  return Dataset(
      x_train=to_float(arrays["x_train"]), y_train=arrays["y_train"],
      x_test=to_float(arrays["x_test"]), y_test=arrays["y_test"],
      name=name, num_classes=num_classes, task=CLASSIFICATION,
      meta=dict(meta, normalized=bool(normalize),
                mean=tuple(map(float, mean_c)), std=tuple(map(float, std_c))),
  )


def read_tfds_arrays(name: str, directory: str, origin: str, *,
                     max_train: int | None, max_test: int | None,
                     label_key: str) -> tuple[dict[str, np.ndarray], str]:
  """Reads both splits of ``name`` from the TFDS directory ``directory``.

  Returns:
    ``({"x_train", "y_train", "x_test", "y_test"}, reader)``: uint8 images,
    int32 labels, and the reader used (``"data_source"`` or
    ``"tensorflow"``).

  Raises:
    MissingDataError: The dataset is not prepared in ``directory``.
    DatasetError: It is, but cannot be read here (e.g. tfrecord files and no
      tensorflow).
  """
  spec = TFDS_DATASETS[name]
  read = functools.partial(_read_split, name, spec, data_dir=directory,
                           origin=origin, label_key=label_key)
  x_train, y_train, reader = read(split=spec.train_split, limit=max_train)
  x_test, y_test, _ = read(split=spec.test_split, limit=max_test)
  return dict(x_train=x_train, y_train=y_train, x_test=x_test,
              y_test=y_test), reader


def load_tfds_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    normalize: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    label_key: str = "label",
    flatten: bool = False,
) -> Dataset:
  """Loads a TFDS image-classification dataset from local files, never downloading.

  Images become float32 NHWC in [0, 1]; with ``normalize`` each channel is then
  standardized, :math:`x \\leftarrow (x - \\mu_c)/\\sigma_c`.

  MNIST, Fashion-MNIST and KMNIST are also read from IDX files; their registry
  loader is :func:`nnopt.data.image_sources.load_image_dataset`, which searches
  more places and ends here only for a TFDS directory.

  Args:
    name: One of ``TFDS_DATASETS`` (mnist, fashion_mnist, kmnist, cifar10,
      cifar100, svhn_cropped).
    data_dir: TFDS data directory; default ``TFDS_DATA_DIR``, else
      ``~/tensorflow_datasets``.
    seed: Unused (the stored order is kept; TFDS shuffles at preparation).
    normalize: Standardize each channel with ``mean`` and ``std``.
    mean: Per-channel means; default the dataset's published training mean.
    std: Per-channel standard deviations; default the published values.
    max_train: Keep only the first ``max_train`` training examples.
    max_test: Keep only the first ``max_test`` test examples.
    label_key: Label feature (e.g. ``"coarse_label"`` for cifar100's 20
      superclasses).
    flatten: One row per example, ``(N, H*W*C)``, instead of NHWC.

  Returns:
    A classification :class:`Dataset`; ``meta`` records ``source`` (``"tfds"``),
    ``tfds_name``, ``data_dir``, ``reader``, ``normalized``, ``mean`` and
    ``std``.

  Raises:
    MissingDataError: If the data are not in the data directory (the message
      says how to prepare them).
    DatasetError: If an option is invalid or the files cannot be read.
  """
  del seed
  if name not in TFDS_DATASETS:
    raise DatasetError(f"{name!r} is not a TFDS dataset known to nnopt; known: "
                       f"{', '.join(TFDS_DATASETS)}.")
  spec = TFDS_DATASETS[name]
  check_limits(name, max_train, max_test)
  directory, origin = resolve_data_dir(data_dir)
  arrays, reader = read_tfds_arrays(name, directory, origin,
                                    max_train=max_train, max_test=max_test,
                                    label_key=label_key)
  num_classes = spec.num_classes
  if label_key == "coarse_label" and name == "cifar100":
    num_classes = 20
  return image_dataset(
      name, arrays, num_classes=num_classes, normalize=normalize, mean=mean,
      std=std, flatten=flatten,
      meta=dict(source="tfds", tfds_name=spec.tfds_name, data_dir=directory,
                reader=reader))


def tfds_loader(name: str) -> Callable[..., Dataset]:
  """Returns ``load_tfds_dataset`` bound to ``name`` (a registry loader)."""
  return functools.partial(load_tfds_dataset, name)
