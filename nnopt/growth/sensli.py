"""SensLI (Kreis Algorithm 6): one selection step, and a hook for the engine.

:func:`sensli_step` is lines 4–7 of Algorithm 6 as a pure function::

    ext_model, ext_params, cands = fully_extend(model, params)      # l. 4-5
    sens = sensitivities(ext_model, ext_params, loss, x, y, ...)    # l. 6
    merits = candidate_merits(...); selection = select(merits, ...) # l. 7
    new_model, new_params = insert(model, params, selection.chosen)

:class:`SensLI` runs it from :class:`nnopt.engine.trainer.Trainer`'s loop at the end
of given epochs (the thesis's fixed insertion epochs, or regular attempts
with the threshold rule (4.18)), then swaps architecture, parameters and
optimizer through ``run.replace``: the optimizer is restarted (reference
code; optionally with the learning rate times ``lr_factor``) or its state is
grafted onto the new parameters (:mod:`nnopt.growth.graft`).
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import numpy as np
import optax

from nnopt.growth.architecture import Candidate, fully_extend, insert
from nnopt.growth.graft import graft, scale_hyperparam
from nnopt.growth.selection import Selection, select
from nnopt.growth.sensitivity import (Sensitivity, candidate_merits,
                                      reference_merits, sensitivities)
from nnopt.losses import Loss
from nnopt.hooks import Hook

log = logging.getLogger("nnopt.growth")


class SensLIResult(NamedTuple):
  """What one SensLI selection computed.

  Attributes:
    model, params: the network after insertion (unchanged if none).
    selection: the :class:`Selection` (chosen names, ratios, reason).
    merits: merit of every candidate.
    reference: the threshold set's merits (empty without threshold).
    candidates: the candidates of the fully extended network.
    ext_model: the fully extended architecture.
    sensitivity: the averaged gradients of the fully extended network.
  """

  model: nn.Module
  params: Any
  selection: Selection
  merits: dict[str, float]
  reference: dict[str, float]
  candidates: list[Candidate]
  ext_model: nn.Module
  sensitivity: Sensitivity


def sensli_step(model: nn.Module, params, loss: Loss, x: np.ndarray,
                y: np.ndarray, *, rule: str = "max", position=None,
                norm: str | None = None, slice_mode: str = "sum_over_in",
                threshold: float | None = None, strict: bool = False,
                denominator: str = "baseline", accept_multiple: bool = False,
                mode: str = "full", batch_size: int | None = None,
                subset_size: int | None = None, augment=None, seed: int = 0,
                resnet_positions: str = "after_each_block",
                resnet_w1_scale: float = 0.8) -> SensLIResult:
  """Sensitivities → merits → selection → insertion (Alg. 6, lines 4–7).

  Args:
    model, params: the current network.
    loss: training loss; ``x``, ``y``: training data (host arrays).
    rule, position, threshold, strict, accept_multiple: see
      :func:`nnopt.growth.select`.
    norm, slice_mode: merit norm (default per family: Frobenius for
      FNN/ResNet, operator norm for VGG), see :mod:`nnopt.growth.norms`.
    denominator: threshold set, see :func:`reference_merits`.
    mode, batch_size, subset_size, augment, seed: see :func:`sensitivities`.
    resnet_positions, resnet_w1_scale: see :func:`candidates` /
      :func:`identity_params`.
  """
  ext_model, ext_params, cands = fully_extend(
      model, params, resnet_w1_scale=resnet_w1_scale,
      resnet_positions=resnet_positions)
  sens = sensitivities(ext_model, ext_params, loss, x, y, mode=mode,
                       batch_size=batch_size, subset_size=subset_size,
                       augment=augment, seed=seed)
  input_shape = x.shape[1:]
  merits = candidate_merits(ext_model, sens.grads, cands, input_shape,
                            norm=norm, slice_mode=slice_mode)
  reference = {}
  if threshold is not None:
    reference = reference_merits(ext_model, sens.grads, cands, input_shape,
                                 norm=norm, denominator=denominator,
                                 slice_mode=slice_mode)
  selection = select(merits, rule, seed=seed, position=position,
                     threshold=threshold, reference=reference, strict=strict,
                     accept_multiple=accept_multiple)
  new_model, new_params = model, params
  if selection.chosen:
    new_model, new_params = insert(model, params, selection.chosen,
                                   resnet_w1_scale=resnet_w1_scale,
                                   resnet_positions=resnet_positions)
  return SensLIResult(new_model, new_params, selection, merits, reference,
                      cands, ext_model, sens)


class SensLI(Hook):
  """Algorithm 6 on the engine loop: insert layers at the end of epochs.

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

  def _new_optimizer(self, run, new_params, inserted: bool):
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
      state = scale_hyperparam(state, "learning_rate", factor)
    return optimizer, state

  def on_epoch_end(self, run) -> None:
    done = {a["epoch"] for a in self.attempts}
    if run.epoch not in self.at_epochs or run.epoch in done:
      return
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

  def load_state_dict(self, state: dict[str, Any], run) -> None:
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


def sensli_hook(experiment=None, *, at_epochs: Sequence[int] = (),
                lr_factor: float = 1.0, optimizer: str = "restart",
                use_augment: bool = True, rule: str = "max",
                position: int | None = None, norm: str | None = None,
                slice_mode: str = "sum_over_in",
                threshold: float | None = None, strict: bool = False,
                denominator: str = "baseline", accept_multiple: bool = False,
                mode: str = "full", batch_size: int | None = None,
                subset_size: int | None = None, seed: int = 0,
                resnet_positions: str = "after_each_block",
                resnet_w1_scale: float = 0.8) -> SensLI:
  """Config factory of :class:`SensLI` (``hooks: [{'name': 'sensli', ...}]``).

  Takes loss and training data from the built experiment; with
  ``lr_factor != 1`` the optimizer is rebuilt from the config's optimizer
  name and options at the reduced rate. ``use_augment`` applies the
  experiment's augmentation in the sensitivity epoch (reference code, P8).
  The other options are those of :func:`sensli_step`.
  """
  from nnopt.config import optimizers as optimizers_lib  # pylint: disable=g-import-not-at-top
  if experiment is None:
    raise ValueError("the 'sensli' hook is built from an experiment config")
  if not at_epochs:
    raise ValueError("the 'sensli' hook needs at_epochs (when to insert)")
  opt = experiment.config["optimizer"]
  optimizer_fn, learning_rate = None, None
  if lr_factor != 1.0:
    learning_rate = opt["learning_rate"]
    if not isinstance(learning_rate, (int, float)):
      raise ValueError("sensli lr_factor needs a constant learning_rate in the "
                       "config (a schedule restarts from its own values)")

    def optimizer_fn(rate):
      return optimizers_lib.make_optimizer(opt["name"], rate, **opt["options"])

  augment = experiment.augment if use_augment else None
  ds = experiment.dataset
  return SensLI(experiment.loss, ds.x_train, ds.y_train, at_epochs=at_epochs,
                optimizer=optimizer, optimizer_fn=optimizer_fn,
                learning_rate=learning_rate, lr_factor=lr_factor, seed=seed,
                rule=rule, position=position, norm=norm, slice_mode=slice_mode,
                threshold=threshold, strict=strict, denominator=denominator,
                accept_multiple=accept_multiple, mode=mode,
                batch_size=batch_size, subset_size=subset_size,
                augment=augment, resnet_positions=resnet_positions,
                resnet_w1_scale=resnet_w1_scale)
