"""The engine derives what to capture from the optimizer's declared needs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import losses
from nnopt.data import load_dataset
from nnopt.engine.step import NeedsError
from nnopt.engine.trainer import Trainer
from nnopt.hooks import Hook
from nnopt.models import FNN
from nnopt.stats.needs import (Needs, declare_needs, needs_marker,
                               required_needs)


def _reads_stats(seen):
  """Adds 0 × (a statistic) to the update: fails to trace without ``stats``
  and records which layers and sampled cotangents it was given."""

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None, *, stats=None, **extra):
    del params, extra
    seen["layers"] = sorted(stats)
    seen["sampled"] = {k: None if s.sampled_cotangents is None
                       else s.sampled_cotangents.shape for k, s in stats.items()}
    total = sum(jnp.sum(s.inputs) for s in stats.values())
    return jax.tree.map(lambda u: u + 0.0 * total, updates), state

  return optax.GradientTransformationExtraArgs(init, update)


def _trainer(optimizer, **kwargs):
  data = load_dataset("spiral")
  return Trainer(FNN((8, 2), activation="tanh"), losses.softmax_cross_entropy,
                 optimizer, data, batch_size=45, num_steps=5, progress=False,
                 **kwargs)


@pytest.mark.parametrize("wrap", ["plain", "chain", "inject", "multisteps",
                                  "if_finite"])
def test_required_needs_through_optax_wrappers(wrap):
  params = {"w": jnp.ones(3)}
  needs = Needs(fisher_samples=2, value_fn=True)

  def make(learning_rate):
    return declare_needs(optax.sgd(learning_rate), needs)

  opt = {"plain": lambda: make(0.1),
         "chain": lambda: optax.chain(optax.clip(1.0), make(0.1)),
         "inject": lambda: optax.inject_hyperparams(make)(learning_rate=0.1),
         "multisteps": lambda: optax.MultiSteps(make(0.1), 2),
         "if_finite": lambda: optax.apply_if_finite(make(0.1), 3)}[wrap]()
  assert required_needs(opt, params) == Needs(stats=True, fisher_samples=2,
                                              value_fn=True)
  assert required_needs(optax.sgd(0.1), params) == Needs()


def test_needs_merge_and_validation():
  a, b = Needs(stats=True), Needs(fisher_samples=3, batch=True)
  assert a.merge(b) == Needs(stats=True, fisher_samples=3, batch=True)
  assert Needs(fisher_samples=1).stats  # sampled cotangents live in stats
  with pytest.raises(ValueError, match="fisher_samples"):
    Needs(fisher_samples=-1)
  with pytest.raises(TypeError):
    needs_marker({"stats": True})


def test_trainer_captures_what_the_optimizer_declares():
  seen = {}
  declared = declare_needs(optax.chain(_reads_stats(seen), optax.sgd(0.1)),
                           Needs(fisher_samples=1))
  run = _trainer(optax.chain(optax.clip_by_global_norm(10.0), declared)).fit()
  assert seen["layers"] == ["dense_0", "dense_1"]
  assert seen["sampled"]["dense_1"] is not None  # one sampled target
  # The statistics do not change the update: same run as plain SGD.
  plain = _trainer(optax.chain(optax.clip_by_global_norm(10.0),
                               optax.sgd(0.1))).fit()
  for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(plain.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_undeclared_optimizer_gets_no_statistics():
  trainer = _trainer(optax.sgd(0.1))
  run = trainer._initial_run()  # pylint: disable=protected-access
  assert trainer.step_needs(run.model, run.optimizer, run.state.params) == Needs()


def test_explicit_needs_for_an_undeclared_transform():
  seen = {}
  _trainer(optax.chain(_reads_stats(seen), optax.sgd(0.1)),
           needs=Needs(stats=True)).fit()
  assert seen["layers"] == ["dense_0", "dense_1"]
  assert seen["sampled"] == {"dense_0": None, "dense_1": None}


class _Untagged(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x)


def test_unmet_need_is_one_error_when_the_run_is_built():
  data = load_dataset("spiral")
  opt = declare_needs(optax.sgd(0.1), Needs(stats=True))
  with pytest.raises(NeedsError, match="no nnopt Dense/Conv layers"):
    Trainer(_Untagged(), losses.softmax_cross_entropy, opt, data,
            batch_size=45, num_steps=5, progress=False)


class _SwapToStats(Hook):
  """Swaps in an optimizer that needs statistics at step 2."""

  def __init__(self, seen):
    self.seen = seen

  def on_step(self, run, metrics):
    if run.step == 2:
      run.replace(optimizer=declare_needs(
          optax.chain(_reads_stats(self.seen), optax.sgd(0.1)),
          Needs(stats=True)))


def test_needs_follow_an_optimizer_swapped_by_a_hook():
  seen = {}
  _trainer(optax.sgd(0.1), hooks=[_SwapToStats(seen)]).fit()
  assert seen["layers"] == ["dense_0", "dense_1"]
