"""The resolved config of one run: a frozen, validated :class:`Spec`.

:func:`nnopt.config.resolve` is the only producer of a :class:`Spec` and
:func:`nnopt.config.build` takes nothing else, so a spec that reaches
``build`` has been merged and validated exactly once. A spec reads like the
plain dict it was made from (``spec['optimizer']['learning_rate']``; it is a
``dict`` subclass, so ``json.dumps`` and ``==`` with dicts work), but every
section is read-only and lists are tuples. To change a run, resolve again
with overrides (``resolve(config, variant, overrides=['train.seed=1'])``).
"""

from __future__ import annotations

from typing import Any, Mapping


class FrozenDict(dict):
  """A read-only dict whose values are frozen too (mappings, lists → tuples)."""

  def __init__(self, mapping: Mapping[str, Any] = (), **kwargs: Any):
    super().__init__({k: freeze(v) for k, v in dict(mapping, **kwargs).items()})

  def _read_only(self, *args, **kwargs):
    raise TypeError(f"a {type(self).__name__} is read-only; resolve the config "
                    "again with overrides to change a run")

  __setitem__ = __delitem__ = _read_only
  clear = pop = popitem = setdefault = update = _read_only
  __ior__ = _read_only

  def __copy__(self):
    return self

  def __deepcopy__(self, memo):
    return self

  def __reduce__(self):
    return type(self), (thaw(self),)

  def __repr__(self):
    return f"{type(self).__name__}({dict.__repr__(self)})"


class Spec(FrozenDict):
  """One run's resolved and validated config (see :mod:`nnopt.config`).

  Sections: ``name``, ``description``, ``dataset``, ``model``, ``loss``,
  ``optimizer``, ``train``, ``hooks``; no ``variants`` or ``quick``.
  """


def freeze(value: Any) -> Any:
  """Mappings → :class:`FrozenDict`, lists and tuples → tuples (recursively)."""
  if isinstance(value, FrozenDict):
    return value
  if isinstance(value, Mapping):
    return FrozenDict(value)
  if type(value) in (list, tuple):  # not NamedTuples
    return tuple(freeze(v) for v in value)
  return value


def thaw(value: Any) -> Any:
  """Mappings → plain dicts (recursively); tuples stay tuples.

  The form in which options reach a factory: a dict it may modify, sequences
  as tuples (hashable, as flax module fields need).
  """
  if isinstance(value, Mapping):
    return {k: thaw(v) for k, v in value.items()}
  if type(value) in (list, tuple):  # not NamedTuples
    return tuple(thaw(v) for v in value)
  return value


__all__ = ["FrozenDict", "Spec", "freeze", "thaw"]
