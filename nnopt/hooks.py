"""The hook protocol: how methods that change a run between steps talk to
the engine, without importing it.

A hook (SensLI insertion, CABS batch sizes, MLSGD level switches) is called
by the engine's loop at three points and sees the run through the small
interface :class:`RunView`; it may

* read the step, epoch, architecture, parameters and optimizer state;
* swap the architecture, parameters, optimizer or its state with
  :meth:`RunView.replace` (the engine compiles once per new setting);
* change the batch size with ``run.sampler.set_batch_size(m)``;
* add diagnostics to the next metrics record through ``run.log``;
* end the run with ``run.stop = True``.

``state_dict`` / ``load_state_dict`` make a hook resumable (JSON-serializable
dicts saved with the engine's checkpoints).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import flax.linen as nn
import jax
import optax


class SamplerView(Protocol):
  """The batch sampler as hooks see it."""

  batch_size: int | None
  buckets: Sequence[int] | None
  num_examples: int
  examples_seen: int
  epoch: int

  def set_batch_size(self, batch_size: int | None) -> None:
    ...


class RunView(Protocol):
  """What a hook may read and change of a run."""

  model: nn.Module
  optimizer: optax.GradientTransformation
  state: Any  # the engine's TrainState: .params, .opt_state, .model_state
  sampler: SamplerView
  step: int
  log: dict[str, Any]
  stop: bool

  @property
  def epoch(self) -> int:
    ...

  @property
  def params(self) -> Any:
    ...

  def replace(self, *, model: nn.Module | None = None, params: Any = None,
              optimizer: optax.GradientTransformation | None = None,
              opt_state: Any = None, model_state: Any = None) -> None:
    ...


class Hook:
  """Base class of loop hooks; override the methods you need."""

  def on_start(self, run: RunView) -> None:
    """Called once before the first step (also after a resume)."""

  def on_step(self, run: RunView, metrics: dict[str, jax.Array]) -> None:
    """Called after every step with its device-side metrics."""

  def on_epoch_end(self, run: RunView) -> None:
    """Called when the sampler finished an epoch."""

  def state_dict(self) -> dict[str, Any]:
    return {}

  def load_state_dict(self, state: dict[str, Any], run: RunView) -> None:
    del state, run


__all__ = ["Hook", "RunView", "SamplerView"]
