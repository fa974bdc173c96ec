"""The ch. 5 reproduction pipeline end to end on a tiny budget (exp3, digits)."""

import importlib.util
from pathlib import Path

from nnopt.data import load_dataset
from nnopt.reproduce import Claims

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "reproduce_frobenius.py"


def _module():
  spec = importlib.util.spec_from_file_location("reproduce_frobenius", _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_exp3_pipeline_writes_figures_and_checked_claims(tmp_path, monkeypatch):
  module = _module()
  exp3 = dict(module.EXPS["exp3"])
  exp3["quick"] = dict(exp3["quick"], epochs=4, sgd=(99, 100), pre=(66, 67))
  monkeypatch.setitem(module.EXPS, "exp3", exp3)
  setting = module.Setting("exp3", True, load_dataset("digits", flatten=True))
  assert setting.steps == 20 and setting.window == 5
  res = module.sweep(setting)
  assert res["sgd"]["losses"].shape == (2, 20)
  assert res["frobenius"]["diag"]["spectra"]["dense_0"][0].shape == (20, 64)
  claims = Claims("kreis")
  module.claims_exp3(claims, res, setting, tmp_path)
  assert {c.item for c in claims} == {"Fig 5.10", "Fig 5.11", "Fig 5.12"}
  assert all(c.status in ("PASS", "FAIL") for c in claims)
  assert (tmp_path / "fig5_10_exp3_loss.png").exists()


def test_full_size_without_mnist_is_not_run(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_data"))
  claims = _module().run(tmp_path, quick=False)
  assert len(claims) == 13
  assert all(c.status == "NOT RUN" and "MNIST" in c.reason for c in claims)
