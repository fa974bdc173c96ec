"""The ch. 7 reproduction reads Boston, a1a and the UCI sets from local files
(``$NNOPT_DATA_DIR/uci/*.csv``, ``libsvm/a1a``) and says NOT RUN without them."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from nnopt.noise_aware import fisher as F
from nnopt.noise_aware import fisher_data as FD
from nnopt.reproduce import Claims

_PATH = (Path(__file__).resolve().parents[2] / "experiments"
         / "reproduce_balles_ch7.py")


@pytest.fixture(scope="module")
def ch7():
  spec = importlib.util.spec_from_file_location("reproduce_balles_ch7_local",
                                                _PATH)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  yield module
  sys.modules.pop(spec.name, None)


def _regression(rng, n, d, noise=1.0):
  """Unnormalised features of very different scales and a linear target."""
  x = rng.uniform(0, 1, (n, d)) * np.logspace(-1, 2.5, d)
  y = x @ rng.normal(0, 0.05, d) + 20 + noise * rng.normal(size=n)
  return x, y


def _write_data(root: Path, rng) -> dict:
  """Small synthetic stand-ins in the documented layout; returns their arrays."""
  uci, libsvm = root / "uci", root / "libsvm"
  uci.mkdir(parents=True)
  libsvm.mkdir()
  data = {}
  # Boston: comma-separated with a header row (13 features + MEDV).
  x, y = _regression(rng, 120, 13)
  names = ",".join([f"f{i}" for i in range(13)] + ["MEDV"])
  np.savetxt(uci / "boston.csv", np.c_[x, y], delimiter=",", header=names,
             comments="")
  data["Boston"] = (x, y)
  # Yacht: whitespace-separated, no header (the UCI .data layout).
  x, y = _regression(rng, 60, 6)
  np.savetxt(uci / "yacht.csv", np.c_[x, y], fmt="%.10g")
  data["Yacht"] = (x, y)
  # Powerplant: semicolon-separated with a header.
  x, y = _regression(rng, 100, 4)
  np.savetxt(uci / "powerplant.csv", np.c_[x, y], delimiter=";",
             header="AT;V;AP;RH;PE", comments="")
  data["Powerplant"] = (x, y)
  # Energy: the UCI layout X1..X8, Y1, Y2 with a trailing empty column.
  x, y = _regression(rng, 80, 8)
  lines = ["X1,X2,X3,X4,X5,X6,X7,X8,Y1,Y2,"]
  lines += [",".join(f"{v:.10g}" for v in row) + ","
            for row in np.c_[x, y, y + 100.0]]
  (uci / "energy.csv").write_text("\n".join(lines) + "\n")
  data["Energy"] = (x, y)
  # a1a: sparse binary features (1-based libsvm indices), labels ±1.
  n, d = 150, 123
  x = (rng.uniform(size=(n, d)) < 14 / d).astype(float)
  w = rng.normal(0, 1.0, d)
  labels = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-(x @ w - 1))), 1, -1)
  rows = [f"{lab:+d} " + " ".join(f"{j + 1}:1" for j in np.flatnonzero(r))
          for lab, r in zip(labels, x)]
  (libsvm / "a1a").write_text("\n".join(rows) + "\n")
  data["a1a"] = (x, labels)
  return data


def test_loader_finds_and_parses_the_documented_layout(ch7, tmp_path,
                                                       monkeypatch):
  data = _write_data(tmp_path, np.random.default_rng(0))
  monkeypatch.setenv("NNOPT_DATA_DIR", str(tmp_path))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "elsewhere"))
  assert FD.data_dir()[0] == tmp_path
  assert FD.local_path("a1a") == tmp_path / "libsvm" / "a1a"
  for name, kind, d in (("Boston", "linear", 13), ("Yacht", "linear", 6),
                        ("Powerplant", "linear", 4), ("Energy", "linear", 8),
                        ("a1a", "logistic", 123)):
    prob = FD.load_local(name)
    x, y = data[name]
    assert prob.kind == kind and prob.x.shape == (len(x), d + 1), name
    np.testing.assert_array_equal(prob.x[:, -1], 1.0)          # bias column
    np.testing.assert_allclose(prob.x[:, :-1], x, rtol=1e-9)
    if name == "a1a":
      np.testing.assert_array_equal(prob.y, (y + 1) / 2)       # {−1,1} → {0,1}
      assert set(np.unique(prob.y)) == {0.0, 1.0}
    else:  # Energy: Y1 (heating load), not the second target Y2
      np.testing.assert_allclose(prob.y, y, rtol=1e-9)


def test_malformed_and_fallback_directories(ch7, tmp_path, monkeypatch):
  monkeypatch.delenv("NNOPT_DATA_DIR", raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  assert FD.data_dir() == (tmp_path, "$TFDS_DATA_DIR")
  (tmp_path / "uci").mkdir()
  (tmp_path / "uci" / "boston.csv").write_text("a,b\n1,2\n3,oops\n")
  with pytest.raises(FD.LocalDataError, match="line 3"):
    FD.load_local("Boston")
  (tmp_path / "uci" / "boston.csv").write_text("1 2 3\n4 5\n")
  with pytest.raises(FD.LocalDataError, match="columns"):
    FD.load_local("Boston")
  monkeypatch.delenv("TFDS_DATA_DIR")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert FD.data_dir()[0] == tmp_path / "home" / "tensorflow_datasets"


def test_sparse_grid_runner_equals_single_runs():
  rng = np.random.default_rng(3)
  x = np.c_[(rng.uniform(size=(80, 30)) < 0.1).astype(float), np.ones(80)]
  y = (rng.uniform(size=80) < 0.4).astype(float)
  prob = F.GLM(x, y, "logistic")
  steps = np.array([1e-3, 0.3, 3.0, 1e4])
  for method in ("ngd", "ef"):
    grid = F.run_preconditioned_grid(prob, method, np.zeros(31), steps, 1e-3,
                                     20)
    single = [F.run_preconditioned(prob, method, np.zeros(31), s, 1e-3, 20)[0][-1]
              for s in steps]
    np.testing.assert_allclose(grid, single, rtol=1e-8)


# A coarser quick grid (γ in steps of 10^5, λ in 10^10) keeps the test short.
_SMALL_GRID = dict(gammas=7, lambdas=3)
LOCAL_CLAIMS = ("Boston: the cosine", "a1a: the EF is a decent", "Fig 7.4",
                "Fig D.1: EFGD is clearly worse")


def test_real_data_claims_run_with_local_files(ch7, tmp_path, monkeypatch):
  _write_data(tmp_path / "data", np.random.default_rng(1))
  monkeypatch.setenv("NNOPT_DATA_DIR", str(tmp_path / "data"))
  monkeypatch.setattr(ch7, "QUICK_GRID", _SMALL_GRID)
  out = tmp_path / "out"
  out.mkdir()
  claims = Claims("balles")
  ch7.real_data(claims, out, quick=True)
  assert [c for c in claims if c.status == "NOT RUN"] == []
  for key in LOCAL_CLAIMS:
    assert any(key in c.claim and c.status in ("PASS", "FAIL")
               for c in claims), key
  d1 = next(c for c in claims if "Fig D.1" in c.claim)
  assert set(d1.measured["ef"]) == {"Yacht", "Powerplant", "Wine", "Energy"}
  table = claims[0].measured["table_d5_selected_vs_thesis"]
  assert set(table) == {"BreastCancer", "Wine", "Boston", "Yacht",
                        "Powerplant", "Energy", "a1a"}
  assert table["a1a"]["thesis"]["ef"] == [-0.375, -8.0]
  for name in ("fig7_3_optim.png", "figD_1_optim.png", "fig7_4_init.png",
               "table_d5_selected.json"):
    assert (out / name).exists(), name


def test_without_files_the_reason_names_the_path(ch7, tmp_path, monkeypatch):
  monkeypatch.setenv("NNOPT_DATA_DIR", str(tmp_path))
  problems, unavailable = FD.load_datasets()
  assert set(problems) == {"BreastCancer", "Wine"}
  assert set(unavailable) == {"Boston", "Yacht", "Powerplant", "Energy", "a1a"}
  for name, reason in unavailable.items():
    assert str(tmp_path / FD.LOCAL_SETS[name].path) in reason
    assert "NNOPT_DATA_DIR" in reason and "http" in reason
  assert "libsvmtools/datasets/binary/a1a" in unavailable["a1a"]
  # The claims of the missing sets are NOT RUN with that reason.
  monkeypatch.setattr(ch7, "load_datasets", lambda: (problems, unavailable))
  monkeypatch.setattr(ch7, "QUICK_GRID", _SMALL_GRID)
  claims = Claims("balles")
  ch7.real_data(claims, tmp_path, quick=True)
  not_run = {c.claim: c.reason for c in claims if c.status == "NOT RUN"}
  assert len(not_run) == 4
  for key, name in (("Boston: the cosine", "Boston"), ("a1a:", "a1a"),
                    ("Fig 7.4", "Boston"), ("Fig D.1", "Energy")):
    reason = next(r for c, r in not_run.items() if key in c)
    assert str(tmp_path / FD.LOCAL_SETS[name].path) in reason, key
