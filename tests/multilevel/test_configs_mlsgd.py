"""The MLSGD configs validate, and the quick depth config runs on digits."""

import pathlib

import numpy as np
import pytest

from nnopt import config as C

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["mlsgd_depth", "mlsgd_resolution"])
def test_configs_validate(name):
  _, config = C.load_config_file(REPO / "configs" / f"{name}.py")
  for variant in C.variant_names(config):
    for quick in (False, True):
      C.validate(C.resolve(config, variant, quick=quick))


def test_quick_depth_config_runs_the_hook(numpy_params):
  """--quick keeps the variant's schedule (T = (7, 5, 3)) on digits with 3
  batches per epoch; a --set override of the variant's hook cuts it to one
  cycle (as the reproduction's smoke run does)."""
  _, config = C.load_config_file(REPO / "configs" / "mlsgd_depth.py")
  hooks = [dict(name="mlsgd", options=dict(hierarchy="depth",
                                           epochs=(7, 5, 3), n_cycles=1,
                                           lr=0.05))]
  experiment = C.build(C.resolve(config, "mlsgd_const", quick=True, overrides=[
      f"variants.mlsgd_const.hooks={hooks!r}"]))
  hook = experiment.hooks[0]
  params = numpy_params(experiment.model, experiment.dataset.x_train[:1])
  trainer = experiment.trainer(progress=False, params=params, model_state={})
  run = trainer.fit()
  assert [lvl for _, lvl in hook.switches] == [0, 1, 2]
  assert hook.level_epochs == [7, 5, 3] and run.step == 15 * 3
  assert run.model == experiment.model
  assert np.isfinite(trainer.history[-1]["test_loss"])


@pytest.mark.parametrize("name", ["mlsgd_depth", "mlsgd_resolution"])
def test_quick_keeps_each_variants_hook(name):
  """--quick changes data and network only: SGD variants stay hook-free and
  each MLSGD variant keeps its own variant and step size."""
  _, config = C.load_config_file(REPO / "configs" / f"{name}.py")
  for variant in C.variant_names(config):
    full = C.resolve(config, variant)
    quick = C.resolve(config, variant, quick=True)
    assert quick["hooks"] == full["hooks"]
    assert bool(full["hooks"]) == variant.startswith(("mlsgd", "gc"))
    assert quick["dataset"]["name"] == "digits"
