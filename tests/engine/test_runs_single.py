"""A group of one run on one device: the run's own step, unbatched.

With one row, :class:`~nnopt.engine.runs_step.GroupPrograms` compiles the
run's step between a squeeze and an expand instead of ``vmap`` over a row
(issue 13's single-run bench: the vmapped program cost ~15 % more on CPU).
Oracle: the same run alone through the engine's ``Trainer``.
"""

import jax
import numpy as np
import optax
import pytest

from nnopt import losses
from nnopt import preconditioning as pc
from nnopt.data import load_dataset
from nnopt.engine.runs import RunSpec, RunsTrainer, runs_mesh
from nnopt.engine.trainer import Trainer
from nnopt.models import FNN

CE = losses.softmax_cross_entropy
STEPS = 40

FACTORIES = {
    "adam": (lambda learning_rate: optax.adam(learning_rate), 1e-2),
    "frobenius_sgd": (lambda learning_rate: pc.frobenius_sgd(
        learning_rate, damping_x=0.1, damping_y=0.1), 0.02),
}


def rel_diff(a, b) -> float:
  a, b = jax.device_get((a, b))
  return max(float(np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-12))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_single_run_equals_the_engine_run(name):
  factory, lr = FACTORIES[name]
  data = load_dataset("digits", flatten=True)
  model = FNN(widths=(16, 10))
  kw = dict(batch_size=64, num_steps=STEPS, log_every=10, eval_every=20,
            progress=False)
  trainer = RunsTrainer(model, CE, factory, data,
                        runs=[RunSpec(3, {"learning_rate": lr})],
                        mesh=runs_mesh(1, 1, jax.devices()[:1]), **kw)
  slot, = trainer.fit()
  one = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))
  alone = Trainer(model, CE, factory(lr), data, seed=3, mesh=one, **kw)
  run = alone.fit()
  assert rel_diff(slot.params, run.state.params) <= 1e-5
  assert [r["step"] for r in slot.history] == [10, 20, 30, 40]
  for mine, theirs in zip(slot.history, alone.history):
    assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
  assert slot.history[-1]["test_accuracy"] == pytest.approx(
      alone.history[-1]["test_accuracy"], abs=1e-6)
