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
  _, config = C.load_config_file(REPO / "configs" / "mlsgd_depth.py")
  experiment = C.build(C.resolve(config, "mlsgd_const", quick=True))
  hook = experiment.hooks[0]
  params = numpy_params(experiment.model, experiment.dataset.x_train[:1])
  trainer = experiment.trainer(progress=False, params=params, model_state={})
  run = trainer.fit()
  assert [lvl for _, lvl in hook.switches] == [0, 1, 2]
  assert run.model == experiment.model
  assert np.isfinite(trainer.history[-1]["test_loss"])
