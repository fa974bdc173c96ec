"""The SensLI hook on the engine loop, and the batched driver's equivalence."""

import jax
import numpy as np
import optax
import pytest

from nnopt import growth, losses
from nnopt.data import load_dataset
from nnopt.growth.batched import run_batched
from nnopt.models import FNN, ResNet
from nnopt.engine.trainer import Trainer

CE = losses.softmax_cross_entropy


@pytest.fixture(scope="module")
def spiral():
  return load_dataset("spiral", seed=0)


def _engine(model, data, seed, epochs, batch, hook, lr=0.2, optimizer=None):
  trainer = Trainer(model, CE, optimizer or optax.sgd(lr), data,
                    batch_size=batch, num_epochs=epochs, seed=seed,
                    hooks=[hook], progress=False)
  run = trainer.fit()
  return trainer, run


@pytest.mark.parametrize("batch,kind", [(45, "fnn"), (None, "resnet")])
def test_batched_driver_equals_engine_with_hook(spiral, batch, kind):
  model = (FNN((4, 4, 2), init_scheme="pytorch") if kind == "fnn" else
           ResNet(3, 1, 2, init_scheme="pytorch"))
  epochs, at = (4, 2) if batch else (12, 6)
  seeds = [3, 4]
  batched = run_batched(model, CE, spiral, seeds=seeds, learning_rate=0.2,
                        num_epochs=epochs, batch_size=batch, insert_at=[at],
                        lr_factor=0.5)
  for r, seed in enumerate(seeds):
    hook = growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[at],
                         mode="epoch", batch_size=batch or 450, seed=seed,
                         optimizer_fn=optax.sgd, learning_rate=0.2,
                         lr_factor=0.5)
    trainer, run = _engine(model, spiral, seed, epochs, batch, hook)
    engine_loss = np.array([h["train_loss"] for h in trainer.history])
    np.testing.assert_allclose(engine_loss, batched.train_loss[r], rtol=2e-4,
                               atol=1e-6)
    assert hook.attempts[0]["chosen"] == batched.attempts[r][0]["chosen"]
    for name, merit in hook.attempts[0]["merits"].items():
      assert merit == pytest.approx(batched.attempts[r][0]["merits"][name],
                                    rel=1e-3)
    assert run.model == batched.models[r]
    # one compilation per architecture: baseline + grown network
    assert trainer.num_compilations == 2
    assert hook.learning_rate == pytest.approx(0.1)


def test_hook_threshold_rejection_is_logged_and_changes_nothing(spiral):
  model = FNN((5, 2), init_scheme="pytorch")
  hook = growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[3],
                       threshold=1e6)
  trainer, run = _engine(model, spiral, 0, 6, None, hook)
  assert run.model == model and hook.attempts[0]["chosen"] == []
  record = [h for h in trainer.history if "sensli_reason" in h][0]
  assert record["step"] == 3 and "no insertion" in record["sensli_reason"]
  assert trainer.num_compilations == 1


def test_hook_graft_keeps_momentum_and_runs_on(spiral):
  model = FNN((5, 2), init_scheme="pytorch")
  opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  seen = {}

  class Spy(growth.SensLI):
    def on_epoch_end(self, run):
      before = jax.device_get(run.state.opt_state)
      super().on_epoch_end(run)
      if self.attempts and "after" not in seen:
        seen["before"], seen["after"] = before, jax.device_get(run.state.opt_state)

  hook = Spy(CE, spiral.x_train, spiral.y_train, at_epochs=[2],
             optimizer="graft", lr_factor=0.5)
  trainer, run = _engine(model, spiral, 0, 4, None, hook, optimizer=opt)
  before, after = seen["before"], seen["after"]
  np.testing.assert_array_equal(after.inner_state[0].trace["dense_0"]["kernel"],
                                before.inner_state[0].trace["dense_0"]["kernel"])
  assert float(after.hyperparams["learning_rate"]) == pytest.approx(0.05)
  assert len(run.model.widths) == 3 and np.isfinite(trainer.history[-1]["train_loss"])


def test_hook_built_from_config(spiral):
  from nnopt import config as config_lib
  cfg = config_lib.base_config()
  cfg.model.name = "fnn"
  cfg.model.options = dict(widths=(5, 2), init_scheme="pytorch")
  cfg.optimizer.learning_rate = 0.2
  cfg.train.batch_size = None
  cfg.train.num_epochs = 6
  cfg.hooks = [dict(name="sensli", options=dict(at_epochs=[3], lr_factor=0.8))]
  exp = config_lib.build(config_lib.resolve(cfg), dataset=spiral)
  run = exp.trainer(progress=False).fit()
  assert run.model.widths == (5, 5, 2)
  assert exp.hooks[0].learning_rate == pytest.approx(0.16)


def test_resume_after_insertion_replays_the_growth(spiral, tmp_path):
  model = FNN((5, 2), init_scheme="pytorch")

  def trainer(epochs, workdir):
    hook = growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[3])
    return Trainer(model, CE, optax.sgd(0.2, momentum=0.5), spiral,
                   batch_size=None, num_epochs=epochs, seed=1, hooks=[hook],
                   checkpoint_every=5, workdir=str(workdir), progress=False)

  full = trainer(8, tmp_path / "full")
  full_run = full.fit()
  first = trainer(5, tmp_path / "split")
  first.fit()
  resumed = trainer(8, tmp_path / "split")
  run = resumed.fit(resume=True)
  assert run.model == full_run.model and run.model.widths == (5, 5, 2)
  np.testing.assert_allclose(resumed.history[-1]["train_loss"],
                             full.history[-1]["train_loss"], rtol=1e-5)
