"""Hooks that switch architectures on the runs axis: MLSGD's level cycles.

Oracle: the same MLSGD run alone through :class:`nnopt.engine.trainer.Trainer`
(level epochs, rejections and final weights); batching is read from the
groups each run stepped in and from the number of compiled step programs.
"""

import copy

import jax
import numpy as np
import optax

from nnopt.data import Dataset
from nnopt.engine.runs import RunsTrainer, runs_mesh
from nnopt.engine.trainer import Trainer
from nnopt.hooks import Hook
from nnopt.losses import softmax_cross_entropy
from nnopt.multilevel import MLSGDHook, depth_transfer
from nnopt.models import init_params

N, B = 96, 32


class GroupProbe(Hook):
  """Records the group (its id while it is alive) of every step of a run."""

  def __init__(self):
    self.groups = {}

  def on_step(self, run, metrics):
    self.groups[run.step] = id(run.group)


def _setting(tiny_resnet):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 5)).astype(np.float32)
  y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(N, 3)), 1).astype(np.int32)
  ds = Dataset(x, y, x[:16], y[:16], "toy", 3)
  models = [tiny_resnet(n, 1.0 / n) for n in (1, 2, 4)]
  p0 = init_params(models[-1], jax.random.key(7), x[:1])
  return ds, models, p0


def _runs_and_alone(models, ds, p0, make_hook, seeds):
  """Trains ``seeds`` on a 2-device runs axis, each with ``make_hook(seed)``
  and a probe, and checks every run against the same run alone."""
  kw = dict(batch_size=B, num_epochs=1000, params=p0, progress=False)
  trainer = RunsTrainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                        runs=list(seeds),
                        hooks=lambda spec: [make_hook(spec.seed), GroupProbe()],
                        mesh=runs_mesh(2, 1, jax.devices()[:2]), **kw)
  slots = trainer.fit()
  for slot in slots:
    alone_hook = make_hook(slot.spec.seed)
    alone = Trainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                    hooks=[alone_hook], seed=slot.spec.seed, model_state={},
                    mesh=jax.sharding.Mesh(np.asarray(jax.devices()[:1]),
                                           ("data",)), **kw)
    run = alone.fit()
    assert slot.step == run.step and slot.model == run.model
    assert [r.get("mlsgd_level") for r in slot.history] == [
        r.get("mlsgd_level") for r in alone.history]
    hook = slot.hooks[0]
    assert hook.level_epochs == alone_hook.level_epochs
    assert hook.switches == alone_hook.switches
    assert hook.rejected == alone_hook.rejected
    a, b = jax.device_get((slot.params, run.state.params))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
  return trainer, slots


def test_mlsgd_runs_of_one_schedule_batch_per_level(tiny_resnet):
  """Two seeds with their own step sizes (per run, in the optimizer state)
  and the same V-cycles step as one group per level: one compilation per
  level, not per level and run."""
  ds, models, p0 = _setting(tiny_resnet)
  lrs = {0: 0.3, 1: 0.1}

  def hook(seed):  # built apart for every run: shared through level_optimizer
    return MLSGDHook(models, [depth_transfer()] * 2, (2, 1, 1), lr=lrs[seed],
                     loss=softmax_cross_entropy, dataset=ds, n_cycles=2,
                     variant="det", lam=1.0)

  trainer, slots = _runs_and_alone(models, ds, p0, hook, (0, 1))
  probes = [s.hooks[1].groups for s in slots]
  assert probes[0].keys() == probes[1].keys()
  assert all(probes[0][k] == probes[1][k] for k in probes[0])
  assert trainer.num_compilations == len(models)


def test_mlsgd_runs_that_diverge_split_and_rejoin(tiny_resnet):
  """Runs whose schedules differ (T_l per run, the per-step angle guard on
  shared transfers) leave and rejoin each other's groups, and each still
  equals its run alone."""
  ds, models, p0 = _setting(tiny_resnet)
  models, transfers = models[1:], [depth_transfer()]
  epochs = {0: (2, 1), 1: (1, 2)}

  def hook(seed):
    return MLSGDHook(models, transfers, epochs[seed], lr=0.2,
                     loss=softmax_cross_entropy, dataset=ds, n_cycles=2,
                     angle_check="per_step", mu=0.0)

  _, slots = _runs_and_alone(models, ds, p0, hook, (0, 1))
  probes = [s.hooks[1].groups for s in slots]
  shared = [k in probes[1] and probes[0][k] == probes[1][k] for k in probes[0]]
  assert any(shared) and not all(shared)
  # the guard's optimizers are shared per level: transfers are the same objects
  assert all(a is b for a, b in zip(slots[0].hooks[0].optimizers,
                                    slots[1].hooks[0].optimizers))


def test_mlsgd_hooks_share_level_optimizers_not_their_state(tiny_resnet):
  ds, models, _ = _setting(tiny_resnet)
  make = lambda reg=None: MLSGDHook(models, [depth_transfer()] * 2, (1, 1, 1),
                                    lr=0.1, regularizer=reg)
  a, b = make(), make()
  assert all(x is y for x, y in zip(a.optimizers, b.optimizers))
  ridge = lambda p: 0.0
  assert not any(x is y for x, y in zip(a.optimizers, make(ridge).optimizers))
  c = copy.deepcopy(a)
  assert c.optimizers == a.optimizers and c.models is a.models
  c.level_epochs[0] += 1
  c.switches.append((0, 0))
  assert a.level_epochs == [0, 0, 0] and a.switches == []
