"""A spec's data: loading its dataset, autoencoder targets and augmentation."""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Mapping

import numpy as np

from nnopt import data
from nnopt.config.spec import thaw


def dataset_key(spec: Mapping[str, Any]) -> str:
  """A key under which two specs share their loaded dataset."""
  d = spec["dataset"]
  return json.dumps({k: d[k] for k in ("name", "data_dir", "seed", "options",
                                       "targets")}, sort_keys=True)


def autoencoder(dataset: data.Dataset) -> data.Dataset:
  """``dataset`` with flattened inputs as its targets (a regression task)."""
  x_train = dataset.x_train.reshape(len(dataset.x_train), -1)
  x_test = dataset.x_test.reshape(len(dataset.x_test), -1)
  return data.Dataset(x_train, x_train, x_test, x_test,
                      f"{dataset.name}_autoencoder", None, "regression",
                      dict(dataset.meta, autoencoder=True))


def load_dataset(spec: Mapping[str, Any]) -> data.Dataset:
  """Loads the dataset of a spec (``DatasetError`` passes through)."""
  d = spec["dataset"]
  dataset = data.load_dataset(d["name"], data_dir=d["data_dir"], seed=d["seed"],
                              **thaw(d["options"]))
  return autoencoder(dataset) if d["targets"] == "inputs" else dataset


def augmentation(spec: Mapping[str, Any], dataset: data.Dataset
                 ) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
  """The host-side augmentation of a spec, or None.

  ``'crop_flip'`` pads normalized images with the value of a black pixel
  unless ``augment_options`` gives ``pad_value``.
  """
  d = spec["dataset"]
  if d["augment"] != "crop_flip":
    return None
  options = thaw(d["augment_options"])
  if "pad_value" not in options and dataset.meta.get("normalized"):
    mean = np.asarray(dataset.meta["mean"], np.float32)
    std = np.asarray(dataset.meta["std"], np.float32)
    options["pad_value"] = -mean / std
  return functools.partial(data.random_crop_flip, **options)


__all__ = ["augmentation", "autoencoder", "dataset_key", "load_dataset"]
