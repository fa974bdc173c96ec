"""Noise-aware transforms and CABS inside nnopt.engine.trainer.Trainer: 8 simulated
devices equal 1 device; CABS compiles once per bucket."""

import functools

import jax
import numpy as np
import optax
import pytest

from nnopt import losses

from nnopt.engine import parallel
from nnopt.noise_aware.cabs import CABS, Competitor
from nnopt.noise_aware.cabs_rule import BatchRuleState, CABSError, cabs_next
from nnopt.data import load_dataset
from nnopt.models import FNN, VGG
from nnopt.stats.needs import Needs, required_needs
from nnopt.engine.trainer import Trainer
from nnopt import noise_aware as na
from nnopt.noise_aware.batch_variance import cabs_sgd

SPIRAL = load_dataset("spiral")

OPTIMIZERS = {
    "msgd": (na.msgd, 0.1, False), "sign_sgd": (na.sign_sgd, 0.01, False),
    "msign_sgd": (na.msign_sgd, 0.01, False), "svag": (na.svag, 0.1, False),
    "msvag": (na.msvag, 0.1, False), "adam_star": (na.adam_star, 0.01, False),
    "msvag_mb": (na.msvag_mb, 0.1, True),
    "l1_sign_gd": (na.l1_sign_gd, 1e-4, False),
    "block_normalized_gd": (na.block_normalized_gd, 0.01, False),
    "coordinate_descent": (na.coordinate_descent, 0.1, False),
    "diag_ef": (functools.partial(na.diag_ef, damping=1e-2, decay=0.9), 1e-3,
                True),
}


def _fit(factory, lr, stats, devices, steps=6):
  # no needs=...: the transforms that read layer statistics declare it
  opt = factory(lr)
  trainer = Trainer(FNN((16, 16, 2), activation="tanh"),
                    losses.softmax_cross_entropy, opt, SPIRAL,
                    batch_size=45, num_steps=steps, seed=1, progress=False,
                    mesh=parallel.data_mesh(devices))
  run = trainer.fit()
  assert required_needs(opt, run.state.params) == Needs(stats=stats)
  return trainer, run


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_eight_devices_equal_one_device(name):
  factory, lr, stats = OPTIMIZERS[name]
  t1, r1 = _fit(factory, lr, stats, jax.devices()[:1])
  t8, r8 = _fit(factory, lr, stats, jax.devices())
  np.testing.assert_allclose([h["train_loss"] for h in t8.history],
                             [h["train_loss"] for h in t1.history], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(r8.state.opt_state),
                  jax.tree.leaves(r1.state.opt_state)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4,
                               atol=1e-6)
    assert np.all(np.isfinite(np.asarray(a)))
    assert a.sharding.is_fully_replicated and a.sharding.mesh.devices.size == 8
  assert t8.num_compilations == 1
  # the loss went down: the method does optimize
  assert t8.history[-1]["train_loss"] < t8.history[0]["train_loss"] + 1e-3


def _cabs_trainer(devices, hooks, opt, steps=40):
  data = load_dataset("digits")
  model = VGG(stages=((4,),), fc=(16,), n_classes=10)
  n = len(devices)
  return Trainer(model, losses.softmax_cross_entropy, opt, data,
                 batch_size=16, num_steps=steps, seed=0, progress=False,
                 buckets=hooks[0].buckets(num_devices=n), hooks=hooks,
                 mesh=parallel.data_mesh(devices))


def test_cabs_grows_batch_compiles_per_bucket_and_matches_one_device():
  hook8 = CABS(0.3, m_min=16, m_max=512, c=50.0)  # c: grow within 40 steps
  t8 = _cabs_trainer(jax.devices(), [hook8], cabs_sgd(0.3))
  t8.fit()
  sizes = [h["cabs_batch_size"] for h in t8.history]
  buckets = hook8.buckets(num_devices=8)
  used = {min(b for b in buckets if b >= s) for s in sizes}
  assert t8.num_compilations == len(used) <= len(buckets)
  assert sizes[0] == 16 and max(sizes) > 16  # the batch grows
  seen = [h["examples_seen"] for h in t8.history]
  assert seen == list(np.cumsum(sizes))
  # replay Algorithm 1 on the recorded losses and traces: same sizes
  state = BatchRuleState(batch_size=16)
  for h in t8.history[:-1]:
    state = cabs_next(state, h["train_loss"], h["cabs_trace"], 0.3,
                      m_min=16, m_max=512, c=50.0)
    assert state.batch_size == h["cabs_next_batch_size"]
  hook1 = CABS(0.3, m_min=16, m_max=512, c=50.0)
  t1 = _cabs_trainer(jax.devices()[:1], [hook1], cabs_sgd(0.3))
  t1.fit()
  assert [h["cabs_batch_size"] for h in t1.history] == sizes
  np.testing.assert_allclose([h["cabs_trace"] for h in t8.history],
                             [h["cabs_trace"] for h in t1.history], rtol=1e-3)


def test_cabs_lag_one_decides_from_the_previous_step():
  """lag=1: step k+1's size comes from step k−1's loss and trace (the read
  overlaps with step k); the EMAs replay Algorithm 1 one step late."""
  hook = CABS(0.3, m_min=16, m_max=512, c=50.0, lag=1)
  t = _cabs_trainer(jax.devices()[:1], [hook], cabs_sgd(0.3), steps=24)
  t.fit()
  h = t.history
  assert "cabs_trace" not in h[0] and h[0]["cabs_next_batch_size"] == 16
  for prev, cur in zip(h, h[1:]):
    assert cur["cabs_loss"] == pytest.approx(prev["train_loss"], rel=1e-6)
    assert cur["cabs_batch_size"] == prev["cabs_next_batch_size"]
  state = BatchRuleState(batch_size=16)
  for rec in h[1:]:
    state = cabs_next(state, rec["cabs_loss"], rec["cabs_trace"], 0.3,
                      m_min=16, m_max=512, c=50.0)
    assert state.batch_size == rec["cabs_next_batch_size"]
  assert max(r["cabs_batch_size"] for r in h) > 16
  assert t.num_compilations <= len(hook.buckets(num_devices=1))
  with pytest.raises(CABSError, match="lag"):
    CABS(0.1, lag=2)


def test_competitor_runs_and_needs_recorded_variance():
  hook = Competitor(theta=1.0, m_min=16, m_max=256)
  t = _cabs_trainer(jax.devices(), [hook], cabs_sgd(0.1), steps=8)
  t.fit()
  assert all(16 <= h["competitor_batch_size"] <= 256 for h in t.history)
  bad = _cabs_trainer(jax.devices(), [CABS(0.1)], optax.sgd(0.1), steps=2)
  with pytest.raises(CABSError, match="track_batch_variance"):
    bad.fit()
  with pytest.raises(CABSError, match="m_min"):
    CABS(0.1, m_min=1)
