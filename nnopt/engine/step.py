"""The pure train and eval steps that the engine jits.

A step takes a :class:`TrainState` and a batch ``{'x', 'y', 'weights'}``
(weights 0 mark padding) and returns the new state and device-side metrics.
The optimizer is any optax transformation; it is called with the keyword
extra args of :class:`nnopt.stats.needs.StepExtras`:

.. code-block:: python

    optimizer.update(grads, opt_state, params, stats=..., value=loss,
                     grad=grads, value_fn=..., weights=..., rng=...,
                     batch={'x': ..., 'y': ..., 'weights': ...})

Layer statistics (``stats``) and gradients for targets sampled from the model
cost a little more than a plain gradient, so the step computes them only when
a transform of the optimizer declares them (:class:`nnopt.stats.needs.Needs`,
found by :func:`nnopt.stats.needs.required_needs` through any optax wrapper);
the other extra args are free when unused. Transforms that do not know an
extra arg ignore it, as optax does.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from nnopt.losses import Loss, accuracy
from nnopt.models.apply import apply_model
from nnopt.stats.capture import capture, layer_info
from nnopt.stats.needs import Needs

Array = jax.Array


class TrainState(NamedTuple):
  """Everything a step changes; arrays only, so it jits, shards and saves.

  Attributes:
    step: number of steps taken.
    params: model parameters.
    opt_state: optimizer state.
    rng: the run's PRNG key (raw uint32 data); step k uses
      ``fold_in(rng, k)`` for sampled Fisher targets and the optimizer's ``rng``.
    nonfinite_step: first step whose loss was not finite, or -1.
    model_state: the model's non-parameter collections (batch norm's
      running averages), updated by every training step; ``{}`` for models
      without any. See :mod:`nnopt.models.apply`.
  """

  step: Array
  params: Any
  opt_state: Any
  rng: Array
  nonfinite_step: Array
  model_state: Any = {}


def init_train_state(params, optimizer: optax.GradientTransformation,
                     seed: int, model_state: dict[str, Any] | None = None
                     ) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params),
                    rng=jax.random.key_data(jax.random.key(seed)),
                    nonfinite_step=-jnp.ones((), jnp.int32),
                    model_state=dict(model_state or {}))


class NeedsError(ValueError):
  """The optimizer needs something from the step that this run cannot give."""


def check_needs(needs: Needs, model: nn.Module, loss: Loss, params,
                inputs) -> None:
  """Raises :class:`NeedsError` when the step cannot meet ``needs``.

  Layer statistics need at least one of nnopt's tagged ``Dense``/``Conv``
  layers in the model; model-sampled targets need a loss that can sample
  them. ``params`` and ``inputs`` may be abstract (``jax.ShapeDtypeStruct``).
  """
  if needs.fisher_samples and getattr(loss, "sample_targets", None) is None:
    raise NeedsError(
        f"the optimizer needs {needs.fisher_samples} model-sampled target(s) "
        f"per example, but loss {getattr(loss, 'name', loss)!r} cannot sample "
        "targets")
  if needs.stats and not layer_info(model, params, inputs):
    raise NeedsError(
        f"the optimizer needs layer statistics, but model "
        f"{type(model).__name__} has no nnopt Dense/Conv layers "
        "(nnopt.models.layers) to capture them from")


def as_extra_args(optimizer) -> optax.GradientTransformationExtraArgs:
  """Wraps a plain optax transformation so that extra args are accepted."""
  if isinstance(optimizer, optax.GradientTransformationExtraArgs):
    return optimizer
  return optax.with_extra_args_support(optimizer)


def make_train_step(model: nn.Module, loss: Loss,
                    optimizer: optax.GradientTransformation,
                    needs: Needs = Needs(),
                    on_trace: Callable[[], None] | None = None):
  """Builds ``step(state, batch) -> (state, metrics)`` (not yet jitted).

  Args:
    model, loss, optimizer: the run's.
    needs: what to capture for the optimizer (usually
      ``required_needs(optimizer, params)``).
    on_trace: called whenever the step is traced (counts compilations).
  """
  optimizer = as_extra_args(optimizer)

  def step(state: TrainState, batch: dict[str, Array]):
    if on_trace is not None:
      on_trace()
    x, y, weights = batch["x"], batch["y"], batch["weights"]
    # Per-step keys derive from the fixed run key and the step number, so
    # that they cost nothing (dead code) when no one uses them.
    step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng),
                                  state.step)
    sample_rng, opt_rng = jax.random.split(step_key)
    dropout_rng = jax.random.fold_in(step_key, 2)
    captured = capture(model, state.params, x, y, loss, weights=weights,
                       fisher_samples=needs.fisher_samples, rng=sample_rng,
                       with_stats=needs.stats,
                       model_state=state.model_state, train=True,
                       dropout_rng=dropout_rng)

    def value_fn(params):
      # The step's own stochastic function: same dropout masks, batch
      # statistics of this batch, running averages left alone.
      outputs = apply_model(model, params, x, model_state=state.model_state,
                            train=True, rng=dropout_rng)[0]
      return loss(outputs, y, weights)

    updates, opt_state = optimizer.update(
        captured.grads, state.opt_state, state.params, stats=captured.stats,
        value=captured.loss, grad=captured.grads, value_fn=value_fn,
        weights=weights, rng=opt_rng, batch=batch)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(captured.loss)
    nonfinite_step = jnp.where((state.nonfinite_step < 0) & ~finite,
                               state.step, state.nonfinite_step)
    new_state = TrainState(state.step + 1, params, opt_state, state.rng,
                           nonfinite_step, captured.model_state)
    metrics = {"loss": captured.loss}
    if loss.is_classification:
      metrics["accuracy"] = accuracy(captured.outputs, y, weights)
    return new_state, metrics

  return step


def metric_names(loss: Loss) -> tuple[str, ...]:
  """The per-step metrics that :func:`make_train_step` returns."""
  return ("loss", "accuracy") if loss.is_classification else ("loss",)


def accumulating(step):
  """``step(state, batch) -> (state, metrics)`` plus in-graph running sums.

  The returned function takes and returns ``sums`` (each metric summed over
  the steps since the last log, and ``'count'``), so the host fetches one
  small dict per log instead of every step's metrics.
  """

  def step_and_sum(state, batch, sums):
    state, metrics = step(state, batch)
    sums = {k: sums[k] + (1.0 if k == "count" else metrics[k]) for k in sums}
    return state, metrics, sums

  return step_and_sum


def make_eval_step(model: nn.Module, loss: Loss):
  """``eval(params, batch, model_state) -> sums``: weighted sums of loss and
  hits, with the model in evaluation mode (running averages, no dropout)."""

  def evaluate(params, batch, model_state=None):
    outputs = apply_model(model, params, batch["x"],
                          model_state=model_state)[0]
    w = batch["weights"].astype(jnp.float32)
    sums = {"loss": jnp.sum(w * loss.per_example(outputs, batch["y"])),
            "count": jnp.sum(w)}
    if loss.is_classification:
      sums["accuracy"] = accuracy(outputs, batch["y"], w) * jnp.sum(w)
    return sums

  return evaluate
