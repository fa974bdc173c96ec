"""Stopping a run at zero test error, and the reference code's averaged curves.

The thesis is silent on it, but the authors' reference code (spec-sensli,
[R]: ``train_and_test_.train`` with ``wanted_testerror=0``) evaluates the test
error after every epoch and **ends a run once its test error reaches 0 %**;
the averaged curves of its figures are then ``nanmean`` over the runs still
running at each epoch (stopped runs are padded with NaN). Stopping one run
does not change any other run, so the reference's statistic is a pure
function of the unstopped curves:

* :func:`stop_epochs` — how many epochs each run trains before it stops:
  ``e_r = min{e : err_r[e] <= target} + 1`` (the epoch that reaches the
  target still counts), or all epochs;
* :func:`stopped_curves` — the curves with NaN after each run's stop (per
  epoch, or per step with ``steps_per_epoch``);
* :func:`surviving_mean` — the reference's mean over the surviving runs at
  every epoch / step (NaN where no run survives) and their number.

:class:`StopAtTestError` is the engine hook that stops a run the same way
(``run.stop = True`` at the end of the epoch whose test error reaches the
target); put it before a :class:`nnopt.growth.SensLI` hook so that a stopped
run attempts no insertion, as in the reference.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nnopt.hooks import Hook, RunView


def stop_epochs(test_error: np.ndarray, *, target: float = 0.0) -> np.ndarray:
  """Epochs each run trains when it stops at ``test_error <= target``.

  Args:
    test_error: ``(runs, epochs)``; ``[r, e]`` is run ``r``'s test error
      after epoch ``e + 1`` (fraction or percent, like ``target``).
    target: the error at which a run stops (0: the reference's
      ``wanted_testerror=0``).

  Returns:
    ``(runs,)`` ints in ``1..epochs``: the first epoch count whose test
    error is ``<= target``, or ``epochs`` when the run never reaches it.
  """
  err = np.asarray(test_error)
  if err.ndim != 2:
    raise ValueError(f"test_error must be (runs, epochs), got {err.shape}")
  reached = err <= target
  first = np.argmax(reached, axis=1) + 1
  return np.where(reached.any(axis=1), first, err.shape[1]).astype(np.int64)


def stopped_curves(curve: np.ndarray, test_error: np.ndarray, *,
                   steps_per_epoch: int = 1,
                   target: float = 0.0) -> np.ndarray:
  """``curve`` with NaN wherever its run had already stopped.

  Args:
    curve: ``(runs, epochs · steps_per_epoch)`` per-step values (e.g. the
      mini-batch losses) or ``(runs, epochs)`` per-epoch values.
    test_error: ``(runs, epochs)``, see :func:`stop_epochs`.
    steps_per_epoch: entries of ``curve`` per epoch.
    target: see :func:`stop_epochs`.
  """
  curve = np.asarray(curve, dtype=np.float64)
  stops = stop_epochs(test_error, target=target)
  if curve.shape != (len(stops), np.shape(test_error)[1] * steps_per_epoch):
    raise ValueError(f"curve shape {curve.shape} does not fit {len(stops)} "
                     f"runs × {np.shape(test_error)[1]} epochs × "
                     f"{steps_per_epoch} steps")
  alive = np.arange(curve.shape[1])[None, :] < (stops * steps_per_epoch)[:, None]
  return np.where(alive, curve, np.nan)


class SurvivingMean(NamedTuple):
  """The reference's averaged curve over the runs still running.

  Attributes:
    mean: ``(T,)`` nanmean over runs; NaN where no run survives.
    survivors: ``(T,)`` number of runs still running.
    stop_epochs: ``(runs,)`` see :func:`stop_epochs`.
  """

  mean: np.ndarray
  survivors: np.ndarray
  stop_epochs: np.ndarray


def surviving_mean(curve: np.ndarray, test_error: np.ndarray, *,
                   steps_per_epoch: int = 1,
                   target: float = 0.0) -> SurvivingMean:
  """The mean curve of the reference code (stop at zero test error).

  ``mean[t] = Σ_{r alive at t} curve[r, t] / #{r alive at t}``, a run being
  alive at entry ``t`` while ``t < stop_epochs[r] · steps_per_epoch``.
  """
  cut = stopped_curves(curve, test_error, steps_per_epoch=steps_per_epoch,
                       target=target)
  alive = ~np.isnan(cut)
  survivors = alive.sum(axis=0)
  total = np.where(alive, cut, 0.0).sum(axis=0)
  mean = np.full(cut.shape[1], np.nan)
  np.divide(total, survivors, out=mean, where=survivors > 0)
  return SurvivingMean(mean, survivors,
                       stop_epochs(test_error, target=target))


_ERROR_FNS: dict[Any, Any] = {}


def error_rate_fn(model):
  """Jitted ``(params, x, y) -> mean(argmax(model(x)) != y)`` (cached)."""
  if model not in _ERROR_FNS:
    def error(params, x, y):
      logits = model.apply({"params": params}, x)
      return jnp.mean(jnp.argmax(logits, -1) != y)
    _ERROR_FNS[model] = jax.jit(error)
  return _ERROR_FNS[model]


class StopAtTestError(Hook):
  """Ends the run at the end of the first epoch whose test error ≤ ``target``.

  The reference code's ``wanted_testerror`` (0 in every spiral experiment):
  the hook evaluates the classification error of the current model on
  ``(x_test, y_test)`` after every ``every``-th epoch (jitted, one
  compilation per architecture) and sets ``run.stop = True``.

  Args:
    x_test, y_test: test inputs and integer labels.
    target: stop when the error (a fraction) is ``<= target``.
    every: evaluate after every this many epochs.

  Attributes:
    errors: ``{epoch: test error}`` of every evaluation.
    stopped_at: the epoch count at which it stopped the run (or None).
  """

  def __init__(self, x_test: np.ndarray, y_test: np.ndarray, *,
               target: float = 0.0, every: int = 1):
    if every < 1:
      raise ValueError(f"every must be >= 1, got {every}")
    self.x_test, self.y_test = jnp.asarray(x_test), jnp.asarray(y_test)
    self.target, self.every = float(target), int(every)
    self.errors: dict[int, float] = {}
    self.stopped_at: int | None = None

  def on_epoch_end(self, run: RunView) -> None:
    if run.epoch % self.every:
      return
    err = float(error_rate_fn(run.model)(run.state.params, self.x_test,
                                         self.y_test))
    self.errors[run.epoch] = err
    if err <= self.target:
      self.stopped_at = run.epoch
      run.stop = True
      run.log["stopped_at_test_error"] = err

  def state_dict(self) -> dict[str, Any]:
    return {"errors": {str(k): v for k, v in self.errors.items()},
            "stopped_at": self.stopped_at}

  def load_state_dict(self, state: dict[str, Any], run: RunView) -> None:
    del run
    self.errors = {int(k): float(v) for k, v in state["errors"].items()}
    self.stopped_at = state["stopped_at"]


__all__ = ["StopAtTestError", "SurvivingMean", "stop_epochs",
           "stopped_curves", "surviving_mean", "error_rate_fn"]
