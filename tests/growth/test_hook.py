"""The SensLI hook on the engine loop and on the engine's runs axis."""

import jax
import numpy as np
import optax
import pytest

from nnopt import growth, losses
from nnopt.data import load_dataset
from nnopt.models import FNN, ResNet
from nnopt.engine.runs import RunsTrainer
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
def test_hook_on_the_runs_axis_equals_the_engine_run_alone(spiral, batch, kind):
  """Oracle: Trainer with the same hook, one seed at a time (per-step loss,
  choices, merits, architecture, restarted learning rate)."""
  model = (FNN((4, 4, 2), init_scheme="pytorch") if kind == "fnn" else
           ResNet(3, 1, 2, init_scheme="pytorch"))
  epochs, at = (4, 2) if batch else (12, 6)
  opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.2)
  hooks = lambda spec: [growth.SensLI(
      CE, spiral.x_train, spiral.y_train, at_epochs=[at], mode="epoch",
      batch_size=batch or 450, seed=spec.seed, lr_factor=0.5)]
  runs = RunsTrainer(model, CE, opt, spiral, runs=[3, 4], batch_size=batch,
                     num_epochs=epochs, hooks=hooks, progress=False)
  for slot in runs.fit():
    hook = hooks(slot.spec)[0]
    trainer, run = _engine(model, spiral, slot.spec.seed, epochs, batch, hook,
                           optimizer=opt)
    np.testing.assert_allclose([h["train_loss"] for h in slot.history],
                               [h["train_loss"] for h in trainer.history],
                               rtol=2e-5, atol=1e-7)
    mine = slot.hooks[0].attempts[0]
    assert mine["chosen"] == hook.attempts[0]["chosen"] != []
    for name, merit in hook.attempts[0]["merits"].items():
      assert mine["merits"][name] == pytest.approx(merit, rel=1e-4)
    assert slot.model == run.model != model
    lr = slot.state.opt_state.hyperparams["learning_rate"]
    assert float(lr) == pytest.approx(0.1)


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


@pytest.mark.parametrize("mode", ["restart", "graft"])
def test_lr_factor_compounds_over_insertions(spiral, mode):
  """Two insertions at factor 0.5 leave a quarter of the initial rate, with
  a restarted or a grafted injected-hyperparameter state alike."""
  hook = growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[2, 4],
                       optimizer=mode, lr_factor=0.5, mode="full",
                       threshold=None)
  sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=0.2)
  trainer = Trainer(FNN((3, 2), init_scheme="pytorch"), CE, sgd, spiral,
                    batch_size=None, num_epochs=6, hooks=[hook],
                    progress=False)
  run = trainer.fit()
  assert sum(1 for a in hook.attempts if a["chosen"]) == 2
  lr = optax.tree_utils.tree_get(run.state.opt_state, "learning_rate")
  assert float(lr) == pytest.approx(0.05)
