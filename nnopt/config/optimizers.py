"""Optimizers and learning-rate schedules by name, for experiment configs.

A config names its optimizer (``optimizer.name = 'adam'``) and gives the
learning rate and keyword options; this module turns that into an optax
transformation:

.. code-block:: python

    opt = make_optimizer('sgd', 0.1, momentum=0.9)
    opt = make_optimizer('adam', {'schedule': 'cosine_decay_schedule',
                                  'init_value': 1e-3, 'decay_steps': 1000})

Every optax alias whose first parameter is ``learning_rate`` (``sgd``,
``adam``, ``adamw``, ``rmsprop``, ``lbfgs``, …) and the optimizers of
``optax.contrib`` (``prodigy``, ``muon``, …) are registered at import. nnopt's
own methods join with :func:`register_optimizer`:

.. code-block:: python

    register_optimizer('msvag', nnopt.noise_aware.msvag)

A factory is called as ``factory(learning_rate, **options)``; options are
checked against its signature (unknown names and, where the default reveals
it, wrong types are errors that list the valid options), so a misspelt option
never passes silently. Schedules work the same way (:func:`register_schedule`,
:func:`make_schedule`) with the functions of ``optax.schedules``.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from typing import Any, Callable, Mapping

import optax

Factory = Callable[..., optax.GradientTransformation]


class OptimizerError(ValueError):
  """An optimizer or schedule cannot be built from the given name and options."""


OPTIMIZERS: dict[str, Factory] = {}
SCHEDULES: dict[str, Callable[..., optax.Schedule]] = {}

# optax functions with a learning_rate first that are building blocks or need
# inputs that nnopt's step does not provide.
_NOT_ALIASES = {"scale_by_learning_rate", "scale_by_rprop", "scale_by_madgrad",
                "dpsgd"}


def _close(name: str, known) -> str:
  near = difflib.get_close_matches(str(name), list(known), n=3)
  return f" (did you mean {', '.join(map(repr, near))}?)" if near else ""


def register_optimizer(name: str, factory: Factory, *,
                       overwrite: bool = False) -> None:
  """Makes ``factory`` available to configs as ``optimizer.name = name``.

  Args:
    name: registry name.
    factory: ``factory(learning_rate, **options) -> GradientTransformation``;
      its first parameter must be ``learning_rate``. If it has a parameter
      named ``experiment``, :func:`nnopt.config.build` passes the
      :class:`Experiment` being built (its config, model and loss; e.g. for
      a transform that evaluates a coarse model on the batch).
    overwrite: allow replacing an existing entry.

  Raises:
    OptimizerError: the name is taken (without ``overwrite``) or the factory
      does not take ``learning_rate`` first.
  """
  if name in OPTIMIZERS and not overwrite:
    raise OptimizerError(f"optimizer {name!r} is already registered")
  params = list(inspect.signature(factory).parameters)
  if not params or params[0] != "learning_rate":
    raise OptimizerError(f"optimizer factory for {name!r} must take "
                         f"'learning_rate' as its first parameter, got {params}")
  OPTIMIZERS[name] = factory


def register_schedule(name: str, factory: Callable[..., optax.Schedule], *,
                      overwrite: bool = False) -> None:
  """Makes a schedule factory available as ``learning_rate.schedule = name``."""
  if name in SCHEDULES and not overwrite:
    raise OptimizerError(f"schedule {name!r} is already registered")
  SCHEDULES[name] = factory


def _parameters(fn: Callable, skip: int) -> dict[str, inspect.Parameter]:
  params = list(inspect.signature(fn).parameters.values())[skip:]
  return {p.name: p for p in params
          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _takes_var_kwargs(fn: Callable) -> bool:
  return any(p.kind is p.VAR_KEYWORD
             for p in inspect.signature(fn).parameters.values())


def _type_ok(value: Any, default: Any) -> bool:
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
                  skip: int = 0) -> None:
  """Checks keyword ``options`` against ``fn``'s signature.

  Args:
    what: how to name ``fn`` in messages, e.g. ``"optimizer 'sgd'"``.
    fn: the factory.
    options: the keyword arguments that will be passed.
    skip: leading parameters supplied otherwise (e.g. ``learning_rate``).

  Raises:
    OptimizerError: unknown option, missing required option or a value whose
      type contradicts the parameter's default.
  """
  params = _parameters(fn, skip)
  if not _takes_var_kwargs(fn):
    unknown = sorted(set(options) - set(params))
    if unknown:
      hint = _close(unknown[0], params)
      raise OptimizerError(
          f"{what} has no option(s) {unknown}{hint}; valid options: "
          f"{', '.join(params) or '(none)'}")
  missing = [n for n, p in params.items()
             if p.default is p.empty and n not in options]
  if missing:
    raise OptimizerError(f"{what} needs option(s) {missing}")
  for key, value in options.items():
    if key in params and not _type_ok(value, params[key].default):
      default = params[key].default
      raise OptimizerError(
          f"{what} option {key!r} must be {type(default).__name__} "
          f"(default {default!r}), got {value!r} ({type(value).__name__})")


def optimizer_options(name: str) -> dict[str, Any]:
  """The options of optimizer ``name`` (besides the learning rate) with defaults."""
  factory = get_optimizer(name)
  return {n: p.default for n, p in _parameters(factory, 1).items()}


def get_optimizer(name: str) -> Factory:
  """The registered factory ``name``; raises :class:`OptimizerError` if unknown."""
  try:
    return OPTIMIZERS[name]
  except (KeyError, TypeError):
    raise OptimizerError(
        f"unknown optimizer {name!r}{_close(name, OPTIMIZERS)}; known: "
        f"{', '.join(sorted(OPTIMIZERS))}") from None


def get_schedule(name: str) -> Callable[..., optax.Schedule]:
  try:
    return SCHEDULES[name]
  except (KeyError, TypeError):
    raise OptimizerError(
        f"unknown learning-rate schedule {name!r}{_close(name, SCHEDULES)}; "
        f"known: {', '.join(sorted(SCHEDULES))}") from None


def _schedule_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
  if name == "piecewise_constant_schedule" and kwargs.get(
      "boundaries_and_scales"):
    # Config dicts have string keys; optax wants step numbers.
    kwargs["boundaries_and_scales"] = {
        int(k): float(v) for k, v in kwargs["boundaries_and_scales"].items()}
  return kwargs


def check_learning_rate(learning_rate: Any) -> None:
  """Validates a learning rate: a number, None, or ``{'schedule': name, **kwargs}``."""
  if learning_rate is None:
    return
  if isinstance(learning_rate, bool) or not isinstance(
      learning_rate, (numbers.Real, Mapping)):
    raise OptimizerError(
        f"learning_rate must be a number or {{'schedule': name, ...}}, got "
        f"{learning_rate!r} ({type(learning_rate).__name__})")
  if isinstance(learning_rate, Mapping):
    kwargs = dict(learning_rate)
    if "schedule" not in kwargs:
      raise OptimizerError(
          "a learning_rate dict needs a 'schedule' key naming an optax "
          f"schedule (known: {', '.join(sorted(SCHEDULES))})")
    name = kwargs.pop("schedule")
    check_options(f"schedule {name!r}", get_schedule(name), kwargs)


def make_schedule(learning_rate: Any) -> float | optax.Schedule | None:
  """A number stays a number; ``{'schedule': name, **kwargs}`` becomes a schedule."""
  check_learning_rate(learning_rate)
  if not isinstance(learning_rate, Mapping):
    return None if learning_rate is None else float(learning_rate)
  kwargs = dict(learning_rate)
  name = kwargs.pop("schedule")
  return get_schedule(name)(**_schedule_kwargs(name, kwargs))


def check_optimizer(name: str, learning_rate: Any,
                    options: Mapping[str, Any]) -> None:
  """Validates name, learning rate and options without building anything."""
  factory = get_optimizer(name)
  check_learning_rate(learning_rate)
  params = list(inspect.signature(factory).parameters.values())
  if learning_rate is None and params[0].default is inspect.Parameter.empty:
    raise OptimizerError(f"optimizer {name!r} needs a learning_rate")
  check_options(f"optimizer {name!r}", factory, dict(options), skip=1)


def make_optimizer(name: str, learning_rate: Any = None,
                   **options: Any) -> optax.GradientTransformation:
  """Builds the registered optimizer ``name``.

  Args:
    name: registry name (see :data:`OPTIMIZERS`).
    learning_rate: a number, None (for optimizers that do not need one, e.g.
      ``lbfgs`` with its line search) or ``{'schedule': name, **kwargs}``.
    **options: the factory's other keyword arguments.

  Raises:
    OptimizerError: unknown name, schedule or option, or a wrong type.
  """
  check_optimizer(name, learning_rate, options)
  factory = get_optimizer(name)
  lr = make_schedule(learning_rate)
  options = {k: tuple(v) if isinstance(v, list) else v
             for k, v in options.items()}
  if lr is None:
    return factory(**options)
  return factory(lr, **options)


def _register_optax() -> None:
  for source in (optax, optax.contrib):
    for name in sorted(dir(source)):
      fn = getattr(source, name)
      if (name.startswith("_") or name in _NOT_ALIASES or name in OPTIMIZERS
          or name.startswith("scale_by_") or not inspect.isfunction(fn)):
        continue
      params = list(inspect.signature(fn).parameters)
      if params and params[0] == "learning_rate":
        OPTIMIZERS[name] = fn
  for name in sorted(dir(optax.schedules)):
    fn = getattr(optax.schedules, name)
    if inspect.isfunction(fn) and (name.endswith("_schedule")
                                   or name == "exponential_decay"):
      if name not in ("join_schedules",):
        SCHEDULES[name] = fn


_register_optax()

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "OptimizerError", "check_learning_rate",
    "check_optimizer", "check_options", "get_optimizer", "get_schedule",
    "make_optimizer", "make_schedule", "optimizer_options",
    "register_optimizer", "register_schedule",
]
