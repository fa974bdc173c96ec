"""The IDX file format of MNIST, Fashion-MNIST and KMNIST, read with numpy.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type,
``DD`` the number of dimensions), ``DD`` big-endian uint32 sizes, then the
elements in C order, big-endian. The image datasets ship four such files, each
optionally gzipped::

  train-images-idx3-ubyte[.gz]   (N, rows, cols) uint8
  train-labels-idx1-ubyte[.gz]   (N,) uint8
  t10k-images-idx3-ubyte[.gz]    (M, rows, cols) uint8
  t10k-labels-idx1-ubyte[.gz]    (M,) uint8

(``train-images.idx3-ubyte``, with a dot, as some mirrors spell it, is accepted
too.) Every defect of a file -- bad gzip stream, wrong magic number, missing or
extra bytes, a label/image count mismatch -- is one :class:`DatasetError` that
names the file. Nothing here downloads or knows where datasets live; see
:mod:`nnopt.data.image_sources` for the look-up.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Mapping

import numpy as np

from nnopt.data.dataset import DatasetError

# Element type codes of the IDX format (big-endian on disk).
_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"

#: ``(split, part) -> base file name`` of an IDX image-classification dataset.
IDX_FILES: dict[tuple[str, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def _spellings(base: str) -> tuple[str, ...]:
  dotted = base.replace("-idx", ".idx")
  return (base, base + ".gz", dotted, dotted + ".gz")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads one IDX file (raw or gzip, detected from its first bytes).

  Args:
    path: The file.

  Returns:
    The array in native byte order, with the file's shape and element type.

  Raises:
    DatasetError: Unreadable gzip stream, wrong magic number, unknown element
      type, or a data section shorter or longer than the header says; the
      message names the file.
  """
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
      raw = gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as err:
    raise DatasetError(f"IDX file {path!r} cannot be read: {err}.") from None
  if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _DTYPES:
    raise DatasetError(
        f"IDX file {path!r} has magic number {raw[:4].hex() or '(none)'}, not "
        f"an IDX header (00 00, a type code in "
        f"{sorted(f'{c:02x}' for c in _DTYPES)}, the rank): not an IDX file, "
        f"or corrupt.")
  dtype, ndim = _DTYPES[raw[2]], raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DatasetError(f"IDX file {path!r} is truncated inside its header.")
  shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", ndim, offset=4))
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  got = len(raw) - header
  if got != expected:
    what = "truncated" if got < expected else "longer than its header says"
    raise DatasetError(
        f"IDX file {path!r} is {what}: shape {shape} of {dtype.name} needs "
        f"{expected} data bytes, the file has {got}.")
  data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
  return data.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)


def find_idx_files(directory: str | os.PathLike[str]
                   ) -> dict[tuple[str, str], str] | None:
  """The four IDX files of an image dataset in ``directory``, if all are there.

  Args:
    directory: Directory that may hold the files (not its subdirectories).

  Returns:
    ``{(split, part): path}`` for the keys of :data:`IDX_FILES`, or ``None``
    when none of the files is there.

  Raises:
    DatasetError: Some but not all of the four files are there.
  """
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    return None
  found = {}
  for key, base in IDX_FILES.items():
    for name in _spellings(base):
      if os.path.isfile(os.path.join(directory, name)):
        found[key] = os.path.join(directory, name)
        break
  if not found:
    return None
  if len(found) < len(IDX_FILES):
    missing = [IDX_FILES[k] + "[.gz]" for k in IDX_FILES if k not in found]
    raise DatasetError(
        f"Directory {directory!r} holds only part of an IDX dataset: "
        f"{', '.join(missing)} missing.")
  return found


def read_idx_dataset(files: Mapping[tuple[str, str], str], num_classes: int
                     ) -> dict[str, np.ndarray]:
  """Reads and checks the four files found by :func:`find_idx_files`.

  Args:
    files: ``{(split, part): path}``.
    num_classes: Labels must lie in ``[0, num_classes)``.

  Returns:
    ``{"x_train", "y_train", "x_test", "y_test"}``: uint8 images ``(N, rows,
    cols, 1)`` and int32 labels ``(N,)``.

  Raises:
    DatasetError: A file is corrupt (see :func:`read_idx`), has the wrong
      rank or type, its labels are out of range, or the label and image
      counts of a split differ; the message names the file(s).
  """
  out = {}
  for split, short in (("train", "train"), ("test", "test")):
    images_path = files[(split, "images")]
    labels_path = files[(split, "labels")]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
      raise DatasetError(f"IDX file {images_path!r} holds {images.dtype} of "
                         f"shape {images.shape}, not uint8 images (N, rows, "
                         f"cols).")
    if labels.ndim != 1 or labels.dtype != np.uint8:
      raise DatasetError(f"IDX file {labels_path!r} holds {labels.dtype} of "
                         f"shape {labels.shape}, not uint8 labels (N,).")
    if len(images) != len(labels):
      raise DatasetError(
          f"IDX files {images_path!r} ({len(images)} images) and "
          f"{labels_path!r} ({len(labels)} labels) do not match in count.")
    if labels.size and int(labels.max()) >= num_classes:
      raise DatasetError(f"IDX file {labels_path!r} has label "
                         f"{int(labels.max())}, outside [0, {num_classes}).")
    out[f"x_{short}"] = images[..., None]
    out[f"y_{short}"] = labels.astype(np.int32)
  return out
