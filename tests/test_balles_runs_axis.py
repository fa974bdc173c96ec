"""The Balles and Fashion-MNIST reproductions' seeds on the engine's runs axis.

Oracle: the same run trained alone through ``Experiment.trainer`` (records'
train loss to 1e-5 relative, the same steps and record keys), on the configs'
quick settings (digits). An interrupted group resumes from its checkpoints
(counted steps) and ends with the records of the uninterrupted group.
"""

from __future__ import annotations

import json

import pytest

from experiments import balles_tier_b_runs as TB
from experiments import fmnist_runs as fr
from experiments import kreis_fmnist_runs as KR
from experiments import reproduce_balles_p1 as P1
from experiments import run_groups as G
from nnopt import config as C
from nnopt.engine.runs import RunsTrainer
from nnopt.engine.signals import Interrupted
from nnopt.hooks import Hook


def _same_run(group_records, alone_records, keys=("train_loss",)):
  assert [r["step"] for r in group_records] == [r["step"]
                                                for r in alone_records]
  for mine, theirs in zip(group_records, alone_records):
    assert set(mine) == set(theirs), mine["step"]
    for key in (k for k in keys if k in theirs):
      assert mine[key] == pytest.approx(theirs[key], rel=1e-5), (
          mine["step"], key)
    if "test_accuracy" in theirs:
      assert mine["test_accuracy"] == pytest.approx(theirs["test_accuracy"],
                                                    abs=1e-6)


def _read(path):
  with path.open() as f:
    return [json.loads(line) for line in f if line.strip()]


# -- P1 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p1_group(tmp_path_factory):
  runs_dir = tmp_path_factory.mktemp("p1")
  names = P1.train_runs(runs_dir, methods=("msvag",), seeds=(0, 1),
                        quick=True, progress=False, group_size=None)
  return runs_dir, names


def test_p1_seeds_of_a_method_train_as_one_group_equal_to_alone(p1_group):
  runs_dir, names = p1_group
  assert names == ["msvag_s0", "msvag_s1"]
  assert sorted(p.name for p in runs_dir.iterdir()) == names  # no partial/
  meta = json.loads((runs_dir / "msvag_s1" / "run.json").read_text())
  assert meta["group"] == names and meta["seed"] == 1 and meta["quick"]
  _, config = C.load_config_file(P1.CONFIG)
  alone = G.train_alone(C.resolve(config, "msvag", quick=True,
                                  overrides=["train.seed=1"]))
  _same_run(_read(runs_dir / "msvag_s1" / "metrics.jsonl"), alone.history)
  runs, skipped = P1.read_runs(runs_dir, P1.QUICK_STEPS)
  assert sorted(runs["msvag"]) == [0, 1] and not skipped
  # The seeds differ (own initialization and data order).
  assert runs["msvag"][0][0]["train_loss"] != runs["msvag"][1][0]["train_loss"]


def test_conv_nets_group_one_run_per_program_on_a_cpu_only(monkeypatch):
  assert G.conv_group_size(3) == 3 and G.conv_group_size(None) is None
  monkeypatch.setattr(G.jax, "default_backend", lambda: "cpu")
  assert G.conv_group_size() == G.CPU_CONV_GROUP == 1
  assert G.chunks(["a", "b", "c"], G.conv_group_size()) == [["a"], ["b"],
                                                             ["c"]]
  monkeypatch.setattr(G.jax, "default_backend", lambda: "gpu")
  assert G.conv_group_size("auto") is None


class _CountSteps(Hook):
  steps = 0

  def on_step(self, run, metrics):
    type(self).steps += 1


def _trainer_with(extra):
  class Patched(RunsTrainer):
    def __init__(self, *args, hooks, **kwargs):
      super().__init__(*args, hooks=lambda spec: [*hooks(spec), *extra(spec)],
                       **kwargs)
  return Patched


