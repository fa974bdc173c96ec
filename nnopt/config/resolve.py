"""Resolving a config file's tree into the :class:`Spec` of one variant.

A run of variant ``v`` uses ``defaults ← config ← variants[v] ← quick (with
--quick) ← --set overrides``; :func:`resolve` merges them, validates the
result once (:func:`nnopt.config.validation.validate`) and freezes it.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from nnopt.config.errors import ConfigError, did_you_mean
from nnopt.config.overrides import (Override, apply_one, apply_overrides,
                                    parse_override, renames)
from nnopt.config.schema import (OWNED_OPTIONS, SCHEMA, SPECIAL_KEYS, defaults,
                                 merge, to_plain)
from nnopt.config.spec import Spec
from nnopt.config.validation import validate

DEFAULT_VARIANT = "default"


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
            overrides: Iterable[Override | str] = ()) -> Spec:
  """The frozen, validated :class:`Spec` of one variant.

  Args:
    config: a ConfigDict or dict in the layout of :mod:`nnopt.config` (or a
      :class:`Spec`, which resolves to itself plus ``overrides``).
    variant: variant name (None: the first, or ``'default'``).
    quick: merge the ``quick`` section.
    overrides: ``--set`` overrides (strings or :class:`Override`).

  Returns:
    A read-only :class:`Spec` with every schema key (no ``variants`` /
    ``quick``).

  Raises:
    ConfigError: unknown key, name or option, or a wrong type.
  """
  overrides = [parse_override(o) if isinstance(o, str) else o
               for o in overrides]
  tree = apply_overrides(
      config, [o for o in overrides if o.path[0] in SPECIAL_KEYS])
  if not isinstance(tree, Mapping):
    raise ConfigError(f"get_config() must return a ConfigDict or dict, got "
                      f"{type(tree).__name__}")
  names = variant_names(tree)
  variant = names[0] if variant is None else variant
  if variant not in names:
    raise ConfigError(f"unknown variant {variant!r}"
                      f"{did_you_mean(variant, names)}; variants: "
                      f"{', '.join(names)}")
  resolved = defaults()
  merge(resolved, {k: v for k, v in tree.items() if k not in SPECIAL_KEYS},
        SCHEMA, "")
  if tree.get("variants"):
    merge(resolved, tree["variants"][variant], SCHEMA, f"variants.{variant}")
  if quick and tree.get("quick"):
    merge(resolved, tree["quick"], SCHEMA, "quick")
  base_overrides = [o for o in overrides if o.path[0] not in SPECIAL_KEYS]
  for o in sorted(base_overrides, key=lambda o: not renames(o)):
    if renames(o):
      section = resolved.get(o.path[0])
      if isinstance(section, dict) and section.get(o.path[1]) != o.value:
        section[OWNED_OPTIONS[o.path[1]]] = {}
    apply_one(resolved, o)
  validate(resolved)
  return Spec(resolved)


__all__ = ["DEFAULT_VARIANT", "resolve", "variant_names"]
