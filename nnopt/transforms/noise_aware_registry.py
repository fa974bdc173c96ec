"""Registers the noise-aware family with nnopt's config registries.

:func:`register` (idempotent) makes these names available to configs:

* optimizers: ``msgd``, ``sign_sgd``, ``msign_sgd``, ``svag``, ``msvag``,
  ``msvag_mb``, ``adam_star``, ``l1_sign_gd``, ``block_normalized_gd``,
  ``coordinate_descent``, ``diag_ef``, ``cabs_sgd``;
* hooks: ``cabs`` (:class:`nnopt.cabs.CABS`), ``competitor``
  (:class:`nnopt.cabs.Competitor`);
* models: ``conv_pool_net``, ``wide_resnet``, ``char_lstm``
  (:mod:`nnopt.models.deepobs`);
* dataset: ``tolstoi`` (War and Peace as 50-character sequences, from a
  local text file; P4).
"""

from __future__ import annotations

import os

import numpy as np


def load_tolstoi(*, data_dir=None, seed=0, path: str | None = None,
                 seq_len: int = 50, test_fraction: float = 0.2):
  """War and Peace (P4) from a local plain-text file.

  Inputs are ``(N, seq_len)`` character ids (float32), targets the next
  characters (int32, same shape). The engine's losses are per example, so a
  per-character loss needs an engine change (see the P4 config).

  Raises:
    nnopt.data.DatasetError: when the text file is absent.
  """
  del seed
  from nnopt.data import Dataset, DatasetError  # pylint: disable=import-outside-toplevel
  candidates = [path] if path else []
  for root in (data_dir, os.environ.get("TFDS_DATA_DIR")):
    if root:
      candidates.append(os.path.join(root, "tolstoi", "war_and_peace.txt"))
  found = next((c for c in candidates if c and os.path.isfile(c)), None)
  if found is None:
    raise DatasetError(
        "War and Peace is not available locally (looked for "
        f"{candidates or 'DATA_DIR/tolstoi/war_and_peace.txt'}); on a machine "
        "with internet: mkdir -p DATA_DIR/tolstoi && curl -L "
        "https://www.gutenberg.org/cache/epub/2600/pg2600.txt -o "
        "DATA_DIR/tolstoi/war_and_peace.txt")
  text = open(found, encoding="utf-8").read()
  vocab = sorted(set(text))
  ids = np.array([vocab.index(c) for c in text], np.int32)
  n = (len(ids) - 1) // seq_len
  x = ids[:n * seq_len].reshape(n, seq_len)
  y = ids[1:n * seq_len + 1].reshape(n, seq_len)
  split = int(n * (1 - test_fraction))
  return Dataset(x[:split].astype(np.float32), y[:split],
                 x[split:].astype(np.float32), y[split:], "tolstoi", None,
                 "regression", {"vocab": "".join(vocab)})


def register() -> None:
  """Adds the names above to the registries (no-op for names already there)."""
  # pylint: disable=import-outside-toplevel
  from nnopt import cabs, config, optimizers
  from nnopt.models import MODELS, register_model
  from nnopt.models import deepobs
  from nnopt.transforms import batch_variance, noise_aware, steepest_descent

  factories = {
      "msgd": noise_aware.msgd, "sign_sgd": noise_aware.sign_sgd,
      "msign_sgd": noise_aware.msign_sgd, "svag": noise_aware.svag,
      "msvag": noise_aware.msvag, "msvag_mb": noise_aware.msvag_mb,
      "adam_star": noise_aware.adam_star,
      "l1_sign_gd": steepest_descent.l1_sign_gd,
      "block_normalized_gd": steepest_descent.block_normalized_gd,
      "coordinate_descent": steepest_descent.coordinate_descent,
      "diag_ef": steepest_descent.diag_ef,
      "cabs_sgd": batch_variance.cabs_sgd,
  }
  for name, factory in factories.items():
    if name not in optimizers.OPTIMIZERS:
      optimizers.register_optimizer(name, factory)
  for name, hook in (("cabs", cabs.CABS), ("competitor", cabs.Competitor)):
    if name not in config.HOOKS:
      config.register_hook(name, hook)
  for name, cls in deepobs.MODEL_CLASSES.items():
    if name not in MODELS:
      register_model(name, cls)
  from nnopt import data  # pylint: disable=import-outside-toplevel
  if "tolstoi" not in data.available_datasets():
    data.register_dataset("tolstoi", load_tolstoi)


__all__ = ["load_tolstoi", "register"]
