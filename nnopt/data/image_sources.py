"""Where MNIST, Fashion-MNIST and KMNIST are found: IDX files, TFDS, Debian.

These datasets exist on disk in two forms: the original IDX files
(:mod:`nnopt.data.idx`) and prepared TFDS directories
(:mod:`nnopt.data.tfds_loader`). :func:`load_image_dataset` takes the first of
these places that holds the dataset, in this order:

1. the ``data_dir`` argument (a config's ``dataset.data_dir``, ``nnopt run
   --data_dir``): IDX files directly in it, or in ``<data_dir>/<name>/`` (also
   spelt with ``-``, e.g. ``fashion-mnist/``); else a TFDS tree
   ``<data_dir>/<name>/<version>/``;
2. the ``NNOPT_DATA_DIR`` environment variable, searched like ``data_dir``;
3. the ``TFDS_DATA_DIR`` environment variable (TFDS only);
4. ``~/tensorflow_datasets``, the TFDS default (TFDS only);
5. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist``, where Debian's and
   Ubuntu's package ``dataset-fashion-mnist`` puts the IDX files.

A place that lacks the dataset is passed over, also an explicit ``data_dir``.
IDX files carry no dataset name: files directly in a directory are taken for
whichever dataset is asked for, so keep several apart in ``<dir>/<name>/``.
A TFDS tree counts only when ``tensorflow_datasets`` is installed; a data
directory that is not a local path (``gs://...``) is handed to TFDS unprobed;
and when no place passes these checks, TFDS itself is asked once, in the
directory :func:`tfds_loader.resolve_data_dir` names (layouts the probe does
not know), before the error.
Whatever the source, the numbers are the same (:func:`tfds_loader.image_dataset`:
float32 NHWC in [0, 1], optional per-channel standardization and flattening,
the published train/test split, no validation split); ``meta['source']`` says
which was used (``"idx"`` or ``"tfds"``) and ``meta['data_dir']`` where.

Nothing is downloaded. If no place holds the dataset, one
:class:`MissingDataError` lists every place searched and every way to provide
the files (the Debian package, IDX files in a directory, ``tfds build``).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import importlib.util
import os
from typing import Callable, Sequence

from nnopt.data import tfds_loader
from nnopt.data.dataset import Dataset
from nnopt.data.dataset import DatasetError
from nnopt.data.dataset import MissingDataError
from nnopt.data.idx import IDX_FILES
from nnopt.data.idx import find_idx_files
from nnopt.data.idx import read_idx_dataset

#: Datasets distributed as IDX files that :func:`load_image_dataset` serves.
IDX_DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "kmnist")

#: Environment variable naming nnopt's own data directory (IDX or TFDS).
DATA_DIR_ENV = "NNOPT_DATA_DIR"

#: ``name -> (directory, package)`` of datasets a system package installs.
SYSTEM_DIRS: dict[str, tuple[str, str]] = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",
                      "dataset-fashion-mnist"),
}

_IDX, _TFDS = "idx", "tfds"


@dataclasses.dataclass(frozen=True)
class Place:
  """One place searched: a directory, where it came from, what it may hold."""

  origin: str
  path: str | None  # None: the argument or variable is not set.
  kinds: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Found:
  """A place that holds the dataset."""

  kind: str  # "idx" or "tfds"
  path: str  # IDX: the directory of the four files; TFDS: the data dir.
  origin: str
  files: dict | None = None


def search_places(name: str, data_dir: str | os.PathLike[str] | None
                  ) -> list[Place]:
  """The places searched for ``name``, in the order of the module doc."""
  def expand(path):
    return os.path.expanduser(os.fspath(path)) if path else None

  places = [
      Place("the data_dir argument (dataset.data_dir, --data_dir)",
            expand(data_dir), (_IDX, _TFDS)),
      Place(f"${DATA_DIR_ENV}", expand(os.environ.get(DATA_DIR_ENV)),
            (_IDX, _TFDS)),
      Place("$TFDS_DATA_DIR", expand(os.environ.get("TFDS_DATA_DIR")),
            (_TFDS,)),
      Place("the TFDS default directory",
            expand(tfds_loader.DEFAULT_DATA_DIR), (_TFDS,)),
  ]
  if name in SYSTEM_DIRS:
    directory, package = SYSTEM_DIRS[name]
    places.append(Place(f"the {package} package's directory", directory,
                        (_IDX,)))
  return places


def _idx_dirs(path: str, name: str) -> list[str]:
  dirs = [path, os.path.join(path, name), os.path.join(path,
                                                       name.replace("_", "-"))]
  return list(dict.fromkeys(dirs))


def _is_remote(path: str) -> bool:
  return "://" in path


def _tfds_tree(path: str, tfds_name: str) -> bool:
  root = os.path.join(path, tfds_name)
  return any(glob.glob(os.path.join(root, *("*",) * depth,
                                    "dataset_info.json"))
             for depth in (1, 2))


def _tfds_available() -> bool:
  return importlib.util.find_spec("tensorflow_datasets") is not None


def locate(name: str, data_dir: str | os.PathLike[str] | None = None
           ) -> tuple[Found | None, list[str]]:
  """The first place that holds ``name``, and a note on each place searched.

  Raises:
    DatasetError: A directory holds only part of the IDX files.
  """
  tfds_name = tfds_loader.TFDS_DATASETS[name].tfds_name
  notes = []
  for place in search_places(name, data_dir):
    if place.path is None:
      notes.append(f"{place.origin}: not set")
      continue
    if _is_remote(place.path):
      if _TFDS in place.kinds:
        return Found(_TFDS, place.path, place.origin), notes
      notes.append(f"{place.origin}: {place.path} (not a local directory)")
      continue
    looked = []
    if _IDX in place.kinds:
      for directory in _idx_dirs(place.path, name):
        files = find_idx_files(directory)
        if files is not None:
          return Found(_IDX, directory, place.origin, files), notes
      looked.append("no IDX files in " + ", ".join(_idx_dirs(place.path,
                                                              name)))
    if _TFDS in place.kinds:
      tree = os.path.join(place.path, tfds_name)
      if not _tfds_tree(place.path, tfds_name):
        looked.append(f"no TFDS files in {tree}")
      elif _tfds_available():
        return Found(_TFDS, place.path, place.origin), notes
      else:
        looked.append(f"TFDS files in {tree}, but tensorflow-datasets is not "
                      f"installed to read them (pip install "
                      f"tensorflow-datasets array_record)")
    notes.append(f"{place.origin}: " + "; ".join(looked))
  return None, notes


def missing_message(name: str, notes: Sequence[str],
                    data_dir: str | os.PathLike[str] | None) -> str:
  """The text of the error raised when no place holds ``name``."""
  tfds_name = tfds_loader.TFDS_DATASETS[name].tfds_name
  tfds_dir, _ = tfds_loader.resolve_data_dir(data_dir)
  files = ", ".join(IDX_FILES.values())
  lines = [f"Dataset {name!r} was not found (nnopt never downloads). "
           f"Searched, in order:"]
  lines += [f"  {i}. {note}" for i, note in enumerate(notes, 1)]
  lines.append("Provide it in one of these ways:")
  if name in SYSTEM_DIRS:
    directory, package = SYSTEM_DIRS[name]
    lines.append(f"  * on Debian or Ubuntu: apt-get install {package} (puts "
                 f"the IDX files in {directory}, found without any setting);")
  lines += [
      f"  * IDX files: put {files} (each may be gzipped, .gz) in a directory "
      f"DIR or DIR/{name}/, then pass --data_dir DIR (dataset.data_dir) or "
      f"set {DATA_DIR_ENV}=DIR;",
      "  * TFDS: on a machine with internet run",
      f"        {tfds_loader.prepare_command(tfds_name, tfds_dir)}",
      f"    copy {os.path.join(tfds_dir, tfds_name)} to this machine, and "
      f"pass --data_dir or set TFDS_DATA_DIR to the directory above it "
      f"(reading needs pip install tensorflow-datasets array_record).",
  ]
  return "\n".join(lines)


def _read_tfds(name: str, found: Found, max_train, max_test, label_key):
  arrays, reader = tfds_loader.read_tfds_arrays(
      name, found.path, found.origin, max_train=max_train, max_test=max_test,
      label_key=label_key)
  meta = dict(source=_TFDS, tfds_name=tfds_loader.TFDS_DATASETS[name].tfds_name,
              data_dir=found.path, found_via=found.origin, reader=reader)
  return arrays, meta


def load_image_dataset(
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
  """Loads MNIST, Fashion-MNIST or KMNIST from IDX files or TFDS, never downloading.

  The look-up order is the module doc's. Train is the 60,000-image training
  file, test the 10,000-image ``t10k`` file, in their stored order. Images
  become float32 NHWC in [0, 1]; with ``normalize`` they are standardized,
  :math:`x \\leftarrow (x - \\mu)/\\sigma`.

  Args:
    name: One of :data:`IDX_DATASETS`.
    data_dir: A directory with the IDX files (directly or in ``<name>/``) or
      a TFDS data directory; see the module doc for what is searched after it.
    seed: Unused (the stored order is kept).
    normalize: Standardize with ``mean`` and ``std``.
    mean: Mean; default the dataset's published training mean.
    std: Standard deviation; default the published value.
    max_train: Keep only the first ``max_train`` training examples.
    max_test: Keep only the first ``max_test`` test examples.
    label_key: The label feature; IDX files have only ``"label"``.
    flatten: One row of ``H*W`` per example instead of NHWC.

  Returns:
    A classification :class:`Dataset`; ``meta`` records ``source`` (``"idx"``
    or ``"tfds"``), ``data_dir``, ``found_via`` (the place of the look-up
    order), ``reader``, ``normalized``, ``mean``, ``std`` and, for IDX, the
    ``files`` read.

  Raises:
    MissingDataError: No place holds the dataset (the message lists them all
      and how to provide the files).
    DatasetError: A file is corrupt or truncated (the message names it), or
      an option is invalid.
  """
  del seed
  if name not in IDX_DATASETS:
    raise DatasetError(f"{name!r} is not an IDX dataset known to nnopt; known: "
                       f"{', '.join(IDX_DATASETS)}.")
  spec = tfds_loader.TFDS_DATASETS[name]
  tfds_loader.check_limits(name, max_train, max_test)
  found, notes = locate(name, data_dir)
  if found is not None and found.kind == _IDX:
    if label_key != "label":
      raise DatasetError(f"Dataset {name!r} from IDX files has only the label "
                         f"'label', not {label_key!r}.")
    arrays = read_idx_dataset(found.files, spec.num_classes)
    for split, limit in (("train", max_train), ("test", max_test)):
      for part in ("x", "y"):
        arrays[f"{part}_{split}"] = arrays[f"{part}_{split}"][:limit]
    meta = dict(source=_IDX, data_dir=found.path, found_via=found.origin,
                reader="idx", files=dict(sorted(
                    (f"{split}_{part}", path)
                    for (split, part), path in found.files.items())))
  elif found is not None:
    arrays, meta = _read_tfds(name, found, max_train, max_test, label_key)
  else:
    # Only TFDS itself can tell whether a directory it was not probed for
    # holds the data (its test mocks, unusual layouts): a last try.
    if not _tfds_available():
      raise MissingDataError(missing_message(name, notes, data_dir))
    tfds_dir, origin = tfds_loader.resolve_data_dir(data_dir)
    try:
      arrays, meta = _read_tfds(name, Found(_TFDS, tfds_dir, origin),
                                max_train, max_test, label_key)
    except MissingDataError:
      raise MissingDataError(missing_message(name, notes, data_dir)) from None
  return tfds_loader.image_dataset(
      name, arrays, num_classes=spec.num_classes, normalize=normalize,
      mean=mean, std=std, flatten=flatten, meta=meta)


def image_loader(name: str) -> Callable[..., Dataset]:
  """Returns ``load_image_dataset`` bound to ``name`` (a registry loader)."""
  return functools.partial(load_image_dataset, name)
