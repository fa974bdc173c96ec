"""Validation of a resolved config against registries and signatures, and hooks."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import numbers
import types
import typing
from typing import Any, Callable, Mapping, Sequence

from nnopt.config import optimizers as optimizers_lib
from nnopt.config.schema import (SCHEMA, ConfigError, NoneType, Options,
                                     _check_field, _unknown_key)


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
      _check_field(path, tree.get(key, node.default), node)
  for key in tree:
    if key not in schema:
      raise _unknown_key(f"{where}.{key}" if where else key)


def _positive(path: str, value: Any, optional: bool = True) -> None:
  if value is None and optional:
    return
  if value is None or value < 1:
    raise ConfigError(f"{path} must be a positive integer"
                      f"{' or None' if optional else ''}, got {value!r}")


def _hint_fits(value: Any, hint: Any) -> bool:
  """Lenient runtime check of ``value`` against a type hint."""
  origin = typing.get_origin(hint)
  args = typing.get_args(hint)
  if hint is Any:
    return True
  if origin in (typing.Union, types.UnionType):
    return any(_hint_fits(value, a) for a in args)
  if hint is NoneType:
    return value is None
  if hint is bool:
    return isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
  if hint is str:
    return isinstance(value, str)
  if origin is tuple or hint is tuple:
    if not isinstance(value, (list, tuple)):
      return False
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_hint_fits(v, args[0]) for v in value)
    if args:
      return len(args) == len(value) and all(
          _hint_fits(v, a) for v, a in zip(value, args))
    return True
  return True


def _hint_name(hint: Any) -> str:
  text = str(hint).replace("typing.", "")
  return getattr(hint, "__name__", text) if not typing.get_args(hint) else text


def _check_model(model: Mapping[str, Any]) -> None:
  from nnopt.models import MODELS  # pylint: disable=g-import-not-at-top
  name, options = model["name"], model["options"]
  if name not in MODELS:
    near = difflib.get_close_matches(name, list(MODELS), n=2)
    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
    raise ConfigError(f"model.name: unknown model {name!r}{hint}; known: "
                      f"{', '.join(sorted(MODELS))}")
  cls = MODELS[name]
  fields = {f.name: f for f in dataclasses.fields(cls)
            if f.name not in ("parent", "name")}
  unknown = sorted(set(options) - set(fields))
  if unknown:
    near = difflib.get_close_matches(unknown[0], list(fields), n=2)
    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
    raise ConfigError(f"model.options: model {name!r} has no option(s) "
                      f"{unknown}{hint}; options: {', '.join(fields)}")
  missing = [n for n, f in fields.items()
             if f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING and n not in options]
  if missing:
    raise ConfigError(f"model.options: model {name!r} needs option(s) "
                      f"{missing}")
  try:
    hints = typing.get_type_hints(cls)
  except Exception:  # pylint: disable=broad-except
    return
  for key, value in options.items():
    if key in hints and not _hint_fits(value, hints[key]):
      raise ConfigError(
          f"model.options.{key} must be {_hint_name(hints[key])}, got "
          f"{value!r} ({type(value).__name__})")


def _check_dataset(dataset: Mapping[str, Any]) -> None:
  from nnopt import data  # pylint: disable=g-import-not-at-top
  try:
    accepted = data.dataset_options(dataset["name"])
  except data.DatasetError as e:
    raise ConfigError(f"dataset.name: {e}") from None
  options = dataset["options"]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    near = difflib.get_close_matches(unknown[0], list(accepted), n=2)
    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
    raise ConfigError(
        f"dataset.options: dataset {dataset['name']!r} has no option(s) "
        f"{unknown}{hint}; options: {', '.join(accepted) or '(none)'}")
  for key, value in options.items():
    if not optimizers_lib._type_ok(value, accepted[key]):  # pylint: disable=protected-access
      raise ConfigError(
          f"dataset.options.{key} must be {type(accepted[key]).__name__} "
          f"(default {accepted[key]!r}), got {value!r}")
  if dataset["augment"] == "crop_flip":
    try:
      optimizers_lib.check_options("augment 'crop_flip'",
                                   data.random_crop_flip,
                                   dataset["augment_options"], skip=2)
    except optimizers_lib.OptimizerError as e:
      raise ConfigError(f"dataset.augment_options: {e}") from None
  elif dataset["augment_options"]:
    raise ConfigError("dataset.augment_options needs dataset.augment = "
                      "'crop_flip'")


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
    factory = get_hook(hook["name"])
    options = dict(hook.get("options") or {})
    options.pop("experiment", None)
    try:
      optimizers_lib.check_options(f"hook {hook['name']!r}", factory, {
          **options, **({"experiment": None} if _wants_experiment(factory)
                        else {})})
    except optimizers_lib.OptimizerError as e:
      raise ConfigError(f"{where}.options: {e}") from None


def validate(config: Mapping[str, Any]) -> None:
  """Checks a resolved config (every key present); raises :class:`ConfigError`.

  Checks keys and types against the schema, then names (dataset, model, loss,
  optimizer, schedule, hooks) against their registries and options against
  signatures. No data are loaded and nothing is compiled.
  """
  _walk(config, SCHEMA, "")
  _check_dataset(config["dataset"])
  _check_model(config["model"])
  from nnopt.losses import LOSSES  # pylint: disable=g-import-not-at-top
  if config["loss"] not in LOSSES:
    raise ConfigError(f"loss: unknown loss {config['loss']!r}; known: "
                      f"{', '.join(sorted(LOSSES))}")
  opt = config["optimizer"]
  try:
    optimizers_lib.check_optimizer(opt["name"], opt["learning_rate"],
                                   opt["options"])
  except optimizers_lib.OptimizerError as e:
    raise ConfigError(f"optimizer: {e}") from None
  _check_train(config["train"])
  if config["capture"]["fisher_samples"] < 0:
    raise ConfigError("capture.fisher_samples must be >= 0")
  _check_hooks(config["hooks"])

# -- hooks registry ----------------------------------------------------------------

HOOKS: dict[str, Callable[..., Any]] = {}


def register_hook(name: str, factory: Callable[..., Any], *,
                  overwrite: bool = False) -> None:
  """Makes a loop hook available to configs as ``hooks: [{'name': name, ...}]``.

  Args:
    name: registry name.
    factory: ``factory(**options) -> nnopt.engine.trainer.Hook``. If it has a
      parameter named ``experiment``, it also receives the built
      :class:`Experiment` (dataset, model, loss, …).
    overwrite: allow replacing an existing entry.
  """
  if name in HOOKS and not overwrite:
    raise ConfigError(f"hook {name!r} is already registered")
  HOOKS[name] = factory


def get_hook(name: str) -> Callable[..., Any]:
  if name not in HOOKS:
    near = difflib.get_close_matches(str(name), list(HOOKS), n=2)
    hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
    raise ConfigError(f"hooks: unknown hook {name!r}{hint}; known: "
                      f"{', '.join(sorted(HOOKS)) or '(none registered)'}")
  return HOOKS[name]


def _wants_experiment(factory: Callable[..., Any]) -> bool:
  return "experiment" in inspect.signature(factory).parameters
