"""Chapter 7's real data sets (Balles Figs 7.3, 7.4, D.1) as GLM problems.

Real data. scikit-learn ships BreastCancer (569×30, the ref-code's variant)
and Wine (178×13, its class label read as a regression target); they always
run. Boston, a1a, Yacht, Powerplant and Energy must be supplied as local
files; nothing is downloaded. The data directory is ``$NNOPT_DATA_DIR``, else
``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets`` (the first that is set is
the only one searched), laid out as::

    DATA_DIR/
      uci/boston.csv       506 × (13 features + MEDV)
      uci/yacht.csv        308 × (6 features + residuary resistance)
      uci/powerplant.csv   9568 × (AT, V, AP, RH + PE)
      uci/energy.csv       768 × (X1..X8 + Y1 [+ Y2])
      libsvm/a1a           libsvm/svmlight text, 1605 rows, 123 features

The ``uci/*.csv`` files are numeric tables: comma-, semicolon- or
whitespace-separated, an optional header row (detected: a first line that is
not all numbers), no index column; the LAST column is the target and all
others are features. Energy is the exception: the spec leaves open which of
its two targets the ref-code used (its loader reads index files that are not
in the repository), so this script settles on the heating load Y1: a
10-column file (the UCI layout X1..X8, Y1, Y2) uses column 9 (Y1) and drops
Y2; a 9-column file uses its last column (save Y2 last to study the cooling
load instead). ``libsvm/a1a`` is read with
:func:`sklearn.datasets.load_svmlight_file` (1-based indices, 123 features,
densified); its labels {−1, +1} become {0, 1}. Sources:

- Boston: ``housing.data`` (whitespace-separated, 14 columns, no header) from
  the UCI repository, https://archive.ics.uci.edu/ml/machine-learning-databases/housing/
  (also StatLib, http://lib.stat.cmu.edu/datasets/boston, whose records wrap
  over two lines: unwrap them first). Save as ``uci/boston.csv``.
- Yacht: ``yacht_hydrodynamics.data`` from
  https://archive.ics.uci.edu/dataset/243/yacht+hydrodynamics
- Powerplant: ``Folds5x2_pp.xlsx`` (sheet 1, exported to CSV) from
  https://archive.ics.uci.edu/dataset/294/combined+cycle+power+plant
- Energy: ``ENB2012_data.xlsx`` (exported to CSV) from
  https://archive.ics.uci.edu/dataset/242/energy+efficiency
- a1a: https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/a1a
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nnopt.noise_aware import fisher as F

A1A_FEATURES = 123
ENERGY_Y1 = 8  # column of the heating load in the 10-column UCI Energy file


class LocalSet(NamedTuple):
  """A data set that must be supplied as a local file.

  Attributes:
    path: the file, relative to the data directory.
    kind: ``'linear'`` or ``'logistic'`` (the GLM fitted to it).
    shape: (samples, features) of the thesis's copy (Table D.3, columns
      un-swapped; Yacht without its target).
    source: what to download, and from where.
  """

  path: str
  kind: str
  shape: tuple[int, int]
  source: str


LOCAL_SETS = {
    "Boston": LocalSet(
        "uci/boston.csv", "linear", (506, 13),
        "housing.data (whitespace-separated, 14 columns, last = MEDV) from "
        "https://archive.ics.uci.edu/ml/machine-learning-databases/housing/"),
    "Yacht": LocalSet(
        "uci/yacht.csv", "linear", (308, 6),
        "yacht_hydrodynamics.data (7 columns, last = residuary resistance) "
        "from https://archive.ics.uci.edu/dataset/243/yacht+hydrodynamics"),
    "Powerplant": LocalSet(
        "uci/powerplant.csv", "linear", (9568, 4),
        "Folds5x2_pp.xlsx, sheet 1 saved as CSV (AT, V, AP, RH, PE; last = "
        "PE) from https://archive.ics.uci.edu/dataset/294/combined+cycle+power+plant"),
    "Energy": LocalSet(
        "uci/energy.csv", "linear", (768, 8),
        "ENB2012_data.xlsx saved as CSV (X1..X8, Y1, Y2; the heating load Y1 "
        "is the target) from https://archive.ics.uci.edu/dataset/242/energy+efficiency"),
    "a1a": LocalSet(
        "libsvm/a1a", "logistic", (1605, A1A_FEATURES),
        "the libsvm file a1a from "
        "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/a1a"),
}

# Table D.5: the thesis's selected log10 γ (GD) and log10 (γ, λ) (NGD, EFGD).
TABLE_D5 = {
    "Boston": {"gd": (-5.250,), "ngd": (0.125, -10.0), "ef": (-1.250, -8.0)},
    "BreastCancer": {"gd": (-5.125,), "ngd": (0.125, -10.0),
                     "ef": (-1.250, -10.0)},
    "a1a": {"gd": (0.250,), "ngd": (0.250, -10.0), "ef": (-0.375, -8.0)},
    "Wine": {"gd": (-5.625,), "ngd": (0.000, -8.5), "ef": (-1.375, -6.0)},
    "Energy": {"gd": (-5.500,), "ngd": (0.000, -7.5), "ef": (0.875, -3.0)},
    "Powerplant": {"gd": (-5.750,), "ngd": (-0.625, -8.0),
                   "ef": (3.375, -1.0)},
    "Yacht": {"gd": (-1.500,), "ngd": (-0.750, -7.5), "ef": (1.625, -6.5)},
}


class LocalDataError(ValueError):
  """A local data file is absent or cannot be parsed (the message says which)."""


def data_dir() -> tuple[Path, str]:
  """``(directory, where it came from)``: ``$NNOPT_DATA_DIR``, else
  ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
  for var in ("NNOPT_DATA_DIR", "TFDS_DATA_DIR"):
    if os.environ.get(var):
      return Path(os.environ[var]).expanduser(), f"${var}"
  return (Path("~/tensorflow_datasets").expanduser(),
          "the default, as neither $NNOPT_DATA_DIR nor $TFDS_DATA_DIR is set")


