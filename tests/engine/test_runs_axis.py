"""The runs axis: every run of a vmapped program is the same run as alone.

Oracle: :class:`nnopt.engine.trainer.Trainer`, one run at a time, with the
run's seed and hyperparameters (relative parameter difference <= 1e-5 after
50 steps). The 8-device cases live in test_runs_axis_devices.py.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import growth, losses
from nnopt import multilevel as ml
from nnopt import noise_aware as na
from nnopt import preconditioning as pc
from nnopt.data import load_dataset
from nnopt.engine.runs import RunSpec, RunsTrainer, runs_mesh, with_injected
from nnopt.engine.runs_io import spread
from nnopt.engine.signals import Interrupted
from nnopt.engine.trainer import Trainer
from nnopt.hooks import Hook
from nnopt.models import FNN

CE = losses.softmax_cross_entropy
STEPS = 50


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits", flatten=True)


def rel_diff(a, b) -> float:
  a, b = jax.device_get((a, b))
  return max(float(np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-12))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _cgc(learning_rate, alpha_cgc):
  return ml.coarse_grid_correction_transform(
      optax.sgd(learning_rate), optax.sgd(0.02), ml.identity_transfer(),
      num_coarse_steps=3, every=2, alpha_cgc=alpha_cgc, lam=0.1)


# Settings where the run itself is reproducible: at lr 0.05 with damping 1e-2
# the preconditioned run amplifies round-off (the engine alone on 1 and on 8
# devices differs by 2e-3 after 50 steps), so no 1e-5 comparison can hold.
FACTORIES = {
    "sgd": (lambda learning_rate, momentum: optax.sgd(learning_rate,
                                                      momentum=momentum),
            [dict(learning_rate=0.1, momentum=0.9),
             dict(learning_rate=0.03, momentum=0.5)]),
    "adam": (lambda learning_rate, b1: optax.adam(learning_rate, b1=b1),
             [dict(learning_rate=1e-2, b1=0.9), dict(learning_rate=3e-3, b1=0.8)]),
    "msvag": (lambda learning_rate, beta: na.msvag(learning_rate, beta=beta),
              [dict(learning_rate=0.1, beta=0.9), dict(learning_rate=0.3, beta=0.5)]),
    "frobenius_sgd": (lambda learning_rate, damping: pc.frobenius_sgd(
        learning_rate, damping_x=damping, damping_y=damping),
                      [dict(learning_rate=0.02, damping=1e-1),
                       dict(learning_rate=0.01, damping=3e-1)]),
    "kfac": (lambda learning_rate, damping: pc.kfac(learning_rate,
                                                    damping=damping),
             [dict(learning_rate=0.05, damping=1e-2),
              dict(learning_rate=0.02, damping=1e-1)]),
    "cgc": (_cgc, [dict(learning_rate=0.05, alpha_cgc=0.8),
                   dict(learning_rate=0.1, alpha_cgc=0.5)]),
}


def _alone(model, digits, optimizer, seed, **kw):
  trainer = Trainer(model, CE, optimizer, digits, batch_size=64,
                    num_steps=STEPS, seed=seed, progress=False, **kw)
  run = trainer.fit()
  return trainer, run


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_each_run_equals_the_run_alone(digits, name):
  factory, hparams = FACTORIES[name]
  model = FNN(widths=(16, 10))
  specs = [RunSpec(seed=s, hparams=h) for s, h in zip((0, 1), hparams)]
  specs.append(RunSpec(seed=2, hparams=hparams[0]))
  trainer = RunsTrainer(model, CE, factory, digits, runs=specs,
                        batch_size=64, num_steps=STEPS, log_every=25,
                        eval_every=50, progress=False)
  slots = trainer.fit()
  assert trainer.num_compilations == 1
  for slot in slots:
    alone, run = _alone(model, digits, factory(**slot.spec.hparams),
                        slot.spec.seed, log_every=25, eval_every=50)
    assert rel_diff(slot.params, run.state.params) <= 1e-5, slot.label
    assert [r["step"] for r in slot.history] == [25, 50]
    for mine, theirs in zip(slot.history, alone.history):
      assert mine["train_loss"] == pytest.approx(theirs["train_loss"],
                                                 rel=1e-5)
    assert slot.history[-1]["test_accuracy"] == pytest.approx(
        alone.history[-1]["test_accuracy"], abs=1e-6)


def test_injected_hyperparameters_of_a_transformation(digits):
  model = FNN(widths=(16, 10))
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  specs = [RunSpec(seed=0, hparams={"learning_rate": lr})
           for lr in (0.1, 0.01)]
  slots = RunsTrainer(model, CE, base, digits, runs=specs, batch_size=64,
                      num_steps=STEPS, log_every=STEPS,
                      progress=False).fit()
  for slot in slots:
    lr = slot.spec.hparams["learning_rate"]
    _, run = _alone(model, digits, optax.sgd(lr, momentum=0.9), 0)
    assert rel_diff(slot.params, run.state.params) <= 1e-5
  assert rel_diff(slots[0].params, slots[1].params) > 1e-2


def test_hyperparameter_not_injected_is_a_clear_error(digits):
  model = FNN(widths=(16, 10))
  with pytest.raises(ValueError, match="'b1' is not injected"):
    RunsTrainer(model, CE, optax.adam(1e-3), digits,
                runs=[RunSpec(0, {"b1": 0.9})], batch_size=64, num_steps=2,
                progress=False).fit()


def test_factory_that_branches_on_a_hyperparameter_is_a_clear_error(digits):
  def factory(learning_rate):
    return optax.sgd(learning_rate if learning_rate < 0.5 else 0.5)
  with pytest.raises(ValueError, match="branches on them in Python"):
    RunsTrainer(FNN(widths=(16, 10)), CE, factory, digits,
                runs=[RunSpec(0, {"learning_rate": 0.1})], batch_size=64,
                num_steps=2, progress=False).fit()


def _sensli_hooks(spiral, lr):
  def hooks(spec):
    return [growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[6],
                          mode="epoch", batch_size=450, seed=spec.seed,
                          lr_factor=0.5)]
  return hooks


def test_sensli_runs_regroup_by_architecture_and_equal_runs_alone():
  spiral = load_dataset("spiral", seed=0)
  model = growth_model = FNN((3, 3, 2), init_scheme="pytorch")
  del growth_model
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=0.2)
  seeds = [0, 1, 2, 3]
  trainer = RunsTrainer(model, CE, base, spiral, runs=seeds, batch_size=None,
                        num_epochs=12, hooks=_sensli_hooks(spiral, 0.2),
                        log_every=1, eval_every=1, progress=False)
  slots = trainer.fit()
  architectures = {slot.model for slot in slots}
  assert trainer.num_compilations == 1 + len(architectures)
  for slot in slots:
    hook = _sensli_hooks(spiral, 0.2)(slot.spec)[0]
    alone = Trainer(model, CE, base, spiral, batch_size=None, num_epochs=12,
                    seed=slot.spec.seed, hooks=[hook], eval_every=1,
                    progress=False)
    run = alone.fit()
    assert hook.attempts[0]["chosen"] == slot.hooks[0].attempts[0]["chosen"]
    assert hook.attempts[0]["chosen"], "the test needs an insertion"
    assert run.model == slot.model
    assert rel_diff(slot.params, run.state.params) <= 1e-5
    np.testing.assert_allclose([r["test_loss"] for r in slot.history],
                               [r["test_loss"] for r in alone.history],
                               rtol=1e-5)


class _BatchSizeByRun(Hook):
  """Sets a run-dependent batch size after the first epoch (as CABS does)."""

  def __init__(self, size):
    self.size = size

  def on_epoch_end(self, run):
    if run.epoch == 1:
      run.sampler.set_batch_size(self.size)


def test_per_run_batch_sizes_step_together_padded(digits):
  model = FNN(widths=(16, 10))
  sizes = {0: 32, 1: 100}
  hooks = lambda spec: [_BatchSizeByRun(sizes[spec.seed])]
  trainer = RunsTrainer(model, CE, optax.sgd(0.05), digits, runs=[0, 1],
                        batch_size=64, num_epochs=2, hooks=hooks,
                        log_every=10, progress=False)
  slots = trainer.fit()
  for slot in slots:
    alone = Trainer(model, CE, optax.sgd(0.05), digits, batch_size=64,
                    num_epochs=2, seed=slot.spec.seed,
                    hooks=[_BatchSizeByRun(sizes[slot.spec.seed])],
                    log_every=10, progress=False)
    run = alone.fit()
    assert slot.step == run.step
    assert rel_diff(slot.params, run.state.params) <= 1e-5


def test_a_diverging_run_stops_and_the_others_go_on(digits):
  model = FNN(widths=(16, 10))
  specs = [RunSpec(0, {"learning_rate": 0.05}),
           RunSpec(0, {"learning_rate": 1e30})]
  slots = RunsTrainer(model, CE, lambda learning_rate: optax.sgd(
      learning_rate), digits, runs=specs, batch_size=64, num_steps=40,
                      log_every=5, progress=False).fit()
  assert slots[0].step == 40 and "nonfinite_step" not in slots[0].history[-1]
  assert slots[1].step < 40
  assert slots[1].history[-1]["nonfinite_step"] >= 0


def test_metrics_checkpoints_and_resume_per_run(digits, tmp_path):
  model = FNN(widths=(16, 10))
  factory = lambda learning_rate: optax.adam(learning_rate)
  specs = [RunSpec(s, {"learning_rate": lr}, name=f"s{s}")
           for s, lr in ((0, 1e-2), (1, 3e-3))]
  kw = dict(runs=specs, batch_size=64, log_every=5, checkpoint_every=10,
            progress=False)
  first = RunsTrainer(model, CE, factory, digits, num_steps=20,
                      workdir=str(tmp_path / "a"), **kw)
  first.fit()
  resumed = RunsTrainer(model, CE, factory, digits, num_steps=40,
                        workdir=str(tmp_path / "a"), **kw).fit(resume=True)
  straight = RunsTrainer(model, CE, factory, digits, num_steps=40,
                         workdir=str(tmp_path / "b"), **kw).fit()
  for a, b in zip(resumed, straight):
    assert rel_diff(a.params, b.params) <= 1e-6
  listing = json.loads((tmp_path / "a" / "runs.json").read_text())
  assert [r["name"] for r in listing] == ["s0", "s1"]
  lines = (tmp_path / "a" / "runs" / "s1" / "metrics.jsonl").read_text()
  steps = [json.loads(l)["step"] for l in lines.splitlines()]
  assert steps == list(range(5, 45, 5))
  assert os.path.isdir(tmp_path / "a" / "runs" / "s0" / "checkpoints")
  other = [RunSpec(0, {"learning_rate": 0.5}, name="s0"), specs[1]]
  with pytest.raises(ValueError, match="not this sweep's"):
    RunsTrainer(model, CE, factory, digits, num_steps=40,
                workdir=str(tmp_path / "a"),
                **{**kw, "runs": other}).fit(resume=True)


def test_spread_is_mean_and_sample_std_over_runs():
  histories = [[{"step": 1, "x": 1.0}, {"step": 2, "x": 4.0}],
               [{"step": 1, "x": 3.0}, {"step": 2, "x": float("nan")}],
               [{"step": 1, "x": 5.0}]]
  rows = spread(histories, "x")
  assert rows[0] == pytest.approx({"step": 1, "mean": 3.0, "std": 2.0,
                                   "n": 3, "min": 1.0, "max": 5.0})
  assert rows[1]["n"] == 1 and rows[1]["std"] == 0.0


def test_with_injected_sets_the_value_and_keeps_the_update():
  opt = with_injected(optax.inject_hyperparams(optax.sgd)(learning_rate=1.0),
                      {"learning_rate": 0.25})
  params = {"w": jnp.ones(3)}
  updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.25 * np.ones(3))


@pytest.mark.parametrize("shape", [(1, 1), (8, 1), (4, 2), (2, 4)])
def test_same_runs_on_one_device_and_on_runs_by_data_meshes(digits, shape):
  assert len(jax.devices()) >= 8, "conftest sets 8 simulated CPU devices"
  runs, data = shape
  mesh = runs_mesh(runs, data, devices=jax.devices()[:runs * data])
  factory, hparams = FACTORIES["msvag"]
  specs = [RunSpec(seed=s, hparams=h) for s, h in zip((0, 1, 2),
                                                      hparams + hparams[:1])]
  slots = RunsTrainer(FNN(widths=(16, 10)), CE, factory, digits, runs=specs,
                      batch_size=64, num_steps=STEPS, log_every=STEPS,
                      mesh=mesh, progress=False).fit()
  one = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
  for slot in slots:
    _, run = _alone(FNN(widths=(16, 10)), digits,
                    factory(**slot.spec.hparams), slot.spec.seed, mesh=one)
    assert rel_diff(slot.params, run.state.params) <= 1e-5


def test_cabs_batch_sizes_per_run_match_runs_alone():
  data = load_dataset("digits")
  from nnopt.models import VGG  # pylint: disable=g-import-not-at-top
  model = VGG(stages=((4,),), fc=(16,), n_classes=10)
  lrs = {0: 0.3, 1: 0.1}
  one = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))

  def hook(seed):
    return na.CABS(lrs[seed], m_min=16, m_max=512, c=50.0)

  buckets = hook(0).buckets(num_devices=1)
  kw = dict(batch_size=16, num_steps=30, buckets=buckets, progress=False)
  slots = RunsTrainer(model, CE, lambda learning_rate: na.cabs_sgd(
      learning_rate), data, runs=[RunSpec(s, {"learning_rate": lrs[s]})
                                  for s in (0, 1)],
                      hooks=lambda spec: [hook(spec.seed)],
                      mesh=runs_mesh(1, 1, jax.devices()[:1]), **kw).fit()
  for slot in slots:
    alone = Trainer(model, CE, na.cabs_sgd(lrs[slot.spec.seed]), data,
                    seed=slot.spec.seed, hooks=[hook(slot.spec.seed)],
                    mesh=one, **kw)
    run = alone.fit()
    mine = [r["cabs_batch_size"] for r in slot.history]
    assert mine == [r["cabs_batch_size"] for r in alone.history]
    assert max(mine) > 16, "the test needs a growing batch"
    assert rel_diff(slot.params, run.state.params) <= 1e-5
  sizes = [[r["cabs_batch_size"] for r in s.history] for s in slots]
  assert sizes[0] != sizes[1], "runs with their own batch sizes"


def test_sigint_saves_every_run_and_resume_finishes_them(digits, tmp_path,
                                                          signal_at):
  model = FNN(widths=(16, 10))
  specs = [RunSpec(s, {"learning_rate": 1e-2}) for s in (0, 1)]
  factory = lambda learning_rate: optax.adam(learning_rate)
  kw = dict(runs=specs, batch_size=64, num_steps=30, log_every=5,
            checkpoint_every=10, workdir=str(tmp_path / "w"), progress=False)
  fired = signal_at(13)
  with pytest.raises(Interrupted) as e:
    RunsTrainer(model, CE, factory, digits,
                hooks=lambda spec: [fired] if spec.seed == 0 else [],
                **kw).fit()
  assert e.value.checkpoint_step == 13
  resumed = RunsTrainer(model, CE, factory, digits, **kw).fit(resume=True)
  straight = RunsTrainer(model, CE, factory, digits,
                         **{**kw, "workdir": str(tmp_path / "s")}).fit()
  for a, b in zip(resumed, straight):
    assert a.step == 30
    assert rel_diff(a.params, b.params) <= 1e-6
