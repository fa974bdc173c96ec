"""Seed studies and hyperparameter grids: a config's ``sweep`` section.

.. code-block:: python

    sweep = dict(
        seeds=5,                                   # or [0, 3, 7]; None: train.seed
        grid={'optimizer.learning_rate': {'logspace': [0, -5, 30]},
              'optimizer.options.damping_x': [1e-3, 1e-2]})

A variant with a sweep trains every seed at every grid point (the product)
as one runs axis (:class:`nnopt.engine.runs.RunsTrainer`): the runs that
share an architecture are one compiled program. Grid keys name float
hyperparameters of the optimizer: ``optimizer.learning_rate`` (a constant in
the config) or ``optimizer.options.<name>``; each run calls the optimizer
factory with its values as traced scalars. Values are a list, or
``{'logspace': [start, stop, num]}`` (exponents, as ``numpy.logspace``),
``{'geomspace': [first, last, num]}`` or ``{'linspace': [first, last, num]}``.
Run ``i`` is named ``s<seed>`` plus ``_<name><value>`` per grid key.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from nnopt.config import table
from nnopt.config.errors import ConfigError, did_you_mean
from nnopt.config.signatures import parameters
from nnopt.engine.runs_group import RunSpec

SPACINGS = {"logspace": np.logspace, "geomspace": np.geomspace,
            "linspace": np.linspace}


def grid_values(key: str, value: Any) -> list[float]:
  """The float values of one grid entry (a list or a spacing dict)."""
  if isinstance(value, Mapping):
    if len(value) != 1 or next(iter(value)) not in SPACINGS:
      raise ConfigError(f"sweep.grid[{key!r}] must be a list or one of "
                        f"{sorted('{' + s + ': [a, b, num]}' for s in SPACINGS)}"
                        f", got {dict(value)!r}")
    (kind, args), = value.items()
    if (not isinstance(args, (list, tuple)) or len(args) != 3
        or not float(args[2]).is_integer() or int(args[2]) < 1):
      raise ConfigError(f"sweep.grid[{key!r}].{kind} must be [start, stop, "
                        f"num] with a positive integer num, got {args!r}")
    values = SPACINGS[kind](float(args[0]), float(args[1]), int(args[2]))
  elif isinstance(value, (list, tuple)) and value:
    values = value
  else:
    raise ConfigError(f"sweep.grid[{key!r}] must be a non-empty list of "
                      f"numbers or a spacing dict, got {value!r}")
  out = []
  for v in values:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) \
        or not math.isfinite(float(v)):
      raise ConfigError(f"sweep.grid[{key!r}] holds {v!r}; values must be "
                        "finite numbers")
    out.append(float(v))
  return out


def hparam_name(key: str) -> str:
  """The factory argument a grid key sets (``learning_rate``, an option)."""
  parts = key.split(".")
  if parts == ["optimizer", "learning_rate"]:
    return "learning_rate"
  if len(parts) == 3 and parts[:2] == ["optimizer", "options"]:
    return parts[2]
  raise ConfigError(
      f"sweep.grid key {key!r} is not an optimizer hyperparameter; use "
      "'optimizer.learning_rate' or 'optimizer.options.<name>' (runs that "
      "differ in anything else are separate variants)")


def seeds_of(sweep: Mapping[str, Any], train_seed: int) -> list[int]:
  seeds = sweep.get("seeds")
  if seeds is None:
    return [int(train_seed)]
  if isinstance(seeds, bool):
    raise ConfigError(f"sweep.seeds must be a count or a list, got {seeds!r}")
  if isinstance(seeds, int):
    if seeds < 1:
      raise ConfigError(f"sweep.seeds must be at least 1, got {seeds}")
    return list(range(int(train_seed), int(train_seed) + seeds))
  if not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                          and s >= 0 for s in seeds):
    raise ConfigError(f"sweep.seeds must be a count or a list of "
                      f"non-negative integers, got {seeds!r}")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"sweep.seeds repeats a seed: {list(seeds)}")
  return [int(s) for s in seeds]


def check_sweep(config: Mapping[str, Any]) -> None:
  """Validates a resolved config's ``sweep`` (no data, no compilation)."""
  sweep = config["sweep"]
  seeds_of(sweep, config["train"]["seed"])
  opt = config["optimizer"]
  for key, value in (sweep.get("grid") or {}).items():
    name = hparam_name(key)
    grid_values(key, value)
    options = parameters(table.lookup("optimizer", opt["name"]), skip=1)
    if name != "learning_rate" and name not in options:
      raise ConfigError(f"sweep.grid key {key!r}: optimizer {opt['name']!r} "
                        f"has no option {name!r}"
                        f"{did_you_mean(name, options)}")
    if key == "optimizer.learning_rate" and not isinstance(
        config["optimizer"]["learning_rate"], (int, float)):
      raise ConfigError("sweep over optimizer.learning_rate needs a constant "
                        "learning rate in the config, not a schedule or None")


def is_sweep(spec: Mapping[str, Any]) -> bool:
  sweep = spec["sweep"]
  return sweep.get("seeds") is not None or bool(sweep.get("grid"))


def _label(value: float) -> str:
  return f"{value:.4g}".replace("+", "")


def run_specs(spec: Mapping[str, Any]) -> list[RunSpec]:
  """Every run of the spec's sweep: seeds × the grid's product."""
  sweep = spec["sweep"]
  seeds = seeds_of(sweep, spec["train"]["seed"])
  grid = sweep.get("grid") or {}
  names = [hparam_name(k) for k in grid]
  axes = [grid_values(k, v) for k, v in grid.items()]
  runs = []
  for seed in seeds:
    for point in itertools.product(*axes):
      hparams = dict(zip(names, point))
      name = f"s{seed}" + "".join(f"_{n}{_label(v)}"
                                  for n, v in hparams.items())
      runs.append(RunSpec(seed=seed, hparams=hparams, name=name))
  return runs


def grid_points(specs: Sequence[RunSpec]) -> dict[tuple, list[int]]:
  """Run indices by grid point (the seeds of one setting)."""
  points: dict[tuple, list[int]] = {}
  for i, s in enumerate(specs):
    points.setdefault(tuple(sorted(s.hparams.items())), []).append(i)
  return points


__all__ = ["SPACINGS", "check_sweep", "grid_points", "grid_values",
           "hparam_name", "is_sweep", "run_specs", "seeds_of"]