def test_p1_interrupted_group_resumes_per_run(p1_group, tmp_path,
                                              monkeypatch, signal_at):
  straight, _ = p1_group
  # SIGINT at step 100 (a log step: the running loss means restart there).
  monkeypatch.setattr(G, "RunsTrainer", _trainer_with(
      lambda spec: [signal_at(100)] if spec.name == "msvag_s0" else []))
  with pytest.raises(Interrupted):
    P1.train_runs(tmp_path, methods=("msvag",), seeds=(0, 1), quick=True,
                  progress=False, group_size=None)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["partial"]
  for name in ("msvag_s0", "msvag_s1"):
    assert (tmp_path / "partial" / "msvag" / "runs" / name
            / "checkpoints").is_dir()
  monkeypatch.setattr(G, "RunsTrainer", _trainer_with(
      lambda spec: [_CountSteps()]))
  _CountSteps.steps = 0
  assert P1.train_runs(tmp_path, methods=("msvag",), seeds=(0, 1),
                       quick=True, progress=False,
                       group_size=None) == ["msvag_s0", "msvag_s1"]
  assert _CountSteps.steps == 2 * (P1.QUICK_STEPS - 100)  # resumed at 100
  assert not (tmp_path / "partial").exists()
  for name in ("msvag_s0", "msvag_s1"):
    records = _read(tmp_path / name / "metrics.jsonl")
    expected = _read(straight / name / "metrics.jsonl")
    _same_run(records, expected)


# -- Tier B -----------------------------------------------------------------------


def test_tier_b_alphas_and_seeds_of_cabs_are_one_group_equal_to_alone(
    tmp_path):
  extra = ["train.num_steps=30"]
  alphas = (0.1, 0.03)
  got = TB.ensure_runs(tmp_path, "balles_cabs", "mnist_cabs", alphas, (0, 1),
                       quick=True, extra=extra)
  assert set(got) == {(a, s) for a in alphas for s in (0, 1)}
  out = tmp_path / "balles_cabs" / TB.run_name("mnist_cabs", 0.03, 1)
  meta = json.loads((out / "run.json").read_text())
  assert meta["alpha"] == 0.03 and meta["seed"] == 1 and len(meta["group"]) == 4
  assert TB.read_run(out) == got[(0.03, 1)]
  assert not (tmp_path / "balles_cabs" / "partial").exists()
  config = TB.load_config("balles_cabs")
  for alpha, seed in ((0.03, 1), (0.1, 0)):
    alone = TB.fit(config, "mnist_cabs", True, [
        f"train.seed={seed}", *TB.lr_overrides("cabs", alpha), *extra])
    _same_run(got[(alpha, seed)], alone.history)
    assert [r["cabs_batch_size"] for r in got[(alpha, seed)]] == [
        r["cabs_batch_size"] for r in alone.history]
  finals = {a: got[(a, 0)][-1]["train_loss"] for a in alphas}
  assert finals[0.1] != pytest.approx(finals[0.03], rel=1e-3), "own α"
  # On disk now: read, not trained again.
  assert TB.ensure_run(tmp_path, "balles_cabs", "mnist_cabs", 0.1, 0,
                       quick=True, extra=extra) == got[(0.1, 0)]


def test_a_group_refuses_runs_that_differ_in_more_than_seed_and_alpha():
  config = TB.load_config("balles_p2_cifar10")
  a = C.resolve(config, "msgd", quick=True)
  b = C.resolve(config, "msgd", quick=True, overrides=["train.batch_size=32"])
  with pytest.raises(ValueError, match="differ in"):
    G.check_members([G.Member("a", a), G.Member("b", b)])
  c = C.resolve(config, "msgd", quick=True,
                overrides=["optimizer.learning_rate=0.5", "train.seed=3"])
  assert G.check_members([G.Member("a", a), G.Member("c", c)])
  assert not G.check_members([G.Member("a", a)])


# -- Fashion-MNIST siblings (Kreis Exp3 quick) -------------------------------------


def test_kreis_seeds_as_one_group_write_what_train_run_writes(tmp_path):
  alone = KR.train("exp3", "sgd", 1, tmp_path / "alone", quick=True)
  metas = KR.train_seeds("exp3", "sgd", (0, 1), tmp_path / "group",
                         quick=True)
  name = KR.run_name("exp3", "sgd", 1)
  assert set(metas) == {KR.run_name("exp3", "sgd", s) for s in (0, 1)}
  records, meta = fr.read_run(tmp_path / "group" / name)
  assert meta == metas[name]
  assert set(meta) == set(alone) | {"group"}
  for key in ("config", "variant", "seed", "dataset", "learning_rate",
              "steps", "diverged", "resumed"):
    assert meta[key] == alone[key], key
  assert meta["ms_per_step"] > 0
  alone_records, _ = fr.read_run(tmp_path / "alone" / name)
  _same_run(records, alone_records, keys=("train_loss", "test_loss"))
  assert not (tmp_path / "group" / "partial").exists()
  times = fr.wall_times(tmp_path / "group")["exp3_sgd"]
  assert times == [meta["wall_seconds"] / 2] * 2  # the group's, shared
