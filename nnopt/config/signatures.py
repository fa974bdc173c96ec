"""Checking config options against the signature of the factory they go to.

Options are keyword arguments: a misspelt or missing one is an error that
lists the valid options, and a value whose type contradicts the parameter's
default (or, for a model, its dataclass field's type hint) is an error too.

Some parameters are not options: a factory that declares a *run argument*
(:data:`OPTIMIZER_ARGUMENTS`, :data:`HOOK_ARGUMENTS`, e.g. ``model`` or
``dataset``) gets the run's object under that name from
:func:`nnopt.config.build`; a config may not set it.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import types
import typing
from typing import Any, Callable, Collection, Mapping

from nnopt.config.errors import ConfigError, did_you_mean

NoneType = type(None)

#: What :func:`nnopt.config.build` passes to an optimizer factory that
#: declares the parameter: the run's flax ``model``, :class:`nnopt.losses.Loss`
#: ``loss``, :class:`nnopt.data.Dataset` ``dataset``, host ``augment`` (or
#: None), and ``named_optimizer(name, learning_rate, options=None)``, which
#: builds another optimizer of the table (e.g. MG/Opt's smoother).
OPTIMIZER_ARGUMENTS = ("model", "loss", "dataset", "augment", "named_optimizer")
#: What it passes to a hook factory: the same, plus the run's built learning
#: rate ``run_learning_rate`` (a number, a schedule or None),
#: ``make_optimizer(learning_rate)``, the run's optimizer at another rate, and
#: the run's seed ``run_seed`` (``train.seed``, or a sweep run's seed).
HOOK_ARGUMENTS = OPTIMIZER_ARGUMENTS + ("run_learning_rate", "make_optimizer",
                                        "run_seed")


def parameters(fn: Callable, skip: int = 0) -> dict[str, inspect.Parameter]:
  """``fn``'s keyword-passable parameters after the first ``skip``."""
  params = list(inspect.signature(fn).parameters.values())[skip:]
  return {p.name: p for p in params
          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def takes_var_kwargs(fn: Callable) -> bool:
  return any(p.kind is p.VAR_KEYWORD
             for p in inspect.signature(fn).parameters.values())


def run_arguments(fn: Callable, available: Mapping[str, Any]) -> dict[str, Any]:
  """The entries of ``available`` that ``fn`` declares as parameters."""
  params = parameters(fn)
  return {k: v for k, v in available.items() if k in params}


def type_ok(value: Any, default: Any) -> bool:
  """Whether ``value`` fits the type that ``default`` reveals (lenient)."""
  if default is inspect.Parameter.empty or default is None or callable(default):
    return True
  if isinstance(default, bool):
    return isinstance(value, bool)
  if isinstance(default, numbers.Real):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            or value is None)
  if isinstance(default, str):
    return isinstance(value, str) or value is None
  return True


def check_options(what: str, fn: Callable, options: Mapping[str, Any], *,
                  skip: int = 0, supplied: Collection[str] = (),
                  error: type[ConfigError] = ConfigError) -> None:
  """Checks keyword ``options`` against ``fn``'s signature.

  Args:
    what: how to name ``fn`` in messages, e.g. ``"optimizer 'sgd'"``.
    fn: the factory.
    options: the keyword arguments that will be passed.
    skip: leading parameters supplied otherwise (e.g. ``learning_rate``).
    supplied: parameter names that the caller supplies (run arguments); an
      option of that name is an error.
    error: the error class to raise (e.g. ``OptimizerError``).

  Raises:
    ConfigError: (of class ``error``) unknown option, missing required
      option, an option that the run supplies, or a value whose type
      contradicts the default.
  """
  params = parameters(fn, skip)
  taken = sorted(set(options) & set(supplied) & set(params))
  if taken:
    raise error(f"{what}: {taken} come(s) from the run (its model, "
                         "loss, dataset, ...), not from the options")
  own = {n: p for n, p in params.items() if n not in supplied}
  if not takes_var_kwargs(fn):
    unknown = sorted(set(options) - set(own))
    if unknown:
      raise error(
          f"{what} has no option(s) {unknown}{did_you_mean(unknown[0], own)}; "
          f"valid options: {', '.join(own) or '(none)'}")
  missing = [n for n, p in own.items()
             if p.default is p.empty and n not in options]
  if missing:
    raise error(f"{what} needs option(s) {missing}")
  for key, value in options.items():
    if key in own and not type_ok(value, own[key].default):
      default = own[key].default
      raise error(
          f"{what} option {key!r} must be {type(default).__name__} "
          f"(default {default!r}), got {value!r} ({type(value).__name__})")


# -- dataclass fields (models) -----------------------------------------------------


def hint_fits(value: Any, hint: Any) -> bool:
  """Lenient runtime check of ``value`` against a type hint."""
  origin = typing.get_origin(hint)
  args = typing.get_args(hint)
  if hint is Any:
    return True
  if origin in (typing.Union, types.UnionType):
    return any(hint_fits(value, a) for a in args)
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
      return all(hint_fits(v, args[0]) for v in value)
    if args:
      return len(args) == len(value) and all(
          hint_fits(v, a) for v, a in zip(value, args))
    return True
  return True


def hint_name(hint: Any) -> str:
  text = str(hint).replace("typing.", "")
  return getattr(hint, "__name__", text) if not typing.get_args(hint) else text


def check_fields(what: str, cls: type, options: Mapping[str, Any], *,
                 path: str) -> None:
  """Checks ``options`` against the fields of dataclass ``cls`` (a flax module).

  Args:
    what: how to name ``cls`` in messages, e.g. ``"model 'fnn'"``.
    cls: the dataclass.
    options: its keyword arguments.
    path: the config path of ``options``, e.g. ``'model.options'``.

  Raises:
    ConfigError: unknown or missing field, or a value that contradicts
      the field's type hint.
  """
  fields = {f.name: f for f in dataclasses.fields(cls)
            if f.name not in ("parent", "name")}
  unknown = sorted(set(options) - set(fields))
  if unknown:
    raise ConfigError(
        f"{path}: {what} has no option(s) {unknown}"
        f"{did_you_mean(unknown[0], fields, n=2)}; options: {', '.join(fields)}")
  missing = [n for n, f in fields.items()
             if f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING and n not in options]
  if missing:
    raise ConfigError(f"{path}: {what} needs option(s) {missing}")
  try:
    hints = typing.get_type_hints(cls)
  except Exception:  # pylint: disable=broad-except
    return
  for key, value in options.items():
    if key in hints and not hint_fits(value, hints[key]):
      raise ConfigError(f"{path}.{key} must be {hint_name(hints[key])}, got "
                           f"{value!r} ({type(value).__name__})")


__all__ = ["HOOK_ARGUMENTS", "OPTIMIZER_ARGUMENTS", "check_fields",
           "check_options", "hint_fits", "hint_name", "parameters",
           "run_arguments", "takes_var_kwargs", "type_ok"]
