"""Stopping at zero test error (reference code) and its surviving-runs mean."""

import warnings

import numpy as np
import optax
import pytest

from nnopt import growth, losses
from nnopt.data import load_dataset
from nnopt.engine.runs import RunsTrainer
from nnopt.engine.trainer import Trainer
from nnopt.models import FNN

CE = losses.softmax_cross_entropy


def _loop_oracle(curve, err, steps, target):
  """The reference's bookkeeping, written as its loops: append values until
  the epoch whose test error reaches the target, then nanmean."""
  runs, epochs = err.shape
  kept = []
  for r in range(runs):
    values = []
    for e in range(epochs):
      values.extend(curve[r, e * steps:(e + 1) * steps])
      if err[r, e] <= target:
        break
    kept.append(values + [np.nan] * (epochs * steps - len(values)))
  kept = np.array(kept, dtype=np.float64)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
    mean = np.nanmean(kept, axis=0)
  return kept, mean


@pytest.mark.parametrize("steps", [1, 3])
def test_surviving_mean_equals_the_reference_loops(steps):
  rng = np.random.default_rng(0)
  runs, epochs = 7, 9
  err = rng.choice([0.0, 0.02, 0.1], size=(runs, epochs), p=[0.1, 0.3, 0.6])
  err[0] = 0.1          # never stops
  err[1, 0] = 0.0       # stops after the first epoch
  curve = rng.normal(size=(runs, epochs * steps))
  kept, mean = _loop_oracle(curve, err, steps, 0.0)
  np.testing.assert_array_equal(
      growth.stopped_curves(curve, err, steps_per_epoch=steps), kept)
  res = growth.surviving_mean(curve, err, steps_per_epoch=steps)
  np.testing.assert_allclose(res.mean, mean, rtol=1e-12)
  np.testing.assert_array_equal(res.survivors, (~np.isnan(kept)).sum(0))
  assert res.stop_epochs[0] == epochs and res.stop_epochs[1] == 1
  # the surviving mean differs from the plain mean once a run has stopped
  assert not np.allclose(res.mean, curve.mean(0))


def test_no_survivor_gives_nan_and_shapes_are_checked():
  err = np.zeros((2, 3))
  res = growth.surviving_mean(np.ones((2, 3)), err)
  assert res.survivors.tolist() == [2, 0, 0]
  assert res.mean[0] == 1.0 and np.isnan(res.mean[1:]).all()
  with pytest.raises(ValueError, match="does not fit"):
    growth.stopped_curves(np.ones((2, 4)), err)
  with pytest.raises(ValueError, match="runs, epochs"):
    growth.stop_epochs(np.zeros(3))


@pytest.fixture(scope="module")
def spiral():
  return load_dataset("spiral", seed=0)


def test_hook_stops_the_engine_run_where_the_post_hoc_statistic_cuts(spiral):
  """Engine runs with the hook end exactly where :func:`stopped_curves` cuts
  the unstopped curves of the same runs on the runs axis (stopping affects
  no other run)."""
  model = FNN((8, 8, 2), init_scheme="pytorch")
  seeds, epochs, batch, target = [0, 1, 2], 30, 45, 0.3
  steps = 450 // batch
  slots = RunsTrainer(model, CE, optax.sgd(0.2), spiral, runs=seeds,
                      batch_size=batch, num_epochs=epochs, eval_every=steps,
                      progress=False).fit()
  train_loss = np.array([[h["train_loss"] for h in s.history] for s in slots])
  test_error = np.array([[1 - h["test_accuracy"] for h in s.history
                          if "test_accuracy" in h] for s in slots])
  cut = growth.stopped_curves(train_loss, test_error, steps_per_epoch=steps,
                              target=target)
  stops = growth.stop_epochs(test_error, target=target)
  assert (stops < epochs).any()  # the test needs a run that stops
  for r, seed in enumerate(seeds):
    hook = growth.StopAtTestError(spiral.x_test, spiral.y_test, target=target)
    trainer = Trainer(model, CE, optax.sgd(0.2), spiral, batch_size=batch,
                      num_epochs=epochs, seed=seed, hooks=[hook],
                      progress=False)
    run = trainer.fit()
    loss = np.array([h["train_loss"] for h in trainer.history])
    alive = cut[r][~np.isnan(cut[r])]
    np.testing.assert_allclose(loss, alive, rtol=2e-4, atol=1e-6)
    assert run.epoch == stops[r]
    reached = bool((test_error[r] <= target).any())
    assert hook.stopped_at == (stops[r] if reached else None)
    errs = np.array([hook.errors[e] for e in range(1, run.epoch + 1)])
    np.testing.assert_allclose(errs, test_error[r, :run.epoch], atol=1e-6)


def test_stopped_run_attempts_no_insertion(spiral):
  model = FNN((5, 2), init_scheme="pytorch")
  stop = growth.StopAtTestError(spiral.x_test, spiral.y_test, target=1.0)
  sensli = growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[1])
  trainer = Trainer(model, CE, optax.sgd(0.1), spiral, batch_size=None,
                    num_epochs=5, seed=0, hooks=[stop, sensli], progress=False)
  run = trainer.fit()
  assert run.epoch == 1 and stop.stopped_at == 1
  assert sensli.attempts == [] and run.model == model
