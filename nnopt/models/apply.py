"""Applying a model with its non-parameter state (batch norm) and dropout.

Flax models keep everything that is not trained by the optimizer in other
variable collections (``'batch_stats'`` of ``nn.BatchNorm``) and draw dropout
masks from a ``'dropout'`` RNG stream; both depend on a ``train`` flag in the
model's ``__call__``. The engine calls every model through :func:`apply_model`,
which

* passes ``train=`` only to models whose ``__call__`` has a ``train``
  parameter (nnopt's plain models have none and behave the same in both
  modes),
* returns the updated non-parameter collections of a training pass (batch
  norm's running averages), and
* passes the ``'dropout'`` RNG in training mode.

``model_state`` is the dict of non-parameter collections (``{}`` for models
without any), as :func:`init_variables` returns it; it lives in
:class:`nnopt.engine.step.TrainState` next to the parameters.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.errors import InvalidRngError

from nnopt.models.layers import INPUTS_COLLECTION, PERTURBATIONS_COLLECTION

Array = jax.Array
# Collections that capture() creates per call; never part of a model's state.
_TRANSIENT = ("params", INPUTS_COLLECTION, PERTURBATIONS_COLLECTION)


@functools.lru_cache(maxsize=None)
def _call_takes_train(model_type: type) -> bool:
  try:
    return "train" in inspect.signature(model_type.__call__).parameters
  except (TypeError, ValueError):
    return False


def takes_train_flag(model: nn.Module) -> bool:
  """Whether ``model.__call__`` has a ``train`` parameter."""
  return _call_takes_train(type(model))


def init_variables(model: nn.Module, rng: Array, example_input: Array
                   ) -> tuple[Any, dict[str, Any]]:
  """``(params, model_state)`` of a freshly initialized model.

  The model is initialized in evaluation mode (``train=False``), so no
  dropout RNG is needed; ``model_state`` holds the non-parameter collections
  (e.g. ``{'batch_stats': …}``), or is ``{}``.
  """
  kwargs = {"train": False} if takes_train_flag(model) else {}
  variables = model.init(rng, jnp.asarray(example_input), **kwargs)
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k not in _TRANSIENT}
  return params, state


def initial_model_state(model: nn.Module, rng: Array, example_input: Array
                        ) -> dict[str, Any]:
  """Only the non-parameter collections of a fresh model (``{}`` for most).

  The abstract trace is free; the model is initialized for real only when it
  has such collections.
  """
  shapes = jax.eval_shape(lambda: init_variables(model, rng, example_input))
  if not shapes[1]:
    return {}
  return init_variables(model, rng, example_input)[1]


def apply_model(model: nn.Module, params: Any, inputs: Array, *,
                model_state: dict[str, Any] | None = None,
                train: bool = False, rng: Array | None = None,
                extra_variables: dict[str, Any] | None = None,
                mutable: Sequence[str] = ()
                ) -> tuple[Array, dict[str, Any], dict[str, Any]]:
  """Runs ``model`` and returns ``(outputs, new_model_state, collected)``.

  Args:
    model: a flax module.
    params: its ``'params'`` collection.
    inputs: a batch.
    model_state: non-parameter collections (``{}`` or None for none).
    train: training mode: batch norm uses (and updates) batch statistics,
      dropout is active. Ignored by models without a ``train`` parameter.
    rng: key of the ``'dropout'`` stream (training mode only).
    extra_variables: more collections to read (e.g. pre-activation
      perturbations).
    mutable: more collections to collect (e.g. sown layer inputs); they are
      returned in ``collected``.

  Returns:
    The outputs, the model state after this call (updated running averages in
    training mode, else ``model_state`` unchanged) and the collected
    ``mutable`` collections.

  Raises:
    ValueError: the model needs a dropout key in training mode but got none.
  """
  model_state = dict(model_state or {})
  variables = {"params": params, **model_state, **(extra_variables or {})}
  kwargs: dict[str, Any] = {}
  if takes_train_flag(model):
    kwargs["train"] = train
  if train and rng is not None:
    kwargs["rngs"] = {"dropout": rng}
  state_names = list(model_state) if train else []
  collect = list(mutable) + state_names
  try:
    if not collect:
      return model.apply(variables, inputs, **kwargs), model_state, {}
    outputs, updated = model.apply(variables, inputs, mutable=collect, **kwargs)
  except InvalidRngError as err:
    raise ValueError(f"{type(model).__name__} needs a 'dropout' rng in "
                     f"training mode ({err})") from None
  updated = dict(updated)
  new_state = ({k: updated[k] for k in state_names} if train
               else model_state)
  return outputs, new_state, {k: updated[k] for k in mutable if k in updated}


__all__ = ["apply_model", "init_variables", "initial_model_state", "takes_train_flag"]
