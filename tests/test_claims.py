"""Claims as evidence: intervals over runs, the decision rule, scopes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from nnopt import reproduce as R
from nnopt.reproduce import intervals as I

A = [0.30, 0.25, 0.41, 0.33, 0.28]
B = [0.35, 0.31, 0.40, 0.42, 0.30]


# -- intervals against scipy.stats and closed forms ----------------------------


def test_paired_t_interval_matches_scipy_and_closed_form():
  d = I.difference_interval(A, B, paired=True)
  ref = stats.ttest_rel(A, B).confidence_interval(0.95)
  np.testing.assert_allclose(d.ci, (ref.low, ref.high), rtol=1e-12)
  diffs = np.subtract(A, B)
  # t_{0.975, 4} = 2.7764451051977987 (tables).
  half = 2.7764451051977987 * diffs.std(ddof=1) / np.sqrt(5)
  np.testing.assert_allclose(d.ci, (diffs.mean() - half, diffs.mean() + half),
                             rtol=1e-12)
  assert d.df == 4 and d.paired and d.n_a == d.n_b == 5
  np.testing.assert_allclose([d.mean_a, d.mean_b], [np.mean(A), np.mean(B)])
  np.testing.assert_allclose([d.se_a, d.se_b], [stats.sem(A), stats.sem(B)])
  np.testing.assert_allclose(d.se, stats.sem(diffs))
  assert "paired t" in d.method


def test_paired_t_three_seeds_uses_df_two():
  a, b = [1.0, 2.0, 4.0], [0.5, 1.0, 2.0]
  d = I.difference_interval(a, b, paired=True)
  diffs = np.array([0.5, 1.0, 2.0])
  half = 4.302652729911275 * diffs.std(ddof=1) / np.sqrt(3)  # t_{.975,2}
  np.testing.assert_allclose(d.ci, (diffs.mean() - half, diffs.mean() + half))


def test_welch_interval_matches_scipy():
  a, b = A, B[:3] + [0.5]
  d = I.difference_interval(a, b, paired=False)
  res = stats.ttest_ind(a, b, equal_var=False)
  ref = res.confidence_interval(0.95)
  np.testing.assert_allclose(d.ci, (ref.low, ref.high), rtol=1e-12)
  np.testing.assert_allclose(d.df, res.df, rtol=1e-12)
  assert d.n_a == 5 and d.n_b == 4 and "Welch" in d.method
  d90 = I.difference_interval(a, b, paired=False, confidence=0.9)
  ref90 = res.confidence_interval(0.9)
  np.testing.assert_allclose(d90.ci, (ref90.low, ref90.high), rtol=1e-12)


def test_bootstrap_is_reproducible_and_close_to_normal_theory():
  rng = np.random.default_rng(1)
  a = rng.normal(1.0, 1.0, 400)
  b = a - rng.normal(0.2, 0.5, 400)
  d = I.difference_interval(a, b, paired=True, method="bootstrap")
  assert d == I.difference_interval(a, b, paired=True, method="bootstrap")
  diffs = a - b
  half = 1.959964 * diffs.std(ddof=1) / np.sqrt(400)
  np.testing.assert_allclose(d.ci, (diffs.mean() - half, diffs.mean() + half),
                             atol=0.1 * half)
  u = I.difference_interval(a, b, paired=False, method="bootstrap")
  se = np.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
  np.testing.assert_allclose(u.ci, (diffs.mean() - 1.96 * se,
                                    diffs.mean() + 1.96 * se), atol=0.1 * se)
  assert "bootstrap" in d.method and d.df is None
  # Constant differences: the interval is the point.
  c = I.difference_interval([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], paired=True,
                            method="bootstrap")
  np.testing.assert_allclose(c.ci, (0.5, 0.5))


@pytest.mark.parametrize("kwargs,match", [
    (dict(a=[1.0], b=[1.0, 2.0], paired=False), "at least 2"),
    (dict(a=[1.0, 2.0], b=[1.0, 2.0, 3.0], paired=True), "equal counts"),
    (dict(a=[1.0, np.nan], b=[1.0, 2.0], paired=True), "finite"),
    (dict(a=[1.0, 2.0], b=[1.0, 2.0], paired=True, method="z"), "method"),
])
def test_interval_input_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    I.difference_interval(**kwargs)


# -- the decision rule ---------------------------------------------------------


@pytest.mark.parametrize("ci,relation,margin,want", [
    ((-0.5, -0.1), "<", 0, "PASS"),           # clear win
    ((0.1, 0.5), "<", 0, "FAIL"),             # clear loss
    ((-0.2, 0.3), "<", 0, "INCONCLUSIVE"),    # overlap
    ((0.0, 0.3), "<", 0, "FAIL"),             # no d < 0 in [0, 0.3]
    ((0.1, 0.5), ">", 0, "PASS"),
    ((-0.5, -0.1), ">", 0, "FAIL"),
    ((-0.2, 0.3), ">", 0, "INCONCLUSIVE"),
    ((-0.05, 0.08), "≈", 0.1, "PASS"),        # equivalence: inside ±δ
    ((-0.1, 0.1), "≈", 0.1, "PASS"),          # boundary counts as inside
    ((0.15, 0.4), "≈", 0.1, "FAIL"),          # wholly above δ
    ((-0.4, -0.12), "≈", 0.1, "FAIL"),        # wholly below −δ
    ((0.05, 0.2), "≈", 0.1, "INCONCLUSIVE"),  # straddles δ
    ((-0.3, 0.3), "≈", 0.1, "INCONCLUSIVE"),  # covers the whole band
    ((-0.3, 0.05), "≤", 0.1, "PASS"),         # non-inferiority
    ((0.12, 0.3), "≤", 0.1, "FAIL"),
    ((0.05, 0.3), "<=", 0.1, "INCONCLUSIVE"),
    ((-0.05, 0.3), "≥", 0.1, "PASS"),
    ((-0.4, -0.2), ">=", 0.1, "FAIL"),
    ((-0.2, 0.3), "≥", 0.1, "INCONCLUSIVE"),
])
def test_decide(ci, relation, margin, want):
  assert I.decide(ci, relation, margin) == want


def test_decide_rejects_bad_margins_and_relations():
  with pytest.raises(ValueError, match="margin"):
    I.decide((0, 1), "≈", 0)
  with pytest.raises(ValueError, match="no margin"):
    I.decide((0, 1), "<", 0.1)
  with pytest.raises(ValueError, match="relation"):
    I.decide((0, 1), "==")
  with pytest.raises(ValueError, match="low ≤ high"):
    I.decide((1, 0), "<")


# -- Claims.compare, fraction and scopes ---------------------------------------


def test_compare_records_interval_and_decides():
  c = R.Claims("balles", dataset="fashion_mnist")
  adam = {0: 0.10, 1: 0.12, 2: 0.11}
  msgd = {0: 0.20, 1: 0.23, 2: 0.21, 3: 0.22}  # seed 3 has no partner
  claim = c.compare("Fig 5.4", "ADAM below M-SGD", adam, msgd, relation="<",
                    names=("ADAM", "M-SGD"), quantity="final loss",
                    quote="the sign-based methods clearly outperform")
  assert claim.status == "PASS" and claim.dataset == "fashion_mnist"
  cmp = claim.comparison
  ref = stats.ttest_rel([0.10, 0.12, 0.11], [0.20, 0.23, 0.21]
                        ).confidence_interval(0.95)
  np.testing.assert_allclose(cmp["ci"], (ref.low, ref.high))
  assert cmp["n_a"] == cmp["n_b"] == 3 and cmp["seeds"] == [0, 1, 2]
  assert cmp["unpaired_seeds_left_out"] == [3]
  assert cmp["statement"] == "ADAM < M-SGD" and cmp["paired"] is True
  np.testing.assert_allclose(cmp["se_a"], stats.sem([0.10, 0.12, 0.11]))
  record = claim.to_record()
  assert record["quote"] == "the sign-based methods clearly outperform"
  assert record["scope"] == "full" and "reason" not in record
  assert R.Claim.from_record(json.loads(json.dumps(record))) == claim
  # The same numbers decide the reverse statement as FAIL and an
  # equivalence within a wide margin as PASS, within a tight one as FAIL.
  assert c.compare("x", "x", msgd, adam, relation="<", quote="q").status \
      == "FAIL"
  assert c.compare("x", "x", adam, msgd, relation=">", quote="q").status \
      == "FAIL"
  assert c.compare("x", "x", msgd, adam, relation=">", quote="q").status \
      == "PASS"
  assert c.compare("x", "x", adam, msgd, relation="≈", margin=0.5,
                   quote="q").status == "PASS"
  assert c.compare("x", "x", adam, msgd, relation="≈", margin=0.01,
                   quote="q").status == "FAIL"
  noisy = {0: 0.05, 1: 0.30, 2: 0.12}
  assert c.compare("x", "x", noisy, {0: 0.2, 1: 0.1, 2: 0.2}, relation="<",
                   quote="q").status == "INCONCLUSIVE"


def test_compare_unpaired_uses_welch():
  c = R.Claims("kreis")
  claim = c.compare("Fig 4.5b", "LI < FNN2", A, B, relation="<", paired=False,
                    quote="q")
  ref = stats.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
  np.testing.assert_allclose(claim.comparison["ci"], (ref.low, ref.high))
  assert "Welch" in claim.comparison["method"]
  assert claim.status == "INCONCLUSIVE"


def test_compare_with_too_few_seeds_is_not_run_naming_them():
  c = R.Claims("balles")
  claim = c.compare("Fig B.3", "M-SVAG ≈ M-SVAG-mb", {0: 0.2}, {},
                    relation="≈", margin=0.1, names=("M-SVAG", "M-SVAG-mb"),
                    quote="almost identical", missing="train runs/msvag_mb_s0")
  assert claim.status == "NOT RUN"
  assert "M-SVAG has [0]" in claim.reason
  assert "M-SVAG-mb has []" in claim.reason
  assert "runs/msvag_mb_s0" in claim.reason
  # Seeds that do not pair up do not count.
  claim = c.compare("x", "x", {0: 1.0, 1: 2.0}, {1: 1.0, 2: 2.0},
                    relation="<", quote="q")
  assert claim.status == "NOT RUN" and "seeds run for both" in claim.reason
  with pytest.raises(ValueError, match="margin"):
    c.compare("x", "x", [1, 2], [1, 2], relation="≈", quote="q")


def test_fraction_is_info():
  c = R.Claims("kreis")
  claim = c.fraction("Fig 4.6", "best insertion at epoch 3 (one run shown)",
                     {0: True, 1: False, 2: True, 3: True}, quote="q")
  assert claim.status == "INFO"
  assert claim.measured["fraction"] == 0.75 and claim.measured["n"] == 4
  assert c.fraction("x", "x", {}, quote="q").status == "NOT RUN"
  assert c.info("x", "x", {"a": 1}).status == "INFO"


def test_smoke_scope_needs_a_stand_in_and_labels_claims():
  c = R.Claims("mlsgd")
  with c.smoke("digits 8×8, 150 steps"):
    c.check("Table 4.2", "trains finitely", True)
  c.check("Table 4.2", "full", True)
  assert [x.scope for x in c] == ["smoke", "full"]
  assert c[0].stand_in == "digits 8×8, 150 steps" and c[1].stand_in is None
  with pytest.raises(R.ReproduceError, match="stand_in"):
    R.Claim("kreis", "T", "c", {}, "PASS", scope="smoke")
  with pytest.raises(R.ReproduceError, match="scope"):
    R.Claim("kreis", "T", "c", {}, "PASS", scope="partial")
  with pytest.raises(R.ReproduceError, match="scope"):
    R.Claims("kreis", scope="smoke")
  relabelled = R.smoke_label(c[1], "digits")
  assert relabelled.scope == "smoke" and relabelled.stand_in == "digits"
  assert relabelled.claim == "[smoke on digits; not the full-size check] full"
  assert R.smoke_label(c[0], "other") == c[0]


def test_records_round_trip_and_old_records_read_as_full(tmp_path):
  c = R.Claims("balles", dataset="fashion_mnist")
  c.compare("Fig 5.4", "ADAM ≈ M-SSD", {0: 1.0, 1: 1.1}, {0: 1.05, 1: 1.1},
            relation="≈", margin=0.5, quote="surprisingly similar")
  c.fraction("Fig 5.4", "per seed", {0: True}, quote="q")
  with c.smoke("digits"):
    c.not_run("Fig B.3", "mb", "no runs")
  R.write_claims(tmp_path / "claims.json", c)
  assert R.read_claims(tmp_path / "claims.json") == list(c)
  old = [{"thesis": "kreis", "item": "T", "claim": "c", "measured": {},
          "status": "PASS"}]
  (tmp_path / "old.json").write_text(json.dumps(old))
  (claim,) = R.read_claims(tmp_path / "old.json")
  assert claim.scope == "full"
  bad = [{**old[0], "scope": "smoke"}]
  (tmp_path / "bad.json").write_text(json.dumps(bad))
  with pytest.raises(R.ReproduceError, match="stand_in"):
    R.read_claims(tmp_path / "bad.json")


def test_report_renders_comparisons_and_quotes(tmp_path):
  from nnopt import report  # pylint: disable=g-import-not-at-top
  c = R.Claims("balles", dataset="fashion_mnist")
  c.compare("Fig 5.4 (P1)", "ADAM below M-SGD", {0: 0.1, 1: 0.12, 2: 0.11},
            {0: 0.2, 1: 0.23, 2: 0.21}, relation="<", names=("ADAM", "M-SGD"),
            quantity="final train loss", quote="clearly outperform")
  c.fraction("Fig 5.4 (P1)", "per seed", {0: True, 1: False}, quote="q")
  c.compare("Fig B.3", "≈", {0: 1.0, 1: 1.2}, {0: 1.2, 1: 0.9},
            relation="≈", margin=0.05, quote="almost identical")
  (tmp_path / "p1").mkdir()
  R.write_claims(tmp_path / "p1" / "claims.json", c)
  text = report.write_report(tmp_path).read_text()
  assert "| balles | 1 | 0 | 1 | 0 | 1 | 3 | 0 |" in text
  assert "Fig 5.4 (P1) (fashion_mnist)" in text
  assert "thesis: “clearly outperform”" in text
  assert "final train loss: ADAM 0.11 ± 0.005774 vs M-SGD" in text
  assert "95% CI [" in text and "paired t by seed" in text
  assert "*INCONCLUSIVE*" in text and "fraction = 0.5" in text
