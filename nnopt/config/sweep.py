"""Seed studies and hyperparameter grids: a config's ``sweep`` section.

.. code-block:: python

    sweep = dict(
        seeds=5,                                   # or [0, 3, 7]; None: train.seed
        grid={'optimizer.learning_rate': {'logspace': [0, -5, 30]},
              'optimizer.options.damping_x': [1e-3, 1e-2],
              'hooks.mlsgd.options.lr': [0.05, 0.1]})

A variant with a sweep trains every seed at every grid point (the product)
as one runs axis (:class:`nnopt.engine.runs.RunsTrainer`): the runs that
share an architecture are one compiled program. Grid keys name float
hyperparameters of the optimizer: ``optimizer.learning_rate`` (a constant in
the config) or ``optimizer.options.<name>``; each run calls the optimizer
factory with its values as traced scalars. They may also name a hook's
option, ``hooks.<index or name>.options.<option>`` (e.g. MLSGD's ``lr`` or
``lam``, CABS's ``learning_rate``): each run builds its own hooks with its
value (a number; an integer where the option's default is one), and the
value is not an optimizer hyperparameter, so runs that differ only in hook
options share the optimizer's program. Values are a list, or
``{'logspace': [start, stop, num]}`` (exponents, as ``numpy.logspace``),
``{'geomspace': [first, last, num]}`` or ``{'linspace': [first, last, num]}``.
Run ``i`` is named ``s<seed>`` plus ``_<name><value>`` per grid key (a hook
option by its name, or ``hooks<index>_<option>`` where names would clash),
e.g. ``s0_lr0.05``; the CLI summarizes each grid point over its seeds.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from nnopt.config import table
from nnopt.config.errors import ConfigError, did_you_mean
from nnopt.config.signatures import HOOK_ARGUMENTS, parameters
from nnopt.engine.runs_group import RunSpec

SPACINGS = {"logspace": np.logspace, "geomspace": np.geomspace,
            "linspace": np.linspace}
HOOK_KEY = "hooks.<index or name>.options.<option>"


@dataclasses.dataclass(frozen=True)
class SweepRun(RunSpec):
  """A sweep's run: a :class:`RunSpec` plus what is not the optimizer's.

  Attributes:
    hook_options: ``((hook index, option, value), ...)``, set in this run's
      hooks only (not in ``hparams``, so the optimizer's program is shared).
    setting: ``((label, value), ...)``, the run's grid point (every grid key,
      in grid order): the runs of one setting differ only in their seed.
  """

  hook_options: tuple[tuple[int, str, Any], ...] = ()
  setting: tuple[tuple[str, float], ...] = ()


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
      f"sweep.grid key {key!r} is not an optimizer or hook hyperparameter; "
      f"use 'optimizer.learning_rate', 'optimizer.options.<name>' or "
      f"'{HOOK_KEY}' (runs that differ in anything else are separate "
      "variants)")


def hook_option(key: str, hooks: Sequence[Mapping[str, Any]]
                ) -> tuple[int, str] | None:
  """``(hook index, option)`` of a grid key ``hooks.<i or name>.options.<o>``
  (None for a key that does not start with ``hooks.``).

  Raises:
    ConfigError: the variant has no such hook (or two of that name), the
      hook has no such option, or the option does not take a number.
  """
  parts = key.split(".")
  if parts[0] != "hooks":
    return None
  if len(parts) != 4 or parts[2] != "options":
    raise ConfigError(f"sweep.grid key {key!r}: a hook option is "
                      f"'{HOOK_KEY}'")
  ref, option = parts[1], parts[3]
  names = [h["name"] for h in hooks]
  if ref.isdigit():
    if int(ref) >= len(hooks):
      raise ConfigError(f"sweep.grid key {key!r}: the variant has "
                        f"{len(hooks)} hook(s) {names}, no hooks[{ref}]")
    index = int(ref)
  else:
    found = [i for i, n in enumerate(names) if n == ref]
    if not found:
      raise ConfigError(f"sweep.grid key {key!r}: the variant has no hook "
                        f"{ref!r}{did_you_mean(ref, names)}; hooks: "
                        f"{', '.join(names) or '(none)'}")
    if len(found) > 1:
      raise ConfigError(f"sweep.grid key {key!r}: the variant has "
                        f"{len(found)} hooks {ref!r}; name one by its index, "
                        f"e.g. 'hooks.{found[0]}.options.{option}'")
    index = found[0]
  options = {n: p for n, p in parameters(
      table.lookup("hook", names[index])).items() if n not in HOOK_ARGUMENTS}
  if option not in options:
    raise ConfigError(f"sweep.grid key {key!r}: hook {names[index]!r} has no "
                      f"option {option!r}{did_you_mean(option, options)}; "
                      f"options: {', '.join(options)}")
  default = options[option].default
  if isinstance(default, (bool, str)) or not (
      default is None or default is options[option].empty
      or isinstance(default, (int, float))):
    raise ConfigError(f"sweep.grid key {key!r}: hook option {option!r} "
                      f"(default {default!r}) does not take a number")
  return index, option


def _hook_value(key: str, param: inspect.Parameter, value: float) -> Any:
  """``value`` as the hook option takes it: an int where its default or its
  annotation is an integer, else a float."""
  hint = str(param.annotation)
  if (isinstance(param.default, int) and not isinstance(param.default, bool)
      or "int" in hint and "float" not in hint):
    if not value.is_integer():
      raise ConfigError(f"sweep.grid[{key!r}] holds {value!r}; hook option "
                        f"{param.name!r} takes integers")
    return int(value)
  return value


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
  _axes(config)
  for key, value in (sweep.get("grid") or {}).items():
    if key.split(".")[0] == "hooks":
      continue  # checked by _axes
    name = hparam_name(key)
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


@dataclasses.dataclass(frozen=True)
class _Axis:
  label: str            # in run names and settings
  values: list[Any]
  hparam: str | None    # the optimizer factory's argument, or None
  hook: tuple[int, str] | None  # (hook index, option)


def _axes(spec: Mapping[str, Any]) -> list[_Axis]:
  """The grid's axes, checked; hook options labelled by name unless two
  labels clash (then ``hooks<index>_<option>``)."""
  axes, seen = [], {}
  for key, value in (spec["sweep"].get("grid") or {}).items():
    values = grid_values(key, value)
    target = hook_option(key, spec["hooks"])
    if target is None:
      axes.append(_Axis(hparam_name(key), values, hparam_name(key), None))
      continue
    if target in seen:
      raise ConfigError(f"sweep.grid keys {seen[target]!r} and {key!r} both "
                        f"set hooks[{target[0]}].options.{target[1]}")
    seen[target] = key
    param = parameters(table.lookup(
        "hook", spec["hooks"][target[0]]["name"]))[target[1]]
    axes.append(_Axis(target[1], [_hook_value(key, param, v)
                                  for v in values], None, target))
  labels = [a.label for a in axes]
  return [dataclasses.replace(a, label=f"hooks{a.hook[0]}_{a.hook[1]}")
          if a.hook is not None and labels.count(a.label) > 1 else a
          for a in axes]


def run_specs(spec: Mapping[str, Any]) -> list[SweepRun]:
  """Every run of the spec's sweep: seeds × the grid's product."""
  seeds = seeds_of(spec["sweep"], spec["train"]["seed"])
  axes = _axes(spec)
  runs = []
  for seed in seeds:
    for point in itertools.product(*(a.values for a in axes)):
      pairs = list(zip(axes, point))
      name = f"s{seed}" + "".join(f"_{a.label}{_label(v)}" for a, v in pairs)
      runs.append(SweepRun(
          seed=seed, name=name,
          hparams={a.hparam: v for a, v in pairs if a.hparam is not None},
          hook_options=tuple((*a.hook, v) for a, v in pairs
                             if a.hook is not None),
          setting=tuple((a.label, float(v)) for a, v in pairs)))
  return runs


def grid_points(specs: Sequence[RunSpec]) -> dict[tuple, list[int]]:
  """Run indices by grid point (the seeds of one setting): a
  :class:`SweepRun`'s ``setting``, else its sorted ``hparams``."""
  points: dict[tuple, list[int]] = {}
  for i, s in enumerate(specs):
    point = (s.setting if isinstance(s, SweepRun)
             else tuple(sorted(s.hparams.items())))
    points.setdefault(point, []).append(i)
  return points


__all__ = ["HOOK_KEY", "SPACINGS", "SweepRun", "check_sweep", "grid_points",
           "grid_values", "hook_option", "hparam_name", "is_sweep",
           "run_specs", "seeds_of"]
