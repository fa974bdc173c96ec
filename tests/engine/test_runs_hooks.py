"""Hooks that switch architectures on the runs axis: MLSGD's level cycles.

Oracle: the same MLSGD run alone through :class:`nnopt.engine.trainer.Trainer`
(level epochs, rejections and final weights).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.data import Dataset
from nnopt.engine.runs import RunSpec, RunsTrainer, runs_mesh
from nnopt.engine.trainer import Trainer
from nnopt.losses import softmax_cross_entropy
from nnopt.multilevel import MLSGDHook, depth_transfer
from nnopt.models import init_params

N, B = 96, 32


class TinyResNet(nn.Module):
  """x_{j+1} = x_j + h tanh(x_j K_j): a depth hierarchy with stacked K_j."""

  layers: int
  h: float
  width: int = 4

  @nn.compact
  def __call__(self, x):
    x = jnp.tanh(nn.Dense(self.width, name="opening")(x))
    K = self.param("block", nn.initializers.normal(0.5),
                   (self.layers, self.width, self.width))
    for j in range(self.layers):
      x = x + self.h * jnp.tanh(x @ K[j])
    return nn.Dense(3, name="out")(x)


def test_mlsgd_cycles_per_run_equal_runs_alone():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 5)).astype(np.float32)
  y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(N, 3)), 1).astype(np.int32)
  ds = Dataset(x, y, x[:16], y[:16], "toy", 3)
  models = [TinyResNet(n, 1.0 / n) for n in (1, 2, 4)]
  p0 = init_params(models[-1], jax.random.key(7), x[:1])
  lrs = {0: 0.3, 1: 0.1}

  def hook(seed):
    return MLSGDHook(models, [depth_transfer()] * 2, (2, 1, 1), lr=lrs[seed],
                     loss=softmax_cross_entropy, dataset=ds, n_cycles=2,
                     variant="det", lam=1.0)

  kw = dict(batch_size=B, num_epochs=1000, params=p0, progress=False)
  trainer = RunsTrainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                        runs=[0, 1], hooks=lambda spec: [hook(spec.seed)],
                        mesh=runs_mesh(2, 1, jax.devices()[:2]), **kw)
  slots = trainer.fit()
  for slot in slots:
    alone_hook = hook(slot.spec.seed)
    alone = Trainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                    hooks=[alone_hook], seed=slot.spec.seed, model_state={},
                    mesh=jax.sharding.Mesh(np.asarray(jax.devices()[:1]),
                                           ("data",)), **kw)
    run = alone.fit()
    assert slot.step == run.step and slot.model == run.model
    assert [r.get("mlsgd_level") for r in slot.history] == [
        r.get("mlsgd_level") for r in alone.history]
    assert slot.hooks[0].level_epochs == alone_hook.level_epochs
    a, b = jax.device_get((slot.params, run.state.params))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
  # MLSGD builds each level's optimizer itself: its cycles run per run (one
  # program per level and run), as issue 13 allows ("per run or per group").
  assert trainer.num_compilations == len(models) * len(slots)
