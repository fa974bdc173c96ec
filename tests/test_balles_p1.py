"""The Balles P1 reproduction on constructed runs (no training)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from experiments import reproduce_balles_p1 as P1
from nnopt import reproduce as R

FINAL = {"msgd": 0.20, "adam": 0.100, "msign_sgd": 0.104, "msvag": 0.19,
         "msvag_mb": 0.192}
ACC = {"msgd": 0.910, "adam": 0.915, "msign_sgd": 0.914, "msvag": 0.911,
       "msvag_mb": 0.911}


def _write_run(runs_dir, method, seed, final_loss, final_acc, last=6000):
  d = runs_dir / f"{method}_s{seed}"
  d.mkdir(parents=True)
  records = []
  for step in range(50, last + 1, 50):
    # The loss falls to final_loss at step 5,500 and stays: the last 500
    # steps average to it exactly.
    r = {"step": step, "train_loss": final_loss * max(1.0, 5500 / step)}
    if step % 250 == 0:
      r["test_accuracy"] = final_acc if step > 5500 else final_acc - 0.05
    records.append(r)
  (d / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records))


def _runs(tmp_path, seeds=(0, 1, 2)):
  rng = np.random.default_rng(0)
  for m in P1.METHODS:
    for s in seeds:
      # Seed effects shared by all methods (paired) plus small noise.
      shared = 1 + 0.05 * s
      _write_run(tmp_path, m, s, FINAL[m] * shared * (1 + 0.002 * rng.normal()),
                 ACC[m] - 0.002 * s + 0.0003 * rng.normal())
  return tmp_path


def test_final_value_averages_the_last_500_steps():
  records = [{"step": s, "train_loss": float(s)} for s in range(50, 6001, 50)]
  assert P1.final_value(records, "train_loss") == np.mean(
      np.arange(5550, 6001, 50))
  with pytest.raises(ValueError, match="test_accuracy"):
    P1.final_value(records, "test_accuracy")


def test_read_runs_skips_incomplete_and_foreign_dirs(tmp_path):
  _write_run(tmp_path, "adam", 0, 0.1, 0.9)
  _write_run(tmp_path, "msgd", 0, 0.2, 0.9, last=3000)
  (tmp_path / "notes").mkdir()
  (tmp_path / "msvag_s1").mkdir()
  runs, skipped = P1.read_runs(tmp_path)
  assert list(runs["adam"]) == [0] and runs["msgd"] == {}
  assert "incomplete" in skipped["msgd_s0"]
  assert skipped["msvag_s1"] == "no metrics.jsonl"


def test_claims_on_constructed_runs(tmp_path):
  runs, _ = P1.read_runs(_runs(tmp_path))
  claims = R.Claims("balles", dataset="fashion_mnist")
  P1.state_claims(claims, runs, window=P1.FINAL_WINDOW, problem="P1")
  by_text = {c.claim: c for c in claims}
  statuses = [c.status for c in claims]
  assert statuses == [
      "PASS", "PASS", "PASS", "PASS",   # sign-based below non-sign-based
      "PASS", "PASS",                   # ADAM ≈ M-SSD (loss 4 %, acc 0.1 pp)
      "PASS", "PASS", "PASS", "PASS",   # variance adaptation at least as good
      "INFO", "INFO",                   # per-seed fraction, summary
      "PASS", "PASS"]                   # M-SVAG ≈ M-SVAG-mb
  first = claims[0]
  assert first.scope == "full" and first.dataset == "fashion_mnist"
  assert first.quote == P1.QUOTE_SIGN and "running mini-batch" in \
      first.measured["caveat"]
  cmp = first.comparison
  assert cmp["n_a"] == cmp["n_b"] == 3 and cmp["seeds"] == [0, 1, 2]
  assert "paired t" in cmp["method"]
  np.testing.assert_allclose(cmp["diff"], math.log(0.1 / 0.2), atol=0.01)
  ratio = first.measured["loss_ratio_ci"]
  assert ratio[0] < 0.5 < ratio[1] < 0.6
  frac = by_text["P1, per seed: both sign-based methods end below both "
                 "non-sign-based ones in train loss"]
  assert frac.measured["fraction"] == 1.0 and frac.measured["n"] == 3
  assert claims[-1].item == "Fig B.3 (P1)"
  assert claims[-1].comparison["margin"] == P1.ACC_MARGIN
  assert claims[-2].comparison["margin"] == pytest.approx(math.log(1.1))


def test_one_seed_is_not_run_naming_the_missing_runs(tmp_path):
  runs, _ = P1.read_runs(_runs(tmp_path, seeds=(0,)))
  claims = R.Claims("balles", dataset="fashion_mnist")
  P1.state_claims(claims, runs, window=P1.FINAL_WINDOW, problem="P1")
  compared = [c for c in claims if c.quote != P1.QUOTE_CLUSTER
              and c.status != "INFO"]
  assert compared and all(c.status == "NOT RUN" for c in compared)
  assert "runs/adam_s1" in compared[0].reason
  assert "runs/msgd_s2" in compared[0].reason


def test_run_reads_runs_and_draws_figures(tmp_path, monkeypatch):
  monkeypatch.setattr(P1, "RUNS", _runs(tmp_path / "runs"))
  monkeypatch.delenv(P1.TRAIN_ENV, raising=False)
  result = R.run_reproduction(P1.REPRODUCTION, tmp_path / "out")
  assert result.error is None, result.error
  assert result.counts()["PASS"] == 12
  out = tmp_path / "out" / "balles_p1_fmnist"
  for name in ("fig5_4_p1.png", "figB_3_p1.png"):
    data = (out / name).read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) < 300_000
  assert {c.scope for c in R.read_claims(out / "claims.json")} == {"full"}
