"""The P1 step-size grid reproduction (App. B.1.2): grid points, reading,
verdicts on constructed runs, and grid runs equal to the same runs alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import reproduce_balles_p1_grid as PG
from experiments import run_groups as G
from nnopt import config as C
from nnopt import reproduce as R

WINNER_ACC = 0.91


def _records(max_acc, last=6000):
  records = []
  for step in range(50, last + 1, 50):
    r = {"step": step, "train_loss": 0.3}
    if step % 250 == 0:
      # Peaks at max_acc at step 4,000 and then falls off a little.
      r["test_accuracy"] = max_acc - 1e-5 * abs(step - 4000)
    records.append(r)
  return records


def _write(d, records, meta=None):
  d.mkdir(parents=True)
  (d / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records))
  (d / "run.json").write_text(json.dumps(meta or {}))


def test_grid_points_are_the_thesis_grid_neighbours():
  # spec-noise-aware.md §4.7, App. B.1.2 (winners starred there).
  assert PG.grid_points("msgd") == [0.3, 0.06]
  assert PG.grid_points("adam") == [0.003, 6e-4]
  assert PG.grid_points("msign_sgd") == [6e-4, 1e-4]
  assert PG.grid_points("msvag") == [0.6, 0.1]
  full = PG.grid_points("msgd", "full")
  assert len(full) == 9 and 0.1 not in full and full[0] == 3
  with pytest.raises(ValueError, match="scope"):
    PG.grid_points("msgd", "wide")


def _winners(seeds=(0, 1, 2)):
  return {m: {s: _records(WINNER_ACC - 0.002 * s) for s in seeds}
          for m in PG.METHODS}


def test_claims_pass_fail_and_not_run(tmp_path):
  rng = np.random.default_rng(0)
  for m in PG.METHODS:
    for lr in PG.grid_points(m):
      for s in (0, 1, 2):
        # M-SGD's larger neighbour is 2 pp better than the winner on every
        # seed; all other neighbours are 1 pp worse.
        delta = 0.02 if (m, lr) == ("msgd", 0.3) else -0.01
        if (m, lr, s) == ("adam", 6e-4, 2):
          continue  # two seeds still give an interval
        _write(tmp_path / PG.run_name(m, lr, s), _records(
            WINNER_ACC - 0.002 * s + delta + 1e-4 * rng.normal()))
  _write(tmp_path / PG.run_name("msvag", 3, 0), _records(0.5, last=700),
         {"diverged": "loss is nan at step 750"})
  _write(tmp_path / PG.run_name("msvag", 1, 0), _records(0.9, last=3000))
  grid, skipped = PG.read_grid(tmp_path)
  assert set(grid["msvag"]) == {0.6, 0.1, 3.0}
  assert "incomplete" in skipped["msvag_lr1_s0"]
  claims = R.Claims("balles", dataset="fashion_mnist")
  PG.state_claims(claims, _winners(), grid, problem="P1", seeds=(0, 1, 2))
  verdicts = {c.claim: c for c in claims if c.comparison or
              c.status == "NOT RUN"}
  by = lambda m, lr: next(c for t, c in verdicts.items()
                          if t.startswith(f"P1: {PG.P1.LABELS[m]}'s") and
                          t.endswith(f"α = {lr:g}'s by more than 0.5 pp"))
  assert by("msgd", 0.3).status == "FAIL"
  assert by("msgd", 0.06).status == "PASS"
  assert by("adam", 6e-4).status == "PASS"
  assert by("adam", 6e-4).comparison["seeds"] == [0, 1]
  # The diverged α = 3 (one seed) is compared, and NOT RUN for want of seeds.
  assert by("msvag", 3).status == "NOT RUN"
  assert "msvag_lr3_s1" in by("msvag", 3).reason
  cmp = by("msgd", 0.06).comparison
  assert cmp["margin"] == PG.P1.ACC_MARGIN and cmp["relation"] == "≥"
  np.testing.assert_allclose(cmp["diff"], 0.01, atol=2e-4)
  fractions = {c.claim: c.measured for c in claims
               if "per seed" in c.claim}
  msgd = fractions["P1, per seed: M-SGD's winner α = 0.1 is the best of the "
                   "α's trained by maximum test accuracy"]
  assert msgd["fraction"] == 0.0 and msgd["n"] == 3
  adam = fractions["P1, per seed: ADAM's winner α = 0.001 is the best of the "
                   "α's trained by maximum test accuracy"]
  assert adam["fraction"] == 1.0
  table = claims[-1].measured["per_method"]["M-SGD"]
  np.testing.assert_allclose(table["0.1"]["mean"], WINNER_ACC - 0.002)


def test_missing_winner_runs_are_named(tmp_path):
  claims = R.Claims("balles", dataset="fashion_mnist")
  PG.state_claims(claims, {}, {m: {} for m in PG.METHODS}, problem="P1",
                  seeds=(0, 1))
  first = claims[0]
  assert first.status == "NOT RUN"
  assert "msgd_lr0.3_s0" in first.reason
  assert "balles_p1_fmnist/runs/msgd_s1" in first.reason


def test_max_accuracy_of_a_run_diverged_before_evaluating_is_zero():
  assert PG.max_accuracy([{"step": 50, "train_loss": 2.0}]) == 0.0
  assert PG.max_accuracy(_records(0.8)) == pytest.approx(0.8)


def test_grid_runs_equal_the_same_runs_alone(tmp_path):
  overrides = ("train.num_steps=6", "train.eval_every=3", "train.log_every=3")
  names = PG.train_grid(tmp_path, ("adam",), (0,), quick=True,
                        progress=False, overrides=overrides, group_size=None)
  assert names == ["adam_lr0.003_s0", "adam_lr0.0006_s0"]
  _, config = C.load_config_file(PG.P1.CONFIG)
  for name, lr in zip(names, (0.003, 6e-4)):
    meta = json.loads((tmp_path / name / "run.json").read_text())
    assert meta["learning_rate"] == lr and meta["diverged"] is None
    assert meta["group"] == names
    grouped = [json.loads(line) for line in
               (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    alone = G.train_alone(C.resolve(config, "adam", quick=True, overrides=[
        "train.seed=0", f"optimizer.learning_rate={lr!r}", *overrides]))
    assert [r["step"] for r in grouped] == [r["step"] for r in alone.history]
    for key in ("train_loss", "test_accuracy"):
      np.testing.assert_allclose(
          [r[key] for r in grouped if key in r],
          [r[key] for r in alone.history if key in r], rtol=1e-5, atol=1e-6)
  assert not (tmp_path / "partial").exists()


def test_run_reads_the_winners_and_the_grid_runs(tmp_path, monkeypatch):
  winners, grid = tmp_path / "winners", tmp_path / "grid"
  for m in PG.METHODS:
    for s in (0, 1):
      _write(winners / f"{m}_s{s}", _records(WINNER_ACC + 0.001 * s))
      for lr in PG.grid_points(m):
        _write(grid / PG.run_name(m, lr, s), _records(
            WINNER_ACC + 0.001 * s - 0.02 - 0.001 * lr))
  monkeypatch.setattr(PG.P1, "RUNS", winners)
  monkeypatch.setattr(PG, "RUNS", grid)
  monkeypatch.delenv(PG.TRAIN_ENV, raising=False)
  result = R.run_reproduction(PG.REPRODUCTION, tmp_path / "out")
  assert result.error is None, result.error
  assert result.counts()["PASS"] == 8 and result.counts()["INFO"] == 5
  claims = R.read_claims(tmp_path / "out" / "balles_p1_grid" / "claims.json")
  assert {c.dataset for c in claims} == {"fashion_mnist"}
  assert all("on Fashion-MNIST" in c.claim for c in claims)
