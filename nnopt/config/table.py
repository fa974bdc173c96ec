"""The names a config may use, and the plain factories they stand for.

One table per kind, written out here; nothing registers itself on import:

* :data:`OPTIMIZERS` — ``optimizer.name``: every optax alias whose first
  parameter is ``learning_rate`` (``sgd``, ``adam``, ``lbfgs``, …) and the
  optimizers of ``optax.contrib`` (``prodigy``, ``muon``, …), then nnopt's
  (Balles's noise-aware methods, Kreis's preconditioners and MG/Opt);
* :data:`SCHEDULES` — ``optimizer.learning_rate = {'schedule': name, …}``:
  the schedules of ``optax.schedules``;
* :data:`MODELS` — ``model.name``: the flax modules of :mod:`nnopt.models`
  (its table :data:`nnopt.models.MODELS`, with the ODE-ResNet and the
  DeepOBS networks);
* :data:`LOSSES` — ``loss``: :data:`nnopt.losses.LOSSES`;
* datasets — ``dataset.name``: the loaders of :mod:`nnopt.data`
  (:func:`nnopt.data.available_datasets`);
* :data:`HOOKS` — ``hooks[i].name``: SensLI, MLSGD, CABS and its competitor.

An optimizer factory is called as ``factory(learning_rate, **options)``, a
hook factory as ``factory(**options)``; a factory that declares a run
argument (``model``, ``loss``, ``dataset``, …; see
:mod:`nnopt.config.signatures`) gets it from :func:`nnopt.config.build`.
A user adds a name of their own with :func:`add`.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import optax

from nnopt import data, losses, models
from nnopt import noise_aware as na
from nnopt import preconditioning as pc
from nnopt.config import adapters
from nnopt.config.errors import ConfigError, OptimizerError, did_you_mean

# optax functions with a learning_rate first that are building blocks or need
# inputs that nnopt's step does not provide.
_NOT_ALIASES = {"scale_by_learning_rate", "scale_by_rprop", "scale_by_madgrad",
                "dpsgd"}


def optax_aliases() -> dict[str, Callable[..., optax.GradientTransformation]]:
  """optax's and optax.contrib's optimizers that take ``learning_rate`` first."""
  found = {}
  for source in (optax, optax.contrib):
    for name in sorted(dir(source)):
      fn = getattr(source, name)
      if (name.startswith("_") or name in _NOT_ALIASES or name in found
          or name.startswith("scale_by_") or not inspect.isfunction(fn)):
        continue
      params = list(inspect.signature(fn).parameters)
      if params and params[0] == "learning_rate":
        found[name] = fn
  return found


def optax_schedules() -> dict[str, Callable[..., optax.Schedule]]:
  """The schedule factories of ``optax.schedules``."""
  return {name: fn for name, fn in sorted(vars(optax.schedules).items())
          if inspect.isfunction(fn) and name != "join_schedules"
          and (name.endswith("_schedule") or name == "exponential_decay")}


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    **optax_aliases(),
    # Balles: noise-aware methods (nnopt.noise_aware); nnopt's sign_sgd is
    # optax's update with the thesis's equation number.
    "msgd": na.msgd, "sign_sgd": na.sign_sgd, "msign_sgd": na.msign_sgd,
    "svag": na.svag, "msvag": na.msvag, "msvag_mb": na.msvag_mb,
    "adam_star": na.adam_star, "l1_sign_gd": na.l1_sign_gd,
    "block_normalized_gd": na.block_normalized_gd,
    "coordinate_descent": na.coordinate_descent, "diag_ef": na.diag_ef,
    "cabs_sgd": na.cabs_sgd,
    # Kreis ch. 5: preconditioning (nnopt.preconditioning)
    "frobenius_sgd": pc.frobenius_sgd, "kfac": pc.kfac,
    "inner_product_sgd": pc.inner_product_sgd,
    # Kreis ch. 3: MG/Opt (nnopt.multilevel)
    "mgopt": adapters.mgopt,
}

SCHEDULES: dict[str, Callable[..., optax.Schedule]] = optax_schedules()

MODELS: dict[str, type] = models.MODELS

LOSSES: dict[str, losses.Loss] = losses.LOSSES

HOOKS: dict[str, Callable[..., Any]] = {
    "sensli": adapters.sensli_hook,       # Kreis ch. 4 (nnopt.growth)
    "mlsgd": adapters.mlsgd_hook,         # MLSGD thesis (nnopt.multilevel)
    "cabs": na.CABS,                      # Balles ch. 4 (nnopt.noise_aware)
    "competitor": na.Competitor,
    "reduce_on_plateau": adapters.reduce_on_plateau_hook,  # SensLI Exp1
}

_TABLES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "model": MODELS,
           "loss": LOSSES, "hook": HOOKS}
_WHAT = {"schedule": "learning-rate schedule"}
KINDS = (*_TABLES, "dataset")


def lookup(kind: str, name: str) -> Any:
  """The factory of ``name`` in the table of ``kind`` (see :data:`KINDS`).

  Raises:
    OptimizerError: (for optimizers and schedules) or ConfigError: an unknown
      name; the message suggests the closest names and lists them all.
  """
  table = _TABLES[kind]
  try:
    return table[name]
  except (KeyError, TypeError):
    error = OptimizerError if kind in ("optimizer", "schedule") else ConfigError
    raise error(f"unknown {_WHAT.get(kind, kind)} {name!r}"
                f"{did_you_mean(name, table)}; known: "
                f"{', '.join(sorted(table)) or '(none)'}") from None


def add(kind: str, name: str, factory: Any, *, overwrite: bool = False) -> None:
  """Makes ``factory`` available to configs under ``name``.

  Args:
    kind: ``'optimizer'`` (``factory(learning_rate, **options)``; its first
      parameter must be ``learning_rate``), ``'schedule'``, ``'model'`` (a
      flax module class), ``'loss'`` (a :class:`nnopt.losses.Loss`),
      ``'hook'`` (``factory(**options)`` returning a
      :class:`nnopt.hooks.Hook`) or ``'dataset'`` (a loader
      ``loader(*, data_dir, seed, **options)``, see
      :func:`nnopt.data.register_dataset`). A factory that declares a run
      argument (:data:`nnopt.config.signatures.HOOK_ARGUMENTS`) gets it from
      :func:`nnopt.config.build`.
    name: the name configs use.
    factory: see ``kind``.
    overwrite: allow replacing an existing entry.

  Raises:
    ConfigError: unknown kind, a name that is taken (without ``overwrite``),
      or an optimizer factory without ``learning_rate`` first.
  """
  if kind == "dataset":
    try:
      data.register_dataset(name, factory, overwrite=overwrite)
    except data.DatasetError as e:
      raise ConfigError(str(e)) from None
    return
  if kind not in _TABLES:
    raise ConfigError(f"unknown kind {kind!r}{did_you_mean(kind, KINDS)}; "
                      f"kinds: {', '.join(KINDS)}")
  table = _TABLES[kind]
  if name in table and not overwrite:
    raise ConfigError(f"{_WHAT.get(kind, kind)} {name!r} is already in the "
                      "table (pass overwrite=True to replace it)")
  if kind == "optimizer":
    params = list(inspect.signature(factory).parameters)
    if not params or params[0] != "learning_rate":
      raise OptimizerError(f"optimizer factory for {name!r} must take "
                           f"'learning_rate' as its first parameter, got "
                           f"{params}")
  table[name] = factory


__all__ = ["HOOKS", "KINDS", "LOSSES", "MODELS", "OPTIMIZERS", "SCHEDULES",
           "add", "lookup", "optax_aliases", "optax_schedules"]
