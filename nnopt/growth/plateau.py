"""Halving the learning rate when the test accuracy stops improving (Exp1).

The reference code's CNN experiment Exp1 (Kreis Fig 4.8, spec-sensli P2,
P16) wraps its optimizer in PyTorch's ``ReduceLROnPlateau(mode='max',
factor=0.5, patience=10)`` stepped once per epoch with the **test accuracy**;
after a layer insertion the optimizer and scheduler restart from the current
learning rate, so the patience counter and the best value reset.

:class:`ReduceLROnPlateau` is that rule as an engine hook, with PyTorch's
default relative threshold: after epoch ``e`` with accuracy ``a_e``,

* ``a_e > best · (1 + threshold)``: ``best = a_e``, ``bad = 0``;
* else ``bad += 1``; when ``bad > patience``: ``lr ← max(factor · lr,
  min_lr)`` and ``bad = 0``.

The optimizer is rebuilt at the new rate with ``optimizer_fn`` and its state
grafted (:func:`nnopt.growth.graft`), so momentum survives the change.
(``optax.contrib.reduce_on_plateau`` monitors the training loss the step
receives, not the test accuracy, so it is not the reference's rule.)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
import optax

from nnopt.growth.graft import graft
from nnopt.growth.stopping import error_rate_fn
from nnopt.hooks import Hook, RunView


class ReduceLROnPlateau(Hook):
  """PyTorch's ``ReduceLROnPlateau(mode='max')`` on the test accuracy.

  Args:
    x_test, y_test: the test split (accuracy ``1 − error``).
    optimizer_fn: ``learning_rate -> optax transformation`` (the run's).
    learning_rate: the run's initial learning rate.
    factor: the factor of a reduction (0.5 in Exp1).
    patience: epochs without improvement tolerated (10 in Exp1).
    threshold: relative improvement that counts (PyTorch default 1e-4).
    min_lr: the learning rate never drops below it.
    metric_fn: ``(model, params) -> accuracy``; default: the test accuracy.

  Attributes:
    learning_rate: the current learning rate.
    reductions: ``[(epoch, new learning rate)]``.
  """

  def __init__(self, x_test: np.ndarray, y_test: np.ndarray,
               optimizer_fn: Callable[[float], optax.GradientTransformation],
               learning_rate: float, *, factor: float = 0.5,
               patience: int = 10, threshold: float = 1e-4,
               min_lr: float = 0.0,
               metric_fn: Callable[[Any, Any], float] | None = None):
    if not 0 < factor < 1:
      raise ValueError(f"factor must lie in (0, 1), got {factor}")
    self.x_test, self.y_test = x_test, y_test
    self.optimizer_fn = optimizer_fn
    self.learning_rate = float(learning_rate)
    self.factor, self.patience = float(factor), int(patience)
    self.threshold, self.min_lr = float(threshold), float(min_lr)
    self.metric_fn = metric_fn or self._accuracy
    self.best, self.bad = -np.inf, 0
    self.reductions: list[tuple[int, float]] = []
    self._model = None

  def _accuracy(self, model, params) -> float:
    return 1.0 - float(error_rate_fn(model)(params, self.x_test, self.y_test))

  def on_epoch_end(self, run: RunView) -> None:
    if run.model is not self._model:  # start, or a layer was inserted
      self._model, self.best, self.bad = run.model, -np.inf, 0
    value = float(self.metric_fn(run.model, run.state.params))
    if value > self.best * (1 + self.threshold) or self.best == -np.inf:
      self.best, self.bad = value, 0
      return
    self.bad += 1
    if self.bad <= self.patience:
      return
    self.bad = 0
    new_lr = max(self.learning_rate * self.factor, self.min_lr)
    if self.learning_rate - new_lr <= 1e-12:
      return
    self.learning_rate = new_lr
    optimizer = self.optimizer_fn(new_lr)
    params = jax.device_get(run.state.params)
    state = graft(jax.device_get(run.state.opt_state), optimizer.init(params),
                  keep_hyperparams=False)
    run.replace(optimizer=optimizer, opt_state=state)
    self._model = run.model
    self.reductions.append((run.epoch, new_lr))
    run.log["plateau_learning_rate"] = new_lr

  def state_dict(self) -> dict[str, Any]:
    return {"learning_rate": self.learning_rate, "best": self.best,
            "bad": self.bad, "reductions": self.reductions}

  def load_state_dict(self, state: dict[str, Any], run: RunView) -> None:
    self.learning_rate = float(state["learning_rate"])
    self.best, self.bad = float(state["best"]), int(state["bad"])
    self.reductions = [tuple(r) for r in state["reductions"]]
    self._model = run.model
    optimizer = self.optimizer_fn(self.learning_rate)
    run.replace(optimizer=optimizer,
                opt_state=optimizer.init(jax.device_get(run.state.params)))


__all__ = ["ReduceLROnPlateau"]
