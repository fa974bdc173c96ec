"""A config's ``sweep``: seeds × grid as one runs axis, through build and
``nnopt run``."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest

from nnopt import cli
from nnopt import config as C
from nnopt.config.sweep import grid_values, run_specs
from nnopt.engine.trainer import Trainer

DIGITS = dict(dataset=dict(name="digits", options=dict(flatten=True)),
              model=dict(name="fnn", options=dict(widths=(16, 10))),
              optimizer=dict(name="sgd", learning_rate=0.1,
                             options=dict(momentum=0.9)),
              train=dict(batch_size=64, num_steps=20, num_epochs=None,
                         log_every=10))


def _spec(**sweep):
  return C.resolve({**DIGITS, "sweep": sweep}, "default")


def test_runs_are_seeds_times_the_grid_product():
  spec = _spec(seeds=2, grid={"optimizer.learning_rate": [0.1, 0.01],
                              "optimizer.options.momentum": {
                                  "linspace": [0.0, 0.9, 3]}})
  runs = run_specs(spec)
  assert len(runs) == 2 * 2 * 3
  assert {r.seed for r in runs} == {0, 1}
  assert runs[0].name == "s0_learning_rate0.1_momentum0"
  assert {(r.hparams["learning_rate"], r.hparams["momentum"]) for r in runs} \
      == {(lr, m) for lr in (0.1, 0.01) for m in (0.0, 0.45, 0.9)}


def test_logspace_is_numpys():
  np.testing.assert_allclose(
      grid_values("k", {"logspace": [0, -5, 30]}), np.logspace(0, -5, 30))


@pytest.mark.parametrize("sweep,fragment", [
    (dict(grid={"model.options.widths": [1, 2]}), "not an optimizer"),
    (dict(grid={"optimizer.options.momentun": [0.1]}), "did you mean"),
    (dict(grid={"optimizer.learning_rate": []}), "non-empty list"),
    (dict(grid={"optimizer.learning_rate": {"logspace": [0, 1]}}),
     "[start, stop, num]"),
    (dict(seeds=0), "at least 1"),
    (dict(seeds=[1, 1]), "repeats"),
])
def test_bad_sweeps_are_config_errors(sweep, fragment):
  with pytest.raises(C.ConfigError) as e:
    _spec(**sweep)
  assert fragment in str(e.value)


def test_learning_rate_sweep_needs_a_constant_rate():
  tree = {**DIGITS, "optimizer": dict(
      name="sgd", learning_rate=dict(schedule="constant_schedule", value=0.1)),
          "sweep": dict(grid={"optimizer.learning_rate": [0.1]})}
  with pytest.raises(C.ConfigError, match="constant learning rate"):
    C.resolve(tree, "default")


def test_built_sweep_runs_equal_single_runs():
  spec = _spec(seeds=[0, 3], grid={"optimizer.learning_rate": [0.1, 0.02]})
  experiment = C.build(spec)
  assert experiment.is_sweep
  trainer = experiment.runs_trainer(progress=False)
  slots = trainer.fit()
  assert trainer.num_compilations == 1
  for slot in slots:
    lr = slot.spec.hparams["learning_rate"]
    alone = Trainer(experiment.model, experiment.loss,
                    optax.sgd(lr, momentum=0.9), experiment.dataset,
                    batch_size=64, num_steps=20, seed=slot.spec.seed,
                    progress=False).fit()
    a, b = jax.device_get((slot.params, alone.state.params))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_cli_runs_a_sweep_and_resumes_it(tmp_path, capsys):
  cfg = tmp_path / "sweep_cfg.py"
  cfg.write_text(
      "def get_config():\n"
      f"  return {dict(DIGITS, sweep=dict(seeds=2, grid={'optimizer.learning_rate': [0.1, 0.02]}))!r}\n")
  work = tmp_path / "work"
  code = cli.main(["run", str(cfg), "--workdir", str(work), "--set",
                   "train.checkpoint_every=10"])
  out, err = capsys.readouterr()
  assert code == 0, err
  assert "default: 4 runs, 2 setting(s)" in out
  assert "default learning_rate=0.1: train_loss" in out and "(n=2)" in out
  summary = json.loads((work / "default" / "summary.json").read_text())
  assert summary["default learning_rate=0.02"]["train_loss"][-1]["n"] == 2
  assert (work / "default" / "runs.png").exists()
  assert (work / "curves.png").exists()
  code = cli.main(["run", str(cfg), "--workdir", str(work), "--set",
                   "train.checkpoint_every=10", "--set", "train.num_steps=30",
                   "--resume"])
  out, err = capsys.readouterr()
  assert code == 0, err
  records = [json.loads(l) for l in (work / "default" / "runs" /
                                     "s1_learning_rate0.02" /
                                     "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [10, 20, 30]
  code = cli.main(["run", str(cfg), "--workdir", str(work), "--set",
                   "train.checkpoint_every=10"])
  out, err = capsys.readouterr()
  assert code == 2 and "earlier sweep" in err
