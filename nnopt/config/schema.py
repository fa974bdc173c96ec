"""The config schema: its keys, types and defaults, and merging of partial configs.

See :mod:`nnopt.config` for the layout. A leaf of :data:`SCHEMA` is a
:class:`Field`; an :class:`Options` marks a free-form dict checked later
against a signature (dataset loader, model dataclass, optimizer factory).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable, Mapping

from ml_collections import ConfigDict

from nnopt.config.errors import ConfigError, close_matches, suggest


# -- the schema ----------------------------------------------------------------

NoneType = type(None)


@dataclasses.dataclass(frozen=True)
class Field:
  """A leaf of the schema: allowed types, default and documentation."""

  types: tuple[type, ...]
  default: Any
  doc: str = ""
  choices: tuple[Any, ...] | None = None


class Options(dict):
  """Marks a free-form options dict in the schema (checked by signature)."""


def _f(types_, default, doc="", choices=None) -> Field:
  types_ = types_ if isinstance(types_, tuple) else (types_,)
  return Field(types_, default, doc, choices)


_INT, _OPT_INT = (int,), (int, NoneType)
_NUMBER = (float, int, dict, NoneType)

SCHEMA: dict[str, Any] = {
    "name": _f((str, NoneType), None, "display name (default: file stem)"),
    "description": _f(str, "", "one line on what the experiment shows"),
    "dataset": {
        "name": _f(str, "spiral", "registered dataset name"),
        "data_dir": _f((str, NoneType), None, "IDX or TFDS data directory"),
        "seed": _f(int, 0, "seed of the dataset construction"),
        "options": Options(),
        "augment": _f((str, NoneType), None, "host-side augmentation",
                      choices=(None, "crop_flip")),
        "augment_options": Options(),
        "targets": _f((str, NoneType), None,
                      "None: the dataset's targets; 'inputs': the flattened "
                      "inputs (an autoencoder)", choices=(None, "inputs")),
    },
    "model": {
        "name": _f(str, "fnn", "registered model name"),
        "options": Options(),
    },
    "loss": _f(str, "softmax_cross_entropy", "registered loss name"),
    "optimizer": {
        "name": _f(str, "sgd", "registered optimizer name"),
        "learning_rate": _f(_NUMBER, 0.01,
                            "number, None or {'schedule': name, ...}"),
        "options": Options(),
    },
    "train": {
        "batch_size": _f(_OPT_INT, 128, "global batch size; None: full batch"),
        "num_steps": _f(_OPT_INT, None, "stop after this many steps"),
        "num_epochs": _f(_OPT_INT, 1, "stop after this many epochs"),
        "seed": _f(int, 0, "initialization / sampling seed"),
        "eval_every": _f(_OPT_INT, None, "test evaluation period (steps)"),
        "eval_train": _f(bool, False, "also evaluate the full training loss"),
        "eval_batch_size": _f(int, 1000, "evaluation chunk size"),
        "log_every": _f(int, 1, "metrics record period (steps)"),
        "checkpoint_every": _f(_OPT_INT, None, "checkpoint period (steps)"),
        "buckets": _f((list, tuple, NoneType), None,
                      "batch-size buckets for dynamic batch sizes"),
    },
    "hooks": _f((list, tuple), [], "[{'name': ..., 'options': {...}}]"),
    "sweep": {
        "seeds": _f((int, list, tuple, NoneType), None,
                    "runs axis: a count (from train.seed) or a list of seeds"),
        "grid": Options(),
    },
}
#: Top-level keys of a config file that are not part of a run.
SPECIAL_KEYS = ("variants", "variant_order", "quick", "panels")
#: Changing a section's ``name`` (or ``augment``) drops the options that
#: belonged to the old one, unless the same partial config gives new ones.
OWNED_OPTIONS = {"name": "options", "augment": "augment_options"}
DEFAULT_VARIANT = "default"


def _defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
  out = {}
  for key, node in schema.items():
    if isinstance(node, Options):
      out[key] = {}
    elif isinstance(node, dict):
      out[key] = _defaults(node)
    else:
      out[key] = copy.deepcopy(node.default)
  return out


def defaults() -> dict[str, Any]:
  """The default config as a plain dict (no variants, no quick section)."""
  return _defaults(SCHEMA)


def base_config():
  """The default config as a ``ConfigDict`` to start a config file from.

  It is not type-safe at assignment (a learning rate may become a schedule
  dict); :func:`resolve` checks every type instead.
  """
  config = defaults()
  config["variants"] = {}
  config["variant_order"] = []
  config["quick"] = {}
  config["panels"] = []
  return ConfigDict(config, type_safe=False)


def schema_paths(schema: Mapping[str, Any] = SCHEMA,
                 prefix: str = "") -> list[str]:
  """Every key of the schema as a dotted path (options dicts included)."""
  paths = []
  for key, node in schema.items():
    path = prefix + key
    paths.append(path)
    if isinstance(node, dict) and not isinstance(node, Options):
      paths.extend(schema_paths(node, path + "."))
  return paths


# -- plain dicts -----------------------------------------------------------------


def to_plain(config: Any) -> Any:
  """ConfigDicts/dicts → dicts, tuples → lists (recursively); JSON-friendly."""
  if hasattr(config, "to_dict") and not isinstance(config, dict):
    config = config.to_dict()
  if isinstance(config, Mapping):
    return {str(k): to_plain(v) for k, v in config.items()}
  if isinstance(config, (list, tuple)):
    return [to_plain(v) for v in config]
  if hasattr(config, "item") and hasattr(config, "dtype"):  # numpy scalars
    return config.item()
  return config


def _type_name(types_: Iterable[type]) -> str:
  names = {int: "int", float: "float", str: "str", bool: "bool",
           dict: "dict", list: "list", tuple: "list", NoneType: "None"}
  seen = []
  for t in types_:
    name = names.get(t, t.__name__)
    if name not in seen:
      seen.append(name)
  return " or ".join(seen)


def _fits(value: Any, types_: tuple[type, ...]) -> bool:
  if isinstance(value, bool):
    return bool in types_
  if isinstance(value, int) and (int in types_ or float in types_):
    return True
  if isinstance(value, float) and float in types_:
    return True
  if isinstance(value, (list, tuple)):
    return list in types_ or tuple in types_
  if isinstance(value, Mapping):
    return dict in types_
  return any(t not in (int, float, bool, list, tuple, dict)
             and isinstance(value, t) for t in types_)


def check_field(path: str, value: Any, field: Field) -> None:
  """Checks one leaf value against its :class:`Field` (type and choices)."""
  if not _fits(value, field.types):
    raise ConfigError(f"{path} must be {_type_name(field.types)}, got "
                      f"{value!r} ({type(value).__name__})")
  if field.choices is not None and value not in field.choices:
    raise ConfigError(f"{path} must be one of {list(field.choices)}, got "
                      f"{value!r}")


def unknown_key(path: str) -> ConfigError:
  """The error for an unknown key, suggesting the closest schema keys."""
  prefix, rest = "", path
  parts = path.split(".")
  if parts[0] == "variants" and len(parts) > 2:
    prefix, rest = ".".join(parts[:2]) + ".", ".".join(parts[2:])
  elif parts[0] == "quick" and len(parts) > 1:
    prefix, rest = "quick.", ".".join(parts[1:])
  known = schema_paths() + ([] if prefix else list(SPECIAL_KEYS))
  last = rest.rsplit(".", 1)[-1]
  near = (close_matches(rest, known)
          or [k for k in known if k.rsplit(".", 1)[-1] == last][:3]
          or close_matches(rest, known, cutoff=0.3))
  return ConfigError(f"unknown config key {path!r}"
                     f"{suggest(prefix + k for k in near)}")


def merge(base: dict[str, Any], partial: Mapping[str, Any],
          schema: Mapping[str, Any], where: str) -> None:
  """Merges ``partial`` into ``base`` in place, checking keys against ``schema``."""
  if not isinstance(partial, Mapping):
    raise ConfigError(f"{where or 'config'} must be a dict, got {partial!r}")
  for key, value in partial.items():
    path = f"{where}.{key}" if where else key
    if key not in schema:
      raise unknown_key(path)
    node = schema[key]
    owned = OWNED_OPTIONS.get(key) if isinstance(
        schema.get(OWNED_OPTIONS.get(key)), Options) else None
    if owned and owned not in partial and base.get(key) != value:
      base[owned] = {}  # options of the old name do not carry over
    if isinstance(node, Options):
      if not isinstance(value, Mapping):
        raise ConfigError(f"{path} must be a dict of options, got {value!r}")
      base[key] = copy.deepcopy(to_plain(value))
    elif isinstance(node, dict):
      merge(base.setdefault(key, {}), value, node, path)
    else:
      base[key] = copy.deepcopy(to_plain(value))
