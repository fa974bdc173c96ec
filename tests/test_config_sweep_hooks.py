"""A config's ``sweep`` over hook options (``hooks.<i or name>.options.<o>``).

Oracle: each run of the sweep equals the same config trained alone through
the engine's single-run ``Trainer`` with that hook option set in the config
(``--set hooks=[...]``): parameters to 1e-5 relative, same batch sizes.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from nnopt import cli
from nnopt import config as C
from nnopt.config.sweep import grid_points, run_specs

CABS = dict(learning_rate=0.3, m_min=16, m_max=128, c=20.0)
DIGITS = dict(dataset=dict(name="digits", options=dict(flatten=True)),
              model=dict(name="fnn", options=dict(widths=(16, 10))),
              optimizer=dict(name="cabs_sgd", learning_rate=0.3),
              hooks=[dict(name="cabs", options=CABS)],
              train=dict(batch_size=16, num_steps=12, num_epochs=None,
                         log_every=4))


def _spec(tree=DIGITS, overrides=(), **sweep):
  return C.resolve({**tree, "sweep": sweep}, "default", overrides=overrides)


def test_hook_values_go_to_hooks_not_to_the_optimizer():
  spec = _spec(seeds=2, grid={"optimizer.learning_rate": [0.3, 0.1],
                              "hooks.cabs.options.learning_rate": [0.3, 3.0],
                              "hooks.0.options.m_max": [64, 128]})
  runs = run_specs(spec)
  assert len(runs) == 2 * 2 * 2 * 2
  assert all(set(r.hparams) == {"learning_rate"} for r in runs)
  assert runs[0].name == "s0_learning_rate0.3_hooks0_learning_rate0.3_m_max64"
  assert runs[0].hook_options == ((0, "learning_rate", 0.3), (0, "m_max", 64))
  assert isinstance(runs[0].hook_options[1][2], int)  # m_max's default is
  points = grid_points(runs)
  assert len(points) == 8 and all(len(rows) == 2 for rows in points.values())
  # the hook name alone where it does not clash
  spec = _spec(grid={"hooks.cabs.options.learning_rate": [0.01]})
  assert [r.name for r in run_specs(spec)] == ["s0_learning_rate0.01"]


@pytest.mark.parametrize("grid,fragment", [
    ({"hooks.cab.options.c": [1.0]}, "no hook 'cab' (did you mean 'cabs'?)"),
    ({"hooks.2.options.c": [1.0]}, "no hooks[2]"),
    ({"hooks.cabs.options.cc": [1.0]}, "no option 'cc' (did you mean 'c'?)"),
    ({"hooks.cabs.options.model": [1.0]}, "no option 'model'"),
    ({"hooks.cabs.c": [1.0]}, "hooks.<index or name>.options.<option>"),
    ({"hooks.cabs.options.c": [float("inf")]}, "finite numbers"),
    ({"hooks.cabs.options.c": [True]}, "finite numbers"),
    ({"hooks.cabs.options.m_min": [16.5]}, "takes integers"),
    ({"hooks.cabs.options.c": [1.0], "hooks.0.options.c": [2.0]},
     "both set hooks[0].options.c"),
])
def test_bad_hook_grid_keys_are_one_line_config_errors(grid, fragment):
  with pytest.raises(C.ConfigError) as e:
    _spec(grid=grid)
  assert fragment in str(e.value) and "\n" not in str(e.value)


def test_option_that_takes_no_number_and_ambiguous_hook_names():
  tree = {**DIGITS, "hooks": [dict(name="cabs", options=CABS)] * 2}
  with pytest.raises(C.ConfigError, match="2 hooks 'cabs'; name one by its "
                     r"index, e\.g\. 'hooks\.0\.options\.c'"):
    _spec(tree, grid={"hooks.cabs.options.c": [1.0]})
  runs = run_specs(_spec(tree, grid={"hooks.0.options.c": [1.0],
                                     "hooks.1.options.c": [2.0]}))
  assert runs[0].name == "s0_hooks0_c1_hooks1_c2"
  mlsgd = {**DIGITS, "optimizer": dict(name="sgd", learning_rate=0.1),
           "hooks": [dict(name="mlsgd", options={})]}
  with pytest.raises(C.ConfigError, match="'variant' .* does not take a "
                     "number"):
    _spec(mlsgd, grid={"hooks.mlsgd.options.variant": [1.0]})
  assert run_specs(_spec(mlsgd, grid={"hooks.mlsgd.options.lr": [0.01]}))[
      0].name == "s0_lr0.01"


def test_each_run_equals_the_config_alone_with_that_hook_value():
  values = (0.3, 3.0)
  spec = _spec(grid={"hooks.cabs.options.learning_rate": list(values)})
  trainer = C.build(spec).runs_trainer(progress=False)
  slots = trainer.fit()
  sizes = {}
  for slot, value in zip(slots, values):
    hooks = [dict(name="cabs", options={**CABS, "learning_rate": value})]
    alone = C.build(_spec(overrides=[f"hooks={hooks!r}"])).trainer(
        progress=False)
    result = alone.fit()
    sizes[value] = [r["cabs_batch_size"] for r in slot.history]
    assert sizes[value] == [r["cabs_batch_size"] for r in alone.history]
    a, b = jax.device_get((slot.params, result.state.params))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  assert sizes[0.3] != sizes[3.0]  # the hook value took effect per run


def test_cli_summarizes_each_hook_value_as_a_setting(tmp_path, capsys):
  cfg = tmp_path / "sweep_hooks_cfg.py"
  tree = dict(DIGITS, sweep=dict(
      seeds=2, grid={"hooks.cabs.options.learning_rate": [0.3, 3.0]}))
  cfg.write_text(f"def get_config():\n  return {tree!r}\n")
  work = tmp_path / "work"
  code = cli.main(["run", str(cfg), "--workdir", str(work), "--set",
                   "train.num_steps=4"])
  out, err = capsys.readouterr()
  assert code == 0, err
  assert "default: 4 runs, 2 setting(s)" in out
  lines = [l for l in out.splitlines() if l.startswith("  default ")]
  assert len(lines) == 2
  assert lines[0].startswith("  default learning_rate=0.3: train_loss")
  assert lines[1].startswith("  default learning_rate=3: train_loss")
  assert all("(n=2)" in l for l in lines)
  summary = json.loads((work / "default" / "summary.json").read_text())
  assert summary["default learning_rate=3"]["runs"] == [
      "s0_learning_rate3", "s1_learning_rate3"]
  assert summary["default learning_rate=3"]["hparams"] == {
      "learning_rate": 3.0}
  assert (work / "default" / "runs" / "s1_learning_rate0.3" /
          "metrics.jsonl").exists()


def test_hooks_that_rebuild_the_optimizer_get_the_runs_rate_and_options():
  """A learning-rate sweep with ``reduce_on_plateau``: each run's hook starts
  from that run's rate, and its rebuilt optimizer has the run's options
  (oracle: optax.sgd with that rate and momentum, one update)."""
  import optax  # pylint: disable=g-import-not-at-top
  tree = dict(DIGITS, optimizer=dict(name="sgd", learning_rate=0.3,
                                     options=dict(momentum=0.0)),
              hooks=[dict(name="reduce_on_plateau", options=dict(factor=0.5))],
              train=dict(batch_size=16, num_steps=4, num_epochs=None))
  spec = _spec(tree, grid={"optimizer.learning_rate": [0.3, 0.05],
                           "optimizer.options.momentum": [0.0, 0.9]})
  trainer = C.build(spec).runs_trainer(progress=False)
  g = {"w": np.array([1.0, -2.0], np.float32)}
  for run in trainer.specs:
    hook, = trainer.hooks(run)
    assert hook.learning_rate == pytest.approx(run.hparams["learning_rate"])
    second = []
    for tx in (hook.optimizer_fn(0.2),
               optax.sgd(0.2, momentum=run.hparams["momentum"] or None)):
      _, state = tx.update(g, tx.init(g))
      second.append(tx.update(g, state)[0]["w"])  # momentum shows here
    np.testing.assert_allclose(second[0], second[1], rtol=1e-6)
