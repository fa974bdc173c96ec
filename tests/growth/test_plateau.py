"""Exp1's ReduceLROnPlateau hook against PyTorch's rule written out by hand."""

import types

import jax
import numpy as np
import optax
import pytest

from nnopt import growth, losses
from nnopt.data import load_dataset
from nnopt.engine.trainer import Trainer
from nnopt.models import FNN, init_params


def _torch_rule(values, lr, factor, patience, threshold=1e-4):
  """torch.optim.lr_scheduler.ReduceLROnPlateau(mode='max', threshold_mode=
  'rel', cooldown=0), one step per value: the learning rate after each."""
  best, bad, out = -np.inf, 0, []
  for v in values:
    if v > best * (1 + threshold):
      best, bad = v, 0
    else:
      bad += 1
    if bad > patience:
      lr, bad = lr * factor, 0
    out.append(lr)
  return out


class _Run:
  def __init__(self, model, params, optimizer):
    self.model, self.optimizer = model, optimizer
    self.state = types.SimpleNamespace(params=params,
                                       opt_state=optimizer.init(params))
    self.log, self.stop, self.epoch = {}, False, 0

  def replace(self, *, model=None, optimizer=None, opt_state=None, **_):
    self.model = model or self.model
    self.optimizer = optimizer or self.optimizer
    if opt_state is not None:
      self.state.opt_state = opt_state


def test_plateau_follows_the_pytorch_rule_and_resets_on_insertion():
  rng = np.random.default_rng(0)
  values = np.concatenate([np.linspace(0.5, 0.8, 5), 0.8 - 0.01 * rng.random(30),
                           [0.9], 0.85 - 0.01 * rng.random(20)])
  feed = iter(values)
  model = FNN((3, 2))
  params = init_params(model, jax.random.key(0), np.zeros((1, 2), np.float32))
  run = _Run(model, params, optax.sgd(0.1, momentum=0.9))
  hook = growth.ReduceLROnPlateau(None, None, lambda lr: optax.sgd(lr, momentum=0.9),
                                  0.1, factor=0.5, patience=4,
                                  metric_fn=lambda m, p: next(feed))
  lrs = []
  for e, _ in enumerate(values, 1):
    run.epoch = e
    hook.on_epoch_end(run)
    lrs.append(hook.learning_rate)
  np.testing.assert_allclose(lrs, _torch_rule(values, 0.1, 0.5, 4))
  assert len(hook.reductions) >= 3
  # the rebuilt optimizer runs at the new rate
  g = jax.tree.map(np.ones_like, params)
  fresh = run.optimizer.init(params)
  step, _ = run.optimizer.update(g, fresh, params)
  np.testing.assert_allclose(step["dense_0"]["kernel"], -hook.learning_rate)
  # an insertion (a new model) resets best and counter, keeps the rate
  lr = hook.learning_rate
  run.model = FNN((3, 3, 2))
  hook.metric_fn = lambda m, p: 0.1
  hook.on_epoch_end(run)
  assert hook.best == 0.1 and hook.bad == 0 and hook.learning_rate == lr


def test_plateau_in_the_engine_halves_the_step(tmp_path):
  data = load_dataset("spiral", seed=0)
  model = FNN((5, 2), init_scheme="pytorch")
  hook = growth.ReduceLROnPlateau(data.x_test, data.y_test, optax.sgd, 0.5,
                                  patience=0, metric_fn=lambda m, p: 0.5)
  trainer = Trainer(model, losses.softmax_cross_entropy, optax.sgd(0.5), data,
                    batch_size=None, num_epochs=4, seed=0, hooks=[hook],
                    progress=False)
  run = trainer.fit()
  # epoch 1 sets best; epochs 2, 3, 4 are not better: halved each time
  assert hook.reductions == [(2, 0.25), (3, 0.125), (4, 0.0625)]
  # oracle: full-batch GD with the rates 0.5, 0.5, 0.25, 0.125
  ce = losses.softmax_cross_entropy
  grad = jax.jit(jax.grad(lambda p: ce(model.apply({"params": p}, data.x_train),
                                       data.y_train)))
  p = init_params(model, jax.random.key(0), data.x_train[:1])
  for lr in (0.5, 0.5, 0.25, 0.125):
    p = jax.tree.map(lambda a, g: a - lr * g, p, grad(p))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               jax.device_get(run.state.params), p)
  with pytest.raises(ValueError, match="factor"):
    growth.ReduceLROnPlateau(None, None, optax.sgd, 0.1, factor=1.5)
