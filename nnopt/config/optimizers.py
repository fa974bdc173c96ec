"""Optimizers and learning-rate schedules from names of the config table.

A config names its optimizer (``optimizer.name = 'adam'``) and gives the
learning rate and keyword options; this module checks them against the
factory of :data:`nnopt.config.table.OPTIMIZERS` and builds the optax
transformation:

.. code-block:: python

    opt = make_optimizer('sgd', 0.1, momentum=0.9)
    opt = make_optimizer('adam', {'schedule': 'cosine_decay_schedule',
                                  'init_value': 1e-3, 'decay_steps': 1000})

Options are checked against the factory's signature (unknown names and,
where the default reveals it, wrong types are errors that list the valid
options), so a misspelt option never passes silently.

Checking and building are separate: :func:`nnopt.config.resolve` checks a
run's optimizer once (:func:`check_optimizer`) and :func:`nnopt.config.build`
builds it without checking again (:func:`build_schedule`,
:func:`construct`); :func:`make_optimizer` does both for direct use.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Mapping

import optax

from nnopt.config import table
from nnopt.config.errors import OptimizerError
from nnopt.config.signatures import (OPTIMIZER_ARGUMENTS, check_options,
                                     parameters, run_arguments)
from nnopt.config.spec import thaw


# The arguments of optax's schedules that are learning rates.
_SCHEDULE_RATES = ("value", "init_value", "peak_value", "end_value")


def check_learning_rate(learning_rate: Any) -> None:
  """Validates a learning rate: a positive number, None, or ``{'schedule':
  name, **kwargs}`` (whose rates are non-negative)."""
  if learning_rate is None:
    return
  if isinstance(learning_rate, bool) or not isinstance(
      learning_rate, (numbers.Real, Mapping)):
    raise OptimizerError(
        f"learning_rate must be a number or {{'schedule': name, ...}}, got "
        f"{learning_rate!r} ({type(learning_rate).__name__})")
  if not isinstance(learning_rate, Mapping) and not (
      math.isfinite(learning_rate) and learning_rate > 0):
    raise OptimizerError(
        f"learning_rate must be a positive finite number, got "
        f"{learning_rate!r}")
  if isinstance(learning_rate, Mapping):
    kwargs = dict(learning_rate)
    for key in _SCHEDULE_RATES:
      value = kwargs.get(key)
      if (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and not (math.isfinite(value) and value >= 0)):
        raise OptimizerError(f"learning_rate schedule: {key} must be a "
                             f"non-negative finite number, got {value!r}")
    if "schedule" not in kwargs:
      raise OptimizerError(
          "a learning_rate dict needs a 'schedule' key naming an optax "
          f"schedule (known: {', '.join(sorted(table.SCHEDULES))})")
    name = kwargs.pop("schedule")
    check_options(f"schedule {name!r}", table.lookup("schedule", name), kwargs,
                  error=OptimizerError)


def check_optimizer(name: str, learning_rate: Any, options: Mapping[str, Any],
                    *, supplied=OPTIMIZER_ARGUMENTS) -> None:
  """Validates name, learning rate and options without building anything.

  ``supplied``: parameters the caller passes itself (by default the run
  arguments, which a config may not set).
  """
  factory = table.lookup("optimizer", name)
  check_learning_rate(learning_rate)
  params = list(inspect.signature(factory).parameters.values())
  if learning_rate is None and params[0].default is inspect.Parameter.empty:
    raise OptimizerError(f"optimizer {name!r} needs a learning_rate")
  check_options(f"optimizer {name!r}", factory, dict(options), skip=1,
                supplied=supplied, error=OptimizerError)


def build_schedule(learning_rate: Any) -> float | optax.Schedule | None:
  """A checked learning rate: a number stays a number, ``{'schedule': name,
  **kwargs}`` becomes the optax schedule."""
  if not isinstance(learning_rate, Mapping):
    return None if learning_rate is None else float(learning_rate)
  kwargs = thaw(learning_rate)
  name = kwargs.pop("schedule")
  if name == "piecewise_constant_schedule" and kwargs.get(
      "boundaries_and_scales"):
    # Config dicts have string keys; optax wants step numbers.
    kwargs["boundaries_and_scales"] = {
        int(k): float(v) for k, v in kwargs["boundaries_and_scales"].items()}
  return table.lookup("schedule", name)(**kwargs)


def construct(name: str, learning_rate: Any, options: Mapping[str, Any],
              run: Mapping[str, Any]) -> optax.GradientTransformation:
  """Calls the factory of ``name`` on checked arguments.

  Args:
    name: an optimizer of the table.
    learning_rate: a built learning rate (number, schedule or None).
    options: checked options.
    run: run arguments; the factory gets those it declares.
  """
  factory = table.lookup("optimizer", name)
  kwargs = {**thaw(options), **run_arguments(factory, run)}
  if learning_rate is None:
    return factory(**kwargs)
  return factory(learning_rate, **kwargs)


def with_named_optimizer(run: Mapping[str, Any]) -> dict[str, Any]:
  """``run`` plus the run argument ``named_optimizer`` that builds, with the
  same run arguments, another optimizer of the table."""
  run = dict(run)
  run["named_optimizer"] = lambda *args, **kwargs: named_optimizer(
      *args, **kwargs, run=run)
  return run


def named_optimizer(name: str, learning_rate: Any,
                    options: Mapping[str, Any] | None = None, *,
                    run: Mapping[str, Any] = ()) -> optax.GradientTransformation:
  """Optimizer ``name`` at a built learning rate, its options checked.

  What a composite optimizer (e.g. MG/Opt's smoother and coarse optimizer)
  gets as its run argument ``named_optimizer``; ``run`` holds the run
  arguments passed on.
  """
  options = dict(options or {})
  check_options(f"optimizer {name!r}", table.lookup("optimizer", name),
                options, skip=1, supplied=OPTIMIZER_ARGUMENTS,
                error=OptimizerError)
  return construct(name, learning_rate, options, with_named_optimizer(run))


def make_optimizer(name: str, learning_rate: Any = None,
                   **options: Any) -> optax.GradientTransformation:
  """Builds the table's optimizer ``name`` (checked, for direct use).

  Args:
    name: a name of :data:`nnopt.config.table.OPTIMIZERS`.
    learning_rate: a number, None (for optimizers that do not need one, e.g.
      ``lbfgs`` with its line search) or ``{'schedule': name, **kwargs}``.
    **options: the factory's other keyword arguments, and run arguments it
      declares (e.g. ``model=`` for ``'mgopt'``).

  Raises:
    OptimizerError: unknown name, schedule or option, or a wrong type.
  """
  check_optimizer(name, learning_rate, options, supplied=("named_optimizer",))
  run = {k: v for k, v in options.items() if k in OPTIMIZER_ARGUMENTS}
  return construct(name, build_schedule(learning_rate), options,
                   with_named_optimizer(run))


def optimizer_options(name: str) -> dict[str, Any]:
  """The options of optimizer ``name`` (besides the learning rate) with defaults."""
  factory = table.lookup("optimizer", name)
  return {n: p.default for n, p in parameters(factory, 1).items()
          if n not in OPTIMIZER_ARGUMENTS}


__all__ = ["OptimizerError", "build_schedule", "check_learning_rate",
           "check_optimizer", "construct", "make_optimizer", "named_optimizer",
           "optimizer_options", "with_named_optimizer"]
