"""Selection rules and the threshold (4.18)."""

import numpy as np
import pytest

from nnopt import growth

MERITS = {"a": 1.0, "b": 4.0, "c": 2.0}


def test_rules():
  assert growth.select(MERITS, "max").chosen == ("b",)
  assert growth.select(MERITS, "min").chosen == ("a",)
  assert growth.select(MERITS, "fixed", position=2).chosen == ("c",)
  assert growth.select(MERITS, "fixed", position="a").chosen == ("a",)
  picks = {growth.select(MERITS, "random", seed=s).chosen[0] for s in range(40)}
  assert picks == {"a", "b", "c"}
  rng = np.random.default_rng(3)
  expected = ["abc"[np.random.default_rng(3).integers(3)]]
  assert list(growth.select(MERITS, "random", seed=rng).chosen) == expected


def test_threshold_rule_and_variants():
  ref = {"w1": 2.0, "w2": 2.0}   # mean 2
  sel = growth.select(MERITS, "max", threshold=2.0, reference=ref)
  assert sel.chosen == ("b",) and sel.ratios == {"a": 0.5, "b": 2.0, "c": 1.0}
  assert growth.select(MERITS, "max", threshold=2.0, reference=ref,
                       strict=True).chosen == ()
  assert growth.select(MERITS, "max", threshold=1.0, reference=ref,
                       accept_multiple=True).chosen == ("b", "c")
  # rule 'min' chooses 'a', whose ratio 0.5 fails: no insertion
  none = growth.select(MERITS, "min", threshold=1.0, reference=ref)
  assert none.chosen == () and "no insertion" in none.reason


def test_threshold_rejecting_everything_is_reported():
  sel = growth.select(MERITS, "max", threshold=10.0, reference=[4.0])
  assert sel.chosen == ()
  assert "no insertion" in sel.reason and "1 is not >= τ=10" in sel.reason


def test_bad_selection_input():
  with pytest.raises(growth.GrowthError, match="no candidate"):
    growth.select({}, "max")
  with pytest.raises(growth.GrowthError, match="rule"):
    growth.select(MERITS, "best")
  with pytest.raises(growth.GrowthError, match="fixed position"):
    growth.select(MERITS, "fixed", position=3)
  with pytest.raises(growth.GrowthError, match=">= 1"):
    growth.select(MERITS, "max", threshold=0.5, reference=[1.0])
  with pytest.raises(growth.GrowthError, match="reference"):
    growth.select(MERITS, "max", threshold=1.0)
  with pytest.raises(growth.GrowthError, match="non-finite"):
    growth.select({"a": float("nan")}, "max")
