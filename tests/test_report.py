"""Tests of claims, claims.json files, REPORT.md and curve figures."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from nnopt import reproduce as R
from nnopt import report


def _write(directory, claims, figures=(), run=None):
  directory.mkdir(parents=True, exist_ok=True)
  R.write_claims(directory / R.CLAIMS_FILE, claims)
  for name in figures:
    (directory / name).parent.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(b"\x89PNG\r\n\x1a\n")
  if run is not None:
    (directory / R.RUN_FILE).write_text(json.dumps(run))


def test_claim_helpers_and_records():
  c = R.Claims("kreis")
  c.equal("Table 4.3", "27 params", np.int64(27), 27, name="params")
  c.close("Fig. 1", "ratio ≈ 0.7", 0.71, 0.70, rtol=0.05)
  c.less("Fig. 2", "LI below X1", 0.1, 0.2, names=("li", "x1"))
  c.check("Fig. 3", "fails", False, loss=np.float32(1.5))
  c.not_run("Fig. 4", "needs CIFAR-10", "no data_dir")
  assert [x.status for x in c] == ["PASS", "PASS", "PASS", "FAIL", "NOT RUN"]
  records = [x.to_record() for x in c]
  json.dumps(records)  # numpy values became plain JSON
  assert records[0]["measured"] == {"params": 27, "expected_params": 27}
  assert records[3]["measured"] == {"loss": 1.5}
  assert "reason" not in records[0] and records[4]["reason"] == "no data_dir"
  assert R.Claim.from_record(records[4]) == c[4]
  assert R.count_statuses(c) == {"PASS": 3, "FAIL": 1, "INCONCLUSIVE": 0,
                                 "NOT RUN": 1, "INFO": 0}
  assert all(r["scope"] == "full" for r in records)
  assert R.check("mlsgd", "T1", "x", True).status == "PASS"
  assert R.not_run("balles", "T1", "x", "why").reason == "why"


@pytest.mark.parametrize("kwargs,match", [
    (dict(thesis="smith"), "thesis"),
    (dict(status="OK"), "status"),
    (dict(status="NOT RUN"), "reason"),
    (dict(measured=[1]), "measured"),
])
def test_claim_validation(kwargs, match):
  fields = dict(thesis="kreis", item="T", claim="c", measured={},
                status="PASS")
  fields.update(kwargs)
  with pytest.raises(R.ReproduceError, match=match):
    R.Claim(**fields)


def test_report_counts_tables_and_figures(tmp_path):
  _write(tmp_path / "sensli", [
      R.check("kreis", "Table 4.3", "27 | params", True, params=27),
      R.check("kreis", "Fig. 4.5", "LI < X1", False, li=0.3, x1=0.2),
      R.not_run("kreis", "Fig. 4.8", "CIFAR run", "no data"),
  ], figures=("fig45.png",))
  _write(tmp_path / "nested" / "svag", [
      R.check("balles", "Fig. 5.1", "M-SVAG ≤ SGD", True, ratio=0.9),
      R.check("balles", "Fig. 5.2", "variance ok", True),
      R.check("kreis", "Eq. 5.3", "shared", True),
  ], figures=("a.png", "sub/b.png"))
  # A quick run: its claims are smoke results even where a record (written
  # before scopes existed) says full, and are never counted.
  _write(tmp_path / "quickrun", [
      R.check("kreis", "Fig. 4.9", "stand-in PASS", True, loss=0.1),
      R.check("kreis", "Fig. 4.10", "stand-in FAIL", False),
  ], figures=("q.png",), run={"quick": True, "stand_in": "digits 8x8"})
  path = report.write_report(tmp_path)
  assert path == tmp_path / "REPORT.md"
  text = path.read_text()
  assert ("3 reproduction(s). Full-size claims: 6 claim(s): 4 PASS, 1 FAIL, "
          "0 INCONCLUSIVE, 1 NOT RUN, 0 INFO. Smoke results (stand-in "
          "problems, not counted): 2.") in text
  assert "| kreis | 2 | 1 | 0 | 1 | 0 | 4 | 2 |" in text
  assert "| balles | 2 | 0 | 0 | 0 | 0 | 2 | 0 |" in text
  assert "mlsgd" not in text.split("## ")[0]
  assert "PASS: 2, FAIL: 1, INCONCLUSIVE: 0, NOT RUN: 1, INFO: 0" in text
  assert "27 \\| params" in text  # pipes escaped inside cells
  assert "reason: no data" in text and "**FAIL**" in text
  assert "li = 0.3, x1 = 0.2" in text
  assert "![sensli/fig45.png](sensli/fig45.png)" in text
  assert "![nested/svag/sub/b.png](nested/svag/sub/b.png)" in text
  assert "quick mode" in text and "quickrun" in text
  kreis, balles = text.index("## Kreis"), text.index("## Balles")
  assert kreis < balles
  # The kreis claim of nested/svag appears in the kreis table.
  assert "| nested/svag | Eq. 5.3 | shared |" in text[kreis:balles]
  # Smoke results: in their own table after the full-size one, labelled
  # with the stand-in, their status shown but not counted.
  kreis_text = text[kreis:balles]
  smoke_at = kreis_text.index("### Smoke results")
  assert "| sensli | Table 4.3 |" in kreis_text[:smoke_at]
  smoke_table = kreis_text[smoke_at:]
  assert "| quickrun | Fig. 4.9 | digits 8x8 | [smoke on digits 8x8" in \
      smoke_table
  assert "stand-in FAIL" in smoke_table and "**FAIL**" in smoke_table
  assert "stand-in" not in kreis_text[:smoke_at]
  counts = report.thesis_counts(report.collect(tmp_path))
  assert counts["kreis"] == {"PASS": 2, "FAIL": 1, "INCONCLUSIVE": 0,
                             "NOT RUN": 1, "INFO": 0}
  smoke = report.thesis_counts(report.collect(tmp_path), scope="smoke")
  assert smoke["kreis"] == {"PASS": 1, "FAIL": 1, "INCONCLUSIVE": 0,
                            "NOT RUN": 0, "INFO": 0}
  assert smoke["balles"] == dict.fromkeys(R.STATUSES, 0)


def test_report_rejects_invalid_files(tmp_path):
  with pytest.raises(R.ReproduceError, match="no claims.json"):
    report.write_report(tmp_path)
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "claims.json").write_text("{not json")
  with pytest.raises(R.ReproduceError, match="cannot read"):
    report.write_report(tmp_path)
  (tmp_path / "x" / "claims.json").write_text(
      json.dumps([{"thesis": "kreis", "item": "T", "claim": "c",
                   "measured": {}, "status": "MAYBE"}]))
  with pytest.raises(R.ReproduceError, match="status"):
    report.write_report(tmp_path)


def test_run_reproduction_writes_files_and_survives_crashes(tmp_path):
  def good(out_dir, quick):
    claims = R.Claims("mlsgd")
    claims.check("Fig. 1", "quick is passed", quick, quick=quick)
    (out_dir / "f.png").write_bytes(b"\x89PNG")
    return claims

  def bad(out_dir, quick):
    raise ValueError("boom")

  rep = R.Reproduction(id="good", thesis="mlsgd", items=("Fig. 1",), run=good,
                       smoke="a 2-layer net on digits")
  result = R.run_reproduction(rep, tmp_path, quick=True)
  assert result.error is None and result.counts()["PASS"] == 1
  info = json.loads((tmp_path / "good" / "run.json").read_text())
  assert info["quick"] is True and info["counts"]["PASS"] == 1
  assert info["scope"] == "smoke"
  assert R.read_claims(tmp_path / "good" / "claims.json") == result.claims
  # A quick run writes only smoke records, whose text names the stand-in.
  (claim,) = result.claims
  assert claim.scope == "smoke" and claim.stand_in == "a 2-layer net on digits"
  assert claim.claim.startswith("[smoke on a 2-layer net on digits")
  assert claim.claim.endswith("quick is passed")
  result = R.run_reproduction(rep, tmp_path, quick=False)
  assert [c.scope for c in result.claims] == ["full"]
  assert result.claims[0].claim == "quick is passed"
  rep = R.Reproduction(id="bad", thesis="mlsgd", items=("A", "B"), run=bad)
  result = R.run_reproduction(rep, tmp_path)
  assert "boom" in result.error
  assert [c.status for c in result.claims] == ["NOT RUN", "NOT RUN"]
  assert {c.scope for c in result.claims} == {"full"}
  quick = R.run_reproduction(rep, tmp_path / "q", quick=True)
  assert {c.scope for c in quick.claims} == {"smoke"}
  assert all("bad's quick mode" in c.stand_in for c in quick.claims)
  text = report.write_report(tmp_path).read_text()
  assert "bad failed" in text
  with pytest.raises(R.ReproduceError, match="thesis"):
    R.Reproduction(id="x", thesis="nobody", items=(), run=good)
  with pytest.raises(R.ReproduceError, match="directory name"):
    R.Reproduction(id="a/b", thesis="kreis", items=(), run=good)


def test_run_and_report_prints_the_counts_and_returns_the_status(
    tmp_path, capsys):
  def two(out_dir, quick):
    claims = R.Claims("kreis")
    claims.check("T", "holds", True)
    claims.check("T", "fails", False)
    return claims

  def bad(out_dir, quick):
    raise ValueError("boom")

  rep = R.Reproduction(id="two", thesis="kreis", items=("T",), run=two)
  assert R.run_and_report(rep, tmp_path) == 0
  assert capsys.readouterr().out == (
      f"1 PASS, 1 FAIL, 0 INCONCLUSIVE, 0 NOT RUN, 0 INFO → {tmp_path / 'two'}"
      "\n")
  rep = R.Reproduction(id="bad", thesis="kreis", items=("T",), run=bad)
  assert R.run_and_report(rep, tmp_path) == 1
  assert "1 NOT RUN" in capsys.readouterr().out


def test_discover_finds_sensli_tables():
  registry = R.discover()
  assert "sensli_tables" in registry.reproductions
  rep = registry.get("sensli_tables")
  assert rep.thesis == "kreis" and "Table 4.3" in rep.items
  with pytest.raises(R.ReproduceError, match="did you mean 'sensli_tables'"):
    registry.get("sensli_table")


def test_every_reproduction_is_an_installed_entry_point():
  registry = R.discover()
  assert not registry.errors, registry.errors
  assert set(registry.reproductions) >= {
      "balles_ch4", "balles_ch5", "balles_ch6", "balles_ch7",
      "balles_p1_fmnist", "balles_tier_b", "frobenius_ch5", "mgopt", "mlsgd",
      "sensli_cifar", "sensli_spiral", "sensli_tables"}


def test_discover_a_directory_of_scripts_leaves_sys_path(tmp_path):
  (tmp_path / "reproduce_one.py").write_text(
      "from nnopt.reproduce import Claims, Reproduction\n"
      "REPRODUCTION = Reproduction(id='one', thesis='kreis', items=('T',),\n"
      "                            run=lambda out, quick: Claims('kreis'))\n")
  before = list(sys.path)
  registry = R.discover(tmp_path)
  assert list(registry.reproductions) == ["one"] and not registry.errors
  assert sys.path == before
  with pytest.raises(R.ReproduceError, match="no directory"):
    R.discover(tmp_path / "missing")


def test_plot_curves(tmp_path):
  runs = {
      "sgd": [{"step": s, "train_loss": 1.0 / s, "test_accuracy": 0.5}
              for s in range(1, 20)],
      "adam": [{"step": s, "train_loss": 0.5 / s} for s in range(1, 20)]
      + [{"step": 20, "train_loss": 0.01, "test_accuracy": 0.9,
          "test_loss": 0.1}],
  }
  path = report.plot_curves(runs, tmp_path / "c" / "curves.png", title="t")
  assert path.read_bytes().startswith(b"\x89PNG")
  metrics = tmp_path / "metrics.jsonl"
  metrics.write_text("\n".join(json.dumps(r) for r in runs["sgd"]) + "\n")
  assert report.read_metrics(metrics) == runs["sgd"]
  assert report.read_metrics(tmp_path / "missing.jsonl") == []
  # Regression runs (no accuracy) plot the test loss instead.
  report.plot_curves({"r": [{"step": 1, "train_loss": 2.0,
                             "test_loss": 1.0}]}, tmp_path / "reg.png")
