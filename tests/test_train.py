"""The engine: data parallel = single device, resume = uninterrupted,
non-finite stop, determinism, hooks and compilation counts."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import losses

from nnopt.engine import parallel
from nnopt.data import load_dataset
from nnopt.models import FNN, VGG
from nnopt.engine.trainer import Hook, NonFiniteLossError, Trainer

SPIRAL = load_dataset("spiral")


def _trainer(mesh=None, **kwargs):
  defaults = dict(batch_size=45, num_steps=10, seed=3, progress=False,
                  mesh=mesh)
  defaults.update(kwargs)
  return Trainer(FNN((16, 16, 2), activation="tanh"),
                 losses.softmax_cross_entropy,
                 kwargs.pop("optimizer", optax.sgd(0.1, momentum=0.9)),
                 SPIRAL, **{k: v for k, v in defaults.items()
                            if k != "optimizer"})


def _assert_close_trees(a, b, rtol):
  """Relative to each layer's scale for parameter dicts: a layer's kernel
  and bias are computed together (the preconditioner stacks the bias under
  the kernel), so a bias near zero carries the round-off of its layer, not
  of its own size; per leaf for other trees."""
  groups = ([(a[k], b[k]) for k in b] if isinstance(b, dict) else
            [(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])
  for sub_a, sub_b in groups:
    ys = [np.asarray(y) for y in jax.tree.leaves(sub_b)]
    scale = max([float(np.max(np.abs(y))) for y in ys if y.size] + [1e-12])
    for x, y in zip(jax.tree.leaves(sub_a), ys):
      assert float(np.max(np.abs(np.asarray(x) - y), initial=0.0)) <= \
          rtol * scale


def test_eight_devices_match_one_device():
  assert jax.device_count() == 8
  # 45 does not divide by 8: the batch is padded to 48 with zero weights.
  one = _trainer(parallel.data_mesh(jax.devices()[:1]))
  eight = _trainer(parallel.data_mesh())
  run1, run8 = one.fit(), eight.fit()
  losses1 = [r["train_loss"] for r in one.history]
  losses8 = [r["train_loss"] for r in eight.history]
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
  _assert_close_trees(run8.params, run1.params, 1e-5)
  sharding = run8.state.params["dense_0"]["kernel"].sharding
  assert sharding.mesh.devices.size == 8 and sharding.is_fully_replicated


def test_conv_model_eight_devices_match_one_device():
  data = load_dataset("digits")
  model = VGG(stages=((4,), (8,)), fc=(16,), n_classes=10)
  make = lambda mesh: Trainer(model, losses.softmax_cross_entropy,
                              optax.adam(1e-2), data, batch_size=32,
                              num_steps=5, mesh=mesh, progress=False)
  one = make(parallel.data_mesh(jax.devices()[:1]))
  eight = make(parallel.data_mesh())
  run1, run8 = one.fit(), eight.fit()
  np.testing.assert_allclose([r["train_loss"] for r in eight.history],
                             [r["train_loss"] for r in one.history], rtol=1e-5)
  _assert_close_trees(run8.params, run1.params, 1e-5)


def test_same_seed_same_run_and_history_fields(tmp_path):
  a = _trainer(workdir=str(tmp_path / "a"), eval_every=5).fit()
  b = _trainer().fit()
  _assert_close_trees(a.params, b.params, 0.0)
  records = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
  assert [r["step"] for r in records] == list(range(1, 11))
  assert records[4]["examples_seen"] == 5 * 45
  assert "test_accuracy" in records[4] and "test_accuracy" not in records[3]
  assert records[-1]["epoch"] == 1  # 10 steps of 45 = one epoch of 450


class _Crash(Hook):
  def __init__(self, at):
    self.at = at

  def on_step(self, run, metrics):
    if run.step == self.at:
      raise KeyboardInterrupt


def test_resume_equals_uninterrupted(tmp_path):
  full = _trainer(num_steps=23, optimizer=optax.adam(1e-2)).fit()
  work = str(tmp_path / "run")
  with pytest.raises(KeyboardInterrupt):
    _trainer(num_steps=23, optimizer=optax.adam(1e-2), workdir=work,
             checkpoint_every=5, hooks=[_Crash(13)]).fit()
  resumed_trainer = _trainer(num_steps=23, optimizer=optax.adam(1e-2),
                             workdir=work, checkpoint_every=5)
  resumed = resumed_trainer.fit(resume=True)
  _assert_close_trees(resumed.params, full.params, 0.0)
  _assert_close_trees(resumed.state.opt_state, full.state.opt_state, 0.0)
  steps = [json.loads(l)["step"] for l in open(os.path.join(work, "metrics.jsonl"))]
  assert steps == list(range(1, 24))


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  work = str(tmp_path / "run")
  # Updates turn NaN at the 6th update: the loss of step 6 is the first bad one.
  poison = optax.scale_by_schedule(lambda n: jnp.where(n >= 5, jnp.nan, 1.0))
  trainer = _trainer(num_steps=200, optimizer=optax.chain(optax.sgd(0.1), poison),
                     workdir=work, checkpoint_every=2, log_every=4)
  with pytest.raises(NonFiniteLossError, match=r"not finite at step 6;") as err:
    trainer.fit()
  from nnopt.engine.checkpoint import Checkpointer
  ckpt = Checkpointer(os.path.join(work, "checkpoints"))
  last = ckpt.latest_step()
  assert last == 4 and err.value.step == 6
  assert "last good checkpoint (step 4) is kept" in str(err.value)
  restored = ckpt.restore_state(trainer_state_target(trainer))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.params))


def trainer_state_target(trainer):
  return trainer._initial_run().state


def test_resume_refusals_and_batch_size(tmp_path):
  from nnopt.engine import ResumeError
  with pytest.raises(ValueError, match="batch_size 500 exceeds the 450"):
    _trainer(batch_size=500)
  with pytest.raises(ResumeError, match="checkpoint_every is not set"):
    _trainer().fit(resume=True)
  warnings = []
  work = str(tmp_path / "run")
  trainer = _trainer(num_steps=4, workdir=work, checkpoint_every=2,
                     warn=warnings.append)
  assert trainer.resume_step() is None
  trainer.fit(resume=True)  # nothing to resume: from step 0, with a warning
  assert len(warnings) == 1 and "starting from step 0" in warnings[0]
  assert trainer.resume_step() == 4  # the last step is checkpointed too
  with pytest.raises(ResumeError, match="at step 4, beyond num_steps 3"):
    _trainer(num_steps=3, workdir=work, checkpoint_every=2).resume_step()


class _GrowBatch(Hook):
  def on_epoch_end(self, run):
    run.sampler.set_batch_size(min(2 * run.sampler.batch_size, 64))
    run.log["grown_to"] = run.sampler.batch_size


def test_dynamic_batch_compiles_once_per_bucket():
  trainer = _trainer(batch_size=8, num_steps=None, num_epochs=6,
                     buckets=(16, 32, 64),
                     hooks=[_GrowBatch()], log_every=1000)
  trainer.fit()
  assert trainer.num_compilations == 3  # buckets 16, 32, 64
  record = trainer.history[-1]
  # Epochs at batch 8, 16, 32, 64, 64, 64 (drop remainder): steps and examples.
  assert record["epoch"] == 6 and record["batch_size"] == 64
  assert record["step"] == 450 // 8 + 450 // 16 + 450 // 32 + 3 * (450 // 64)
  assert record["examples_seen"] == 56 * 8 + 28 * 16 + 14 * 32 + 3 * 7 * 64


class _SwapOptimizer(Hook):
  def on_step(self, run, metrics):
    if run.step == 3:
      run.replace(optimizer=optax.adam(1e-3))


def test_hook_replaces_optimizer():
  trainer = _trainer(num_steps=6, hooks=[_SwapOptimizer()])
  run = trainer.fit()
  assert isinstance(run.state.opt_state[0], optax.ScaleByAdamState)
  assert int(run.state.opt_state[0].count) == 3


QUICKSTART_VARIANTS = ["sgd", "adam", "msvag", "frobenius", "fixed", "sensli"]


@pytest.mark.parametrize("variant", QUICKSTART_VARIANTS)
def test_quickstart_config_same_on_one_and_eight_devices(variant):
  from nnopt.config import build, load_config_file, resolve, variant_names
  _, config = load_config_file(os.path.join(os.path.dirname(__file__), os.pardir,
                                         "configs", "quickstart.py"))
  assert variant_names(config) == QUICKSTART_VARIANTS
  # SensLI inserts its layer after epoch 6 of the 12 (full-batch) steps.
  overrides = (["hooks=[{'name': 'sensli', 'options': {'at_epochs': [6]}}]"]
               if variant == "sensli" else [])
  spec = resolve(config, variant, overrides=overrides)
  runs = []
  for mesh in (parallel.data_mesh(jax.devices()[:1]), parallel.data_mesh()):
    # A fresh build per run: an experiment's hooks (SensLI's record of its
    # insertions) belong to one run.
    trainer = build(spec).trainer(progress=False, mesh=mesh, num_steps=12,
                                  num_epochs=None, eval_every=12, log_every=3)
    runs.append((trainer.fit(), trainer.history))
  (run1, hist1), (run8, hist8) = runs
  np.testing.assert_allclose([r["train_loss"] for r in hist8],
                             [r["train_loss"] for r in hist1], rtol=1e-5)
  assert hist8[-1]["test_accuracy"] == pytest.approx(hist1[-1]["test_accuracy"])
  # The preconditioner solves with damped factors (condition up to ~1e3):
  # the 8-device all-reduce's summation order moves its float32 round-off
  # from ~1e-7 to ~1e-5 of the weights (the padded examples, 3 of 48, would
  # move them by percents).
  _assert_close_trees(run8.params, run1.params,
                      1e-4 if variant == "frobenius" else 1e-5)
  if variant == "sensli":  # the grown 2-5-5-2 network on both meshes
    assert len(run1.params) == len(run8.params) == 3
