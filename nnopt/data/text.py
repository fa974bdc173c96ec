"""Character-level language-modelling data (Balles P4).

A text becomes non-overlapping sequences of ``seq_len`` character ids; the
targets are the same sequences shifted by one character. The first
``1 − test_fraction`` of the text is the training split (DeepOBS
``tolstoi``: 80 / 20), so train and test never share characters.

* ``tolstoi``: War and Peace from a local plain-text file (there is no TFDS
  build of it); the error message says how to fetch it.
* ``embedded_text``: a small English corpus that ships with the install (the
  dataset descriptions of scikit-learn, about 43 000 characters, over a fixed
  96-character alphabet), for tests and ``--quick`` runs.

Inputs are float32 ids ``(N, seq_len)`` (exact below 2²⁴), targets int32
ids of the same shape; ``num_classes`` is the vocabulary size and
``meta['vocab']`` the characters in id order. Losses and accuracies on such
targets are per character (:mod:`nnopt.losses`).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from nnopt.data.dataset import Dataset, DatasetError

TOLSTOI_URL = "https://www.gutenberg.org/cache/epub/2600/pg2600.txt"


#: Newline plus printable ASCII: the fixed vocabulary of ``embedded_text``.
ASCII_ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))


def char_sequences(text: str, name: str, *, seq_len: int = 50,
                   test_fraction: float = 0.2,
                   alphabet: str | None = None) -> Dataset:
  """Splits ``text`` into next-character prediction sequences.

  The vocabulary is the sorted set of the text's characters, or ``alphabet``
  (characters outside it become ``'?'``, which must be in it), so that its
  size does not depend on the text.

  Raises:
    DatasetError: a bad ``seq_len``/``test_fraction`` or a text too short for
      one training and one test sequence.
  """
  if seq_len < 1:
    raise DatasetError(f"{name}: seq_len must be ≥ 1, got {seq_len}")
  if not 0.0 < test_fraction < 1.0:
    raise DatasetError(f"{name}: test_fraction must be in (0, 1), got "
                       f"{test_fraction}")
  if alphabet is not None:
    if "?" not in alphabet:
      raise DatasetError(f"{name}: the alphabet must contain '?'")
    known = set(alphabet)
    text = "".join(c if c in known else "?" for c in text)
    vocab = list(alphabet)
  else:
    vocab = sorted(set(text))
  lookup = {c: i for i, c in enumerate(vocab)}
  ids = np.fromiter((lookup[c] for c in text), np.int32, len(text))
  split = int(len(ids) * (1.0 - test_fraction))
  parts = []
  for part in (ids[:split], ids[split:]):
    n = (len(part) - 1) // seq_len
    if n < 1:
      raise DatasetError(f"{name}: {len(text)} characters are too few for "
                         f"sequences of {seq_len} with test_fraction "
                         f"{test_fraction}")
    parts.append((part[:n * seq_len].reshape(n, seq_len).astype(np.float32),
                  part[1:n * seq_len + 1].reshape(n, seq_len)))
  (x_train, y_train), (x_test, y_test) = parts
  return Dataset(x_train, y_train, x_test, y_test, name, len(vocab),
                 meta={"vocab": "".join(vocab), "seq_len": seq_len})


def load_tolstoi(*, data_dir=None, seed=0, path: str | None = None,
                 seq_len: int = 50, test_fraction: float = 0.2) -> Dataset:
  """War and Peace from ``path`` or ``DATA_DIR/tolstoi/war_and_peace.txt``.

  Raises:
    DatasetError: when the text file is absent (with the download command).
  """
  del seed
  candidates = [path] if path else []
  for root in (data_dir, os.environ.get("TFDS_DATA_DIR")):
    if root:
      candidates.append(os.path.join(os.path.expanduser(root), "tolstoi",
                                     "war_and_peace.txt"))
  found = next((c for c in candidates if c and os.path.isfile(c)), None)
  if found is None:
    looked = ", ".join(candidates) or "DATA_DIR/tolstoi/war_and_peace.txt"
    raise DatasetError(
        f"War and Peace is not available locally (looked for {looked}); on a "
        "machine with internet: mkdir -p DATA_DIR/tolstoi && curl -L "
        f"{TOLSTOI_URL} -o DATA_DIR/tolstoi/war_and_peace.txt, then pass "
        "--data_dir DATA_DIR")
  with open(found, encoding="utf-8") as f:
    text = f.read()
  return char_sequences(text, "tolstoi", seq_len=seq_len,
                        test_fraction=test_fraction)


def embedded_corpus() -> str:
  """The dataset descriptions shipped with scikit-learn, concatenated."""
  import sklearn.datasets  # pylint: disable=import-outside-toplevel
  folder = os.path.join(os.path.dirname(sklearn.datasets.__file__), "descr")
  files = sorted(glob.glob(os.path.join(folder, "*.rst")))
  if not files:
    raise DatasetError(f"embedded_text: no .rst files under {folder}")
  texts = []
  for file in files:
    with open(file, encoding="utf-8") as f:
      texts.append(f.read())
  return "\n".join(texts)


def load_embedded_text(*, data_dir=None, seed=0, seq_len: int = 50,
                       test_fraction: float = 0.2) -> Dataset:
  """A small embedded character corpus (scikit-learn's dataset docs) over
  the fixed 96-character :data:`ASCII_ALPHABET`."""
  del data_dir, seed
  return char_sequences(embedded_corpus(), "embedded_text", seq_len=seq_len,
                        test_fraction=test_fraction, alphabet=ASCII_ALPHABET)


__all__ = ["ASCII_ALPHABET", "TOLSTOI_URL", "char_sequences", "embedded_corpus",
           "load_embedded_text", "load_tolstoi"]
