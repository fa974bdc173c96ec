"""``--set`` overrides and the resolution of a config into one run per variant."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from nnopt.config.schema import (_OWNS, _SPECIAL, DEFAULT_VARIANT, SCHEMA,
                                     ConfigError, Field, Options,
                                     _check_field, _merge, _unknown_key,
                                     defaults, to_plain)
from nnopt.config.validation import validate


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

  ``none``/``null``, ``true``/``false`` (any case) are accepted as well.
  """
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
      return None
    if lowered in ("true", "false"):
      return lowered == "true"
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
    raise _unknown_key(".".join([here, *rest]))
  node = schema.get(key) if schema is not None else None
  if not rest:
    if isinstance(node, Field):
      try:
        _check_field(here, value, node)
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
      raise _unknown_key(".".join([here, *rest]))
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
    _apply_one(tree, o)
  return tree


def _apply_one(tree: dict[str, Any], o: Override) -> None:
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
  elif head == "quick":
    if len(o.path) < 2:
      raise ConfigError(f"--set {o.text}: use quick.KEY=VALUE")
    _set(tree.setdefault("quick", {}), o.path[1:], o.value, SCHEMA, "quick",
         o.text)
  else:
    _set(tree, o.path, o.value, SCHEMA, "", o.text)

def _renames(o: Override) -> bool:
  """Whether ``o`` sets a section's ``name``/``augment`` (which owns options)."""
  if len(o.path) != 2 or o.path[1] not in _OWNS:
    return False
  section = SCHEMA.get(o.path[0])
  return isinstance(section, dict) and isinstance(
      section.get(_OWNS[o.path[1]]), Options)

def variant_names(config: Any) -> list[str]:
  """The config's variants in definition order (``['default']`` if none)."""
  tree = to_plain(config)
  variants = tree.get("variants") or {}
  if not isinstance(variants, Mapping):
    raise ConfigError(f"variants must be a dict name -> partial config, got "
                      f"{variants!r}")
  order = tree.get("variant_order") or []
  if not isinstance(order, list) or not all(isinstance(v, str) for v in order):
    raise ConfigError(f"variant_order must be a list of variant names, got "
                      f"{order!r}")
  unknown = [v for v in order if v not in variants]
  if unknown:
    raise ConfigError(f"variant_order names unknown variant(s) {unknown}; "
                      f"variants: {', '.join(variants) or '(none)'}")
  names = list(dict.fromkeys(order)) + [v for v in variants if v not in order]
  return names or [DEFAULT_VARIANT]


def resolve(config: Any, variant: str | None = None, *, quick: bool = False,
            overrides: Iterable[Override | str] = ()) -> dict[str, Any]:
  """The full, validated plain-dict config of one variant.

  Args:
    config: a ConfigDict or dict in the layout of the module docstring.
    variant: variant name (None: the first, or ``'default'``).
    quick: merge the ``quick`` section.
    overrides: ``--set`` overrides (strings or :class:`Override`).

  Returns:
    A plain dict with every schema key (no ``variants`` / ``quick``).

  Raises:
    ConfigError: unknown key, name or option, or a wrong type.
  """
  from nnopt.config import plugins  # pylint: disable=g-import-not-at-top
  plugins.register_all()
  overrides = [parse_override(o) if isinstance(o, str) else o
               for o in overrides]
  tree = apply_overrides(
      config, [o for o in overrides if o.path[0] in _SPECIAL])
  if not isinstance(tree, Mapping):
    raise ConfigError(f"get_config() must return a ConfigDict or dict, got "
                      f"{type(tree).__name__}")
  names = variant_names(tree)
  variant = names[0] if variant is None else variant
  if variant not in names:
    raise ConfigError(f"unknown variant {variant!r}; variants: "
                      f"{', '.join(names)}")
  resolved = defaults()
  _merge(resolved, {k: v for k, v in tree.items() if k not in _SPECIAL},
         SCHEMA, "")
  if tree.get("variants"):
    _merge(resolved, tree["variants"][variant], SCHEMA, f"variants.{variant}")
  if quick and tree.get("quick"):
    _merge(resolved, tree["quick"], SCHEMA, "quick")
  base_overrides = [o for o in overrides if o.path[0] not in _SPECIAL]
  for o in sorted(base_overrides, key=lambda o: not _renames(o)):
    if _renames(o):
      section = resolved.get(o.path[0])
      if isinstance(section, dict) and section.get(o.path[1]) != o.value:
        section[_OWNS[o.path[1]]] = {}
    _apply_one(resolved, o)
  validate(resolved)
  return resolved
