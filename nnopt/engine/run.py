"""The run a hook sees: the engine's implementation of
:class:`nnopt.hooks.RunView`."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import optax

from nnopt.data import EpochSampler
from nnopt.engine import parallel
from nnopt.engine.step import TrainState


@dataclasses.dataclass
class Run:
  """The mutable state of a run that hooks may read and change.

  Attributes:
    model: current architecture.
    optimizer: current optax transformation.
    state: current :class:`TrainState` (on the mesh).
    sampler: the batch sampler (``sampler.set_batch_size`` changes the batch).
    step: host-side step counter.
    log: diagnostics merged into the next metrics record, then cleared.
    stop: set to True to end the run after the current step.
  """

  model: nn.Module
  optimizer: optax.GradientTransformation
  state: TrainState
  sampler: EpochSampler
  mesh: jax.sharding.Mesh
  step: int = 0
  log: dict[str, Any] = dataclasses.field(default_factory=dict)
  stop: bool = False

  @property
  def epoch(self) -> int:
    return self.sampler.epoch

  @property
  def params(self):
    return self.state.params

  def replace(self, *, model: nn.Module | None = None, params: Any = None,
              optimizer: optax.GradientTransformation | None = None,
              opt_state: Any = None, model_state: Any = None) -> None:
    """Swaps in a new architecture, parameters, optimizer or its state.

    A new optimizer without ``opt_state`` starts from ``optimizer.init``. The
    model's non-parameter state (batch norm) is kept unless ``model_state``
    is given; pass it when the new architecture's differs.
    """
    if model is not None:
      self.model = model
    if optimizer is not None:
      self.optimizer = optimizer
    params = self.state.params if params is None else params
    if opt_state is None:
      opt_state = (self.optimizer.init(params) if optimizer is not None
                   else self.state.opt_state)
    if model_state is None:
      model_state = self.state.model_state
    self.state = parallel.replicate(
        self.state._replace(params=params, opt_state=opt_state,
                            model_state=model_state), self.mesh)
