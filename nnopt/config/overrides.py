"""``--set`` overrides: parsing ``KEY=VALUE`` and applying it to a config tree."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from nnopt.config.errors import ConfigError
from nnopt.config.schema import (OWNED_OPTIONS, SCHEMA, Field, Options,
                                 check_field, to_plain, unknown_key)


# -- overrides (--set) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Override:
  """One ``--set key=value``: a dotted path and a parsed value."""

  path: tuple[str, ...]
  value: Any
  text: str

  @property
  def key(self) -> str:
    return ".".join(self.path)


def parse_value(text: str) -> Any:
  """``ast.literal_eval`` of ``text``, falling back to the string itself.

  ``none``/``null``, ``true``/``false``, ``nan``, ``inf`` (any case) are
  accepted as well.
  """
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
      return None
    if lowered in ("true", "false"):
      return lowered == "true"
    if lowered in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
      return float(lowered)  # so that a check can name the value
    return text


def parse_override(text: str) -> Override:
  """Parses ``'a.b=value'``; raises :class:`ConfigError` without ``=``."""
  if "=" not in text:
    raise ConfigError(f"--set needs KEY=VALUE, got {text!r}")
  key, raw = text.split("=", 1)
  key = key.strip()
  if not key or any(not part for part in key.split(".")):
    raise ConfigError(f"--set has an empty key in {text!r}")
  return Override(tuple(key.split(".")), to_plain(parse_value(raw)), text)


def _set(tree: dict[str, Any], path: Sequence[str], value: Any,
         schema: Mapping[str, Any], where: str, text: str) -> None:
  """Sets ``path`` in ``tree``, checking it against ``schema``."""
  key, rest = path[0], path[1:]
  here = f"{where}.{key}" if where else key
  if schema is not None and key not in schema:
    raise unknown_key(".".join([here, *rest]))
  node = schema.get(key) if schema is not None else None
  if not rest:
    if isinstance(node, Field):
      try:
        check_field(here, value, node)
      except ConfigError as e:
        raise ConfigError(f"--set {text}: {e}") from None
    elif isinstance(node, dict) and not isinstance(value, Mapping):
      raise ConfigError(f"--set {text}: {here} is a section (dict), got "
                        f"{value!r}")
    tree[key] = value
    return
  if isinstance(node, Field):
    # A leaf may hold a dict (a schedule); descend into it freely.
    current = tree.get(key)
    if not isinstance(current, Mapping):
      if key in tree:
        raise ConfigError(
            f"--set {text}: {here} is {current!r}, not a dict; set it as a "
            f"whole, e.g. --set \"{here}={{...}}\"")
      raise unknown_key(".".join([here, *rest]))
    _set(current, rest, value, None, here, text)
    return
  child = tree.setdefault(key, {})
  if not isinstance(child, dict):
    raise ConfigError(f"--set {text}: {here} is {child!r}, not a dict")
  if isinstance(node, Options) or node is None:
    _set(child, rest, value, None, here, text)
  else:
    _set(child, rest, value, node, here, text)


def apply_overrides(config: Any, overrides: Iterable[Override | str]) -> dict:
  """Applies ``--set`` overrides to a whole config (variants and quick included).

  Overrides of ``variants.NAME.…`` and ``quick.…`` edit those sections; the
  others edit the base config. (:func:`resolve` applies base overrides after
  merging a variant, so that they win over it.)
  """
  tree = to_plain(config)
  for o in overrides:
    o = parse_override(o) if isinstance(o, str) else o
    apply_one(tree, o)
  return tree


def apply_one(tree: dict[str, Any], o: Override) -> None:
  """Applies one override to ``tree`` in place (see :func:`apply_overrides`)."""
  head = o.path[0]
  if head == "variants":
    variants = tree.setdefault("variants", {})
    if len(o.path) < 3:
      raise ConfigError(f"--set {o.text}: use variants.NAME.KEY=VALUE")
    if o.path[1] not in variants:
      raise ConfigError(
          f"--set {o.text}: unknown variant {o.path[1]!r}; variants: "
          f"{', '.join(variants) or '(none)'}")
    _set(variants[o.path[1]], o.path[2:], o.value, SCHEMA,
         f"variants.{o.path[1]}", o.text)
  elif head == "variant_order":
    if len(o.path) != 1 or not isinstance(o.value, list):
      raise ConfigError(f"--set {o.text}: use variant_order=[NAME, ...]")
    tree["variant_order"] = o.value
  elif head == "panels":
    if len(o.path) != 1:
      raise ConfigError(f"--set {o.text}: use panels=[(TITLE, [NAME, ...]), "
                        "...]")
    tree["panels"] = o.value
  elif head == "quick":
    if len(o.path) < 2:
      raise ConfigError(f"--set {o.text}: use quick.KEY=VALUE")
    _set(tree.setdefault("quick", {}), o.path[1:], o.value, SCHEMA, "quick",
         o.text)
  else:
    _set(tree, o.path, o.value, SCHEMA, "", o.text)


def renames(o: Override) -> bool:
  """Whether ``o`` sets a section's ``name``/``augment`` (which owns options)."""
  if len(o.path) != 2 or o.path[1] not in OWNED_OPTIONS:
    return False
  section = SCHEMA.get(o.path[0])
  return isinstance(section, dict) and isinstance(
      section.get(OWNED_OPTIONS[o.path[1]]), Options)
