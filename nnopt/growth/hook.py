"""SensLI on nnopt's engine loop: the engine adapter of Algorithm 6.

:class:`SensLI` is a :class:`nnopt.hooks.Hook`: at the end of given epochs (the
thesis's fixed insertion epochs, or regular attempts with the threshold rule
(4.18)) it runs the pure :func:`nnopt.growth.sensli.sensli_step` and swaps
architecture, parameters and optimizer through ``run.replace``: the optimizer
is restarted (reference code; optionally with the learning rate times
``lr_factor``) or its state is grafted onto the new parameters
(:mod:`nnopt.growth.graft`).
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
import optax

from nnopt.growth.architecture import insert
from nnopt.growth.graft import graft, scale_hyperparam
from nnopt.growth.sensli import SensLIResult, sensli_step
from nnopt.hooks import Hook, RunView
from nnopt.losses import Loss

log = logging.getLogger("nnopt.growth")


class SensLI(Hook):
  """Algorithm 6 in the training loop: insert layers at the end of epochs.

  Args:
    loss: the training loss (as given to the Trainer).
    x, y: training data the sensitivities are computed on (the dataset's
      ``x_train``/``y_train``).
    at_epochs: numbers of finished epochs after which a selection runs
      (full-batch runs: epochs = iterations).
    optimizer: ``'restart'`` (fresh state, as the reference code) or
      ``'graft'`` (keep the state of existing parameters).
    optimizer_fn: ``learning_rate -> optax transformation``; needed to
      change the learning rate (``lr_factor != 1``) unless the optimizer is
      an ``optax.inject_hyperparams`` one. The rebuilt optimizer restarts
      its schedule.
    learning_rate: the initial learning rate (with ``optimizer_fn``).
    lr_factor: learning-rate factor after every insertion (the reference's
      ``decrease_after_li``; 0.7 in Exp7, 0.8 in Exp10).
    seed: seeds the ``'random'`` rule and the sensitivity epoch's order
      (offset by the attempt number).
    **step_kwargs: every option of :func:`sensli_step` (rule, position,
      norm, threshold, strict, denominator, accept_multiple, mode,
      batch_size, subset_size, augment, resnet_positions, resnet_w1_scale).

  Every attempt is logged into the next metrics record (``sensli_*`` keys)
  and kept in :attr:`attempts`; "no insertion" is logged, never silent.
  """

  def __init__(self, loss: Loss, x: np.ndarray, y: np.ndarray, *,
               at_epochs: Sequence[int], optimizer: str = "restart",
               optimizer_fn: Callable[[float], optax.GradientTransformation]
               | None = None, learning_rate: float | None = None,
               lr_factor: float = 1.0, seed: int = 0, **step_kwargs):
    if optimizer not in ("restart", "graft"):
      raise ValueError(f"SensLI optimizer must be 'restart' or 'graft', got "
                       f"{optimizer!r}")
    if optimizer_fn is not None and learning_rate is None:
      raise ValueError("SensLI: optimizer_fn needs the initial learning_rate")
    unknown = sorted(set(step_kwargs) - set(
        inspect.signature(sensli_step).parameters) - {"seed"})
    if unknown:
      raise ValueError(f"SensLI has no option(s) {unknown}; see sensli_step")
    self.loss, self.x, self.y = loss, x, y
    self.at_epochs = sorted(int(e) for e in at_epochs)
    self.optimizer_mode, self.optimizer_fn = optimizer, optimizer_fn
    self.learning_rate, self.lr_factor = learning_rate, float(lr_factor)
    self.seed, self.step_kwargs = seed, step_kwargs
    self.attempts: list[dict[str, Any]] = []
    self.last_result: SensLIResult | None = None

  def _new_optimizer(self, run: RunView, new_params, inserted: bool):
    """(optimizer or None, opt_state) after an attempt."""
    if not inserted:
      return None, run.state.opt_state
    factor = self.lr_factor
    optimizer = None
    if self.optimizer_fn is not None:
      self.learning_rate *= factor
      optimizer = self.optimizer_fn(self.learning_rate)
      factor = 1.0
    fresh = (optimizer or run.optimizer).init(new_params)
    if self.optimizer_mode == "graft":
      state = graft(jax.device_get(run.state.opt_state), fresh,
                    keep_hyperparams=optimizer is None)
    else:
      state = fresh
      if factor != 1.0:
        # A restarted state holds the optimizer's initial rate: apply every
        # insertion's factor so far, as the rebuilt optimizer does.
        factor **= 1 + sum(1 for a in self.attempts if a["chosen"])
    if factor != 1.0:
      state = scale_hyperparam(state, "learning_rate", factor)
    return optimizer, state

  def on_epoch_end(self, run: RunView) -> None:
    done = {a["epoch"] for a in self.attempts}
    if run.stop or run.epoch not in self.at_epochs or run.epoch in done:
      return  # a run that an earlier hook stopped attempts nothing
    start = time.perf_counter()
    params = jax.device_get(run.state.params)
    result = sensli_step(run.model, params, self.loss, self.x, self.y,
                         seed=self.seed + len(self.attempts), **self.step_kwargs)
    inserted = bool(result.selection.chosen)
    optimizer, opt_state = self._new_optimizer(run, result.params, inserted)
    if inserted:
      run.replace(model=result.model, params=result.params,
                  optimizer=optimizer, opt_state=opt_state)
    seconds = time.perf_counter() - start
    record = {"epoch": run.epoch, "step": run.step,
              "chosen": list(result.selection.chosen),
              "merits": result.merits, "ratios": result.selection.ratios,
              "reason": result.selection.reason, "seconds": seconds,
              "learning_rate": self.learning_rate}
    self.attempts.append(record)
    self.last_result = result
    log.info("SensLI at epoch %d: %s", run.epoch, result.selection.reason)
    run.log.update({"sensli_chosen": record["chosen"],
                    "sensli_merits": record["merits"],
                    "sensli_reason": record["reason"],
                    "sensli_seconds": seconds})

  def state_dict(self) -> dict[str, Any]:
    return {"attempts": self.attempts, "learning_rate": self.learning_rate}

  def load_state_dict(self, state: dict[str, Any], run: RunView) -> None:
    """Replays the recorded insertions so that the checkpoint's tree fits."""
    self.attempts = list(state["attempts"])
    model, params = run.model, jax.device_get(run.state.params)
    kwargs = {k: self.step_kwargs[k] for k in
              ("resnet_positions", "resnet_w1_scale") if k in self.step_kwargs}
    for attempt in self.attempts:
      if attempt["chosen"]:
        model, params = insert(model, params, attempt["chosen"], **kwargs)
    self.learning_rate = state["learning_rate"]
    optimizer = (self.optimizer_fn(self.learning_rate)
                 if self.optimizer_fn is not None and self.attempts else None)
    if model is not run.model:
      run.replace(model=model, params=params, optimizer=optimizer,
                  opt_state=(optimizer or run.optimizer).init(params))


__all__ = ["SensLI"]
