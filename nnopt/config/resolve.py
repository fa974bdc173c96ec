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


def panels(config: Any, variants: Iterable[str] | None = None
           ) -> dict[str, list[str]]:
  """The config's figure panels: title → the variants it compares.

  A config may group its variants into comparisons: ``panels = [('what the
  panel compares', [variant, ...]), ...]`` (a list keeps its order; a dict
  title → variants works too, but a ``ConfigDict`` sorts its keys);
  ``nnopt run`` draws one row of ``curves.png`` per panel. Without
  ``panels`` every variant is in one panel. Only the ``variants`` that run
  are kept; panels left empty are dropped.

  Raises:
    ConfigError: ``panels`` is not a list of (title, [variant, ...]) pairs
      (or a dict) of known variant names.
  """
  tree = to_plain(config)
  names = variant_names(tree)
  running = names if variants is None else [v for v in names if v in variants]
  given = tree.get("panels")
  if not given:
    return {"": running}
  pairs = list(given.items()) if isinstance(given, Mapping) else given
  if not isinstance(pairs, list) or not all(
      isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
      and isinstance(p[1], list) and all(isinstance(n, str) for n in p[1])
      for p in pairs):
    raise ConfigError(f"panels must be a list of (title, [variant, ...]) "
                      f"pairs, got {given!r}")
  given = {title: list(members) for title, members in pairs}
  for title, members in given.items():
    unknown = [n for n in members if n not in names]
    if unknown:
      raise ConfigError(f"panels[{title!r}] names unknown variant(s) "
                        f"{unknown}{did_you_mean(unknown[0], names)}; "
                        f"variants: {', '.join(names)}")
  out = {str(t): [n for n in m if n in running] for t, m in given.items()}
  return {t: m for t, m in out.items() if m}


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


__all__ = ["DEFAULT_VARIANT", "panels", "resolve", "variant_names"]