def local_path(name: str) -> Path:
  """The file looked for for the local data set ``name``."""
  return data_dir()[0] / LOCAL_SETS[name].path


def missing_reason(name: str) -> str:
  """Why ``name`` is NOT RUN: the exact path looked for and how to supply it."""
  root, origin = data_dir()
  spec = LOCAL_SETS[name]
  return (f"{name} is not available offline: no file {root / spec.path} "
          f"(data directory {root}, from {origin}; set NNOPT_DATA_DIR to a "
          f"directory holding {spec.path}). Get {spec.source} and save it "
          f"as that file.")


def read_table(path: str | os.PathLike[str]) -> np.ndarray:
  """A numeric table: comma-, semicolon- or whitespace-separated, an optional
  header row (a first line that is not all numbers), blank lines and ``#``
  comments skipped, empty columns (trailing separators) dropped.

  Raises:
    LocalDataError: a non-numeric field after the first line, ragged rows,
      missing values, or fewer than two columns.
  """
  rows, sep, header = [], None, False
  for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    if sep is None:
      sep = "," if "," in line else ";" if ";" in line else ""
    fields = [f.strip() for f in line.split(sep)] if sep else line.split()
    try:
      rows.append([float(f) if f else np.nan for f in fields])
    except ValueError:
      if rows or header:
        raise LocalDataError(f"{path}, line {lineno}: a non-numeric field in "
                             f"{line[:80]!r}") from None
      header = True
  widths = sorted({len(r) for r in rows})
  if len(widths) > 1:
    raise LocalDataError(f"{path}: rows have {widths} columns (one record per "
                         "line expected; unwrap multi-line records)")
  table = np.array(rows, np.float64)
  if table.ndim != 2 or table.shape[0] == 0:
    raise LocalDataError(f"{path}: no numeric rows")
  table = table[:, ~np.all(np.isnan(table), axis=0)]
  if np.isnan(table).any():
    bad = int(np.flatnonzero(np.isnan(table).any(axis=1))[0])
    raise LocalDataError(f"{path}: missing values (first in data row {bad + 1})")
  if table.shape[1] < 2:
    raise LocalDataError(f"{path}: needs at least a feature and a target column")
  return table


def read_libsvm(path: str | os.PathLike[str],
                n_features: int = A1A_FEATURES) -> tuple[np.ndarray, np.ndarray]:
  """Dense ``(x, y)`` of a libsvm/svmlight file, labels {−1, +1} → {0, 1}."""
  from sklearn.datasets import load_svmlight_file  # pylint: disable=import-outside-toplevel
  try:
    x, y = load_svmlight_file(os.fspath(path), n_features=n_features,
                              zero_based=False)
  except ValueError as e:
    raise LocalDataError(f"{path}: not a libsvm file with {n_features} "
                         f"features ({e})") from None
  labels = set(np.unique(y).tolist())
  if labels <= {-1.0, 1.0}:
    y = (y + 1) / 2
  elif not labels <= {0.0, 1.0}:
    raise LocalDataError(f"{path}: labels {sorted(labels)} are not binary "
                         "{-1, 1} (or {0, 1})")
  return x.toarray().astype(np.float64), y.astype(np.float64)


def load_local(name: str) -> F.GLM:
  """The GLM (bias column appended) of the local data set ``name``.

  Raises:
    LocalDataError: the file is absent (the message is
      :func:`missing_reason`) or malformed.
  """
  spec, path = LOCAL_SETS[name], local_path(name)
  if not path.is_file():
    raise LocalDataError(missing_reason(name))
  if name == "a1a":
    x, y = read_libsvm(path)
  else:
    table = read_table(path)
    if name == "Energy" and table.shape[1] == 10:
      x, y = table[:, :ENERGY_Y1], table[:, ENERGY_Y1]
    else:
      x, y = table[:, :-1], table[:, -1]
  return F.GLM(np.c_[x, np.ones(len(x))], y, spec.kind)


def bundled_datasets() -> dict[str, F.GLM]:
  """The scikit-learn sets: BreastCancer (logistic) and Wine (regression)."""
  from sklearn.datasets import load_breast_cancer, load_wine  # pylint: disable=import-outside-toplevel
  out = {}
  x, y = load_breast_cancer(return_X_y=True)
  out["BreastCancer"] = F.GLM(np.c_[x, np.ones(len(x))], y.astype(float),
                              "logistic")
  x, y = load_wine(return_X_y=True)
  out["Wine"] = F.GLM(np.c_[x, np.ones(len(x))], y.astype(float), "linear")
  return out


def load_datasets() -> tuple[dict[str, F.GLM], dict[str, str]]:
  """``(problems, unavailable)``: every data set that loads, and for each one
  that does not the reason (absent: the path looked for; or malformed)."""
  problems, unavailable = bundled_datasets(), {}
  for name in LOCAL_SETS:
    try:
      problems[name] = load_local(name)
    except LocalDataError as e:
      unavailable[name] = str(e)
  return problems, unavailable


__all__ = ["A1A_FEATURES", "ENERGY_Y1", "LOCAL_SETS", "LocalDataError",
           "LocalSet", "bundled_datasets", "data_dir", "load_datasets",
           "load_local", "local_path", "missing_reason", "read_libsvm",
           "read_table"]
