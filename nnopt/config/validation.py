"""Validation of a resolved config against the schema, the table and signatures."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from nnopt import data
from nnopt.config import table
from nnopt.config.errors import ConfigError, did_you_mean
from nnopt.config.optimizers import check_optimizer
from nnopt.config.schema import SCHEMA, Options, check_field, unknown_key
from nnopt.config.sweep import check_sweep
from nnopt.config.signatures import (HOOK_ARGUMENTS, check_fields,
                                     check_options, type_ok)


def _walk(tree: Mapping[str, Any], schema: Mapping[str, Any], where: str):
  for key, node in schema.items():
    path = f"{where}.{key}" if where else key
    if isinstance(node, Options):
      if not isinstance(tree.get(key), Mapping):
        raise ConfigError(f"{path} must be a dict, got {tree.get(key)!r}")
    elif isinstance(node, dict):
      if not isinstance(tree.get(key), Mapping):
        raise ConfigError(f"{path} must be a section (dict), got "
                          f"{tree.get(key)!r}")
      _walk(tree[key], node, path)
    else:
      check_field(path, tree.get(key, node.default), node)
  for key in tree:
    if key not in schema:
      raise unknown_key(f"{where}.{key}" if where else key)


def _positive(path: str, value: Any, optional: bool = True) -> None:
  if value is None and optional:
    return
  if value is None or value < 1:
    raise ConfigError(f"{path} must be a positive integer"
                      f"{' or None' if optional else ''}, got {value!r}")


def _check_dataset(dataset: Mapping[str, Any]) -> None:
  try:
    accepted = data.dataset_options(dataset["name"])
  except data.DatasetError as e:
    raise ConfigError(f"dataset.name: {e}") from None
  options = dataset["options"]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise ConfigError(
        f"dataset.options: dataset {dataset['name']!r} has no option(s) "
        f"{unknown}{did_you_mean(unknown[0], accepted, n=2)}; options: "
        f"{', '.join(accepted) or '(none)'}")
  for key, value in options.items():
    if not type_ok(value, accepted[key]):
      raise ConfigError(
          f"dataset.options.{key} must be {type(accepted[key]).__name__} "
          f"(default {accepted[key]!r}), got {value!r}")
  if dataset["augment"] == "crop_flip":
    try:
      check_options("augment 'crop_flip'", data.random_crop_flip,
                    dataset["augment_options"], skip=2)
    except ConfigError as e:
      raise ConfigError(f"dataset.augment_options: {e}") from None
  elif dataset["augment_options"]:
    raise ConfigError("dataset.augment_options needs dataset.augment = "
                      "'crop_flip'")


def _check_model(model: Mapping[str, Any]) -> None:
  try:
    cls = table.lookup("model", model["name"])
  except ConfigError as e:
    raise ConfigError(f"model.name: {e}") from None
  try:
    check_fields(f"model {model['name']!r}", cls, model["options"],
                 path="model.options")
  except ConfigError as e:
    raise ConfigError(str(e)) from None


def _check_train(train: Mapping[str, Any]) -> None:
  if train["num_steps"] is None and train["num_epochs"] is None:
    raise ConfigError("train.num_steps or train.num_epochs must be set")
  for key in ("batch_size", "num_steps", "num_epochs", "eval_every",
              "checkpoint_every"):
    _positive(f"train.{key}", train[key])
  for key in ("log_every", "eval_batch_size"):
    _positive(f"train.{key}", train[key], optional=False)
  buckets = train["buckets"]
  if buckets is not None and not all(
      isinstance(b, int) and not isinstance(b, bool) and b > 0
      for b in buckets):
    raise ConfigError(f"train.buckets must be a list of positive integers or "
                      f"None, got {buckets!r}")


def _check_hooks(hooks: Sequence[Any]) -> None:
  for i, hook in enumerate(hooks):
    where = f"hooks[{i}]"
    if not isinstance(hook, Mapping) or "name" not in hook:
      raise ConfigError(f"{where} must be {{'name': ..., 'options': {{...}}}},"
                        f" got {hook!r}")
    extra = sorted(set(hook) - {"name", "options"})
    if extra:
      raise ConfigError(f"{where} has unknown key(s) {extra}; keys: name, "
                        "options")
    try:
      factory = table.lookup("hook", hook["name"])
    except ConfigError as e:
      raise ConfigError(f"hooks: {e}") from None
    try:
      check_options(f"hook {hook['name']!r}", factory,
                    dict(hook.get("options") or {}), supplied=HOOK_ARGUMENTS)
    except ConfigError as e:
      raise ConfigError(f"{where}.options: {e}") from None


def validate(config: Mapping[str, Any]) -> None:
  """Checks a resolved config (every key present); raises :class:`ConfigError`.

  Checks keys and types against the schema, then names (dataset, model, loss,
  optimizer, schedule, hooks) against the table and options against
  signatures. No data are loaded and nothing is compiled.
  """
  _walk(config, SCHEMA, "")
  _check_dataset(config["dataset"])
  _check_model(config["model"])
  try:
    table.lookup("loss", config["loss"])
  except ConfigError as e:
    raise ConfigError(f"loss: {e}") from None
  opt = config["optimizer"]
  try:
    check_optimizer(opt["name"], opt["learning_rate"], opt["options"])
  except ConfigError as e:
    raise ConfigError(f"optimizer: {e}") from None
  _check_train(config["train"])
  _check_hooks(config["hooks"])
  check_sweep(config)


__all__ = ["validate"]
