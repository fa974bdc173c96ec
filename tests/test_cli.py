"""Tests of the `nnopt` command line (in-process, plus one console-script run)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from nnopt import cli
from nnopt import config as C

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.py"))
QUICKSTART = str(REPO / "configs" / "quickstart.py")


def run_cli(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def assert_user_error(code, err, *fragments):
  assert code == 2, err
  assert "Traceback" not in err
  lines = [l for l in err.splitlines() if l.strip()]
  errors = [l for l in lines if l.startswith("nnopt: error: ")]
  assert len(errors) == 1, err
  assert lines[-1] == errors[0]
  for fragment in fragments:
    assert fragment in errors[0], errors[0]


def _run_two_steps(capsys, workdir, path, *variants):
  selected = [a for v in variants for a in ("--variant", v)]
  code, out, err = run_cli(
      capsys, "run", path, "--quick", "--workdir", workdir, "--no-progress",
      "--set", "train.num_steps=2", "--set", "train.num_epochs=None",
      *selected)
  assert code == 0, err
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["quick"] is True
  assert "train.num_steps=2" in saved["set"]
  for variant, cfg in saved["variants"].items():
    assert cfg["train"]["num_steps"] == 2
    records = [json.loads(l) for l in
               (workdir / variant / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2
    assert "test_loss" in records[-1]
    assert (workdir / variant / "config.json").exists()
    assert f"{variant}: step 2" in out
  assert (workdir / "curves.png").read_bytes().startswith(b"\x89PNG")
  return saved


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_runs_two_steps(path, tmp_path, capsys):
  # The first variant of every config trains end to end (test_configs builds
  # every distinct variant without training it).
  _, config = C.load_config_file(path)
  first = C.variant_names(config)[0]
  saved = _run_two_steps(capsys, tmp_path, path, first)
  assert list(saved["variants"]) == [first]


def test_quickstart_all_variants_two_steps(tmp_path, capsys):
  saved = _run_two_steps(capsys, tmp_path, QUICKSTART)
  assert list(saved["variants"]) == ["sgd", "adam", "msvag", "frobenius",
                                     "fixed", "sensli"]
  assert saved["panels"] == C.panels(C.load_config_file(QUICKSTART)[1])


def test_variant_selection_and_default_workdir(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  code, out, err = run_cli(capsys, "run", QUICKSTART, "--quick", "--variant",
                           "adam", "--set", "train.num_steps=2",
                           "--no-progress")
  assert code == 0, err
  workdir = tmp_path / "runs" / "quickstart"
  assert (workdir / "adam" / "metrics.jsonl").exists()
  assert not (workdir / "sgd").exists()
  assert list(json.loads((workdir / "config.json").read_text())[
      "variants"]) == ["adam"]


@pytest.mark.parametrize("args,fragments", [
    (["--set", "train.batchsize=3"],
     ["unknown config key 'train.batchsize'", "train.batch_size"]),
    (["--set", "train.batch_size=abc"],
     ["train.batch_size must be int or None", "'abc'"]),
    (["--set", "dataset.name=imagenet"],
     ["Unknown dataset 'imagenet'", "spiral"]),
    (["--set", "model.name=mlp"], ["unknown model 'mlp'", "fnn"]),
    (["--set", "optimizer.name=adamm"], ["unknown optimizer 'adamm'", "adam"]),
    (["--set", "variants.adam.optimizer.name=sgdd"],
     ["unknown optimizer 'sgdd'"]),
    (["--set", "loss=hinge"], ["unknown loss 'hinge'"]),
    (["--set", "train.seed"], ["--set needs KEY=VALUE"]),
    (["--variant", "nadam"], ["unknown variant", "frobenius"]),
    (["--bogus"], ["unrecognized arguments"]),
])
def test_user_errors_are_one_line(args, fragments, tmp_path, capsys):
  code, _, err = run_cli(capsys, "run", QUICKSTART, "--workdir", tmp_path,
                         *args)
  assert_user_error(code, err, *fragments)
  assert not (tmp_path / "sgd").exists()  # nothing trained


def test_bad_config_files(tmp_path, capsys):
  code, _, err = run_cli(capsys, "run", tmp_path / "missing.py")
  assert_user_error(code, err, "does not exist")
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(:\n")
  code, _, err = run_cli(capsys, "run", bad)
  assert_user_error(code, err, "syntax error")


def test_missing_tfds_data_is_a_user_error(tmp_path, capsys):
  code, _, err = run_cli(capsys, "run", REPO / "configs" / "vgg_cifar10.py",
                         "--data_dir", tmp_path / "tfds", "--workdir",
                         tmp_path / "w")
  assert_user_error(code, err, "cifar10")


def test_nonfinite_loss_is_a_user_error(tmp_path, capsys):
  code, _, err = run_cli(
      capsys, "run", QUICKSTART, "--workdir", tmp_path, "--variant", "sgd",
      "--set", "train.num_steps=2", "--set", "optimizer.learning_rate=1e30",
      "--set", "model.options.activation='relu'", "--no-progress")
  assert_user_error(code, err, "variant 'sgd'", "not finite")


def test_resume_and_existing_checkpoints(tmp_path, capsys):
  base = ["run", QUICKSTART, "--workdir", tmp_path, "--variant", "adam",
          "--no-progress", "--set", "train.checkpoint_every=2",
          "--set", "train.num_epochs=None"]
  code, _, err = run_cli(capsys, *base, "--set", "train.num_steps=2")
  assert code == 0, err
  code, _, err = run_cli(capsys, *base, "--set", "train.num_steps=4")
  assert_user_error(code, err, "--resume")
  code, _, err = run_cli(capsys, *base, "--set", "train.num_steps=4",
                         "--resume")
  assert code == 0, err
  steps = [json.loads(l)["step"] for l in
           (tmp_path / "adam" / "metrics.jsonl").read_text().splitlines()]
  assert steps[-1] == 4 and steps == sorted(steps)


def test_console_script_subprocess(tmp_path):
  script = shutil.which("nnopt") or str(pathlib.Path(sys.executable).parent /
                                        "nnopt")
  if not os.path.exists(script):
    # CI installs the package (README), so there the script must exist.
    if os.environ.get("CI") == "true":
      pytest.fail("the nnopt console script is not installed")
    pytest.skip("console script not installed (pip install -e .)")
  proc = subprocess.run(
      [script, "run", QUICKSTART, "--set", "optimizer.name=adamm",
       "--workdir", str(tmp_path)], capture_output=True, text=True,
      timeout=120, check=False)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "nnopt: error: optimizer: unknown optimizer 'adamm'")


def test_no_command_prints_help(capsys):
  code, _, err = run_cli(capsys)
  assert code == 2 and "run" in err and "reproduce" in err


# -- reproduce / report -------------------------------------------------------------


def test_reproduce_list(capsys):
  code, out, err = run_cli(capsys, "reproduce", "--list")
  assert code == 0, err
  line = next(l for l in out.splitlines() if l.startswith("sensli_tables"))
  assert "kreis" in line and "Table 4.3" in line


def test_reproduce_unknown_and_usage(capsys):
  code, _, err = run_cli(capsys, "reproduce", "sensli_table")
  assert_user_error(code, err, "unknown reproduction 'sensli_table'",
                    "sensli_tables")
  code, _, err = run_cli(capsys, "reproduce")
  assert_user_error(code, err, "--all")


def test_reproduce_sensli_tables(tmp_path, capsys):
  code, out, err = run_cli(capsys, "reproduce", "sensli_tables", "--quick",
                           "--out", tmp_path)
  assert code == 0, err
  records = json.loads((tmp_path / "sensli_tables" / "claims.json")
                       .read_text())
  assert records and all(
      set(r) >= {"thesis", "item", "claim", "measured", "status"}
      for r in records)
  table43 = [r for r in records if r["item"] == "Table 4.3"]
  assert len(table43) >= 6
  assert all(r["status"] == "PASS" for r in table43), table43
  params = {r["measured"]["params"] for r in table43 if "params" in r["measured"]}
  assert {27, 57, 33, 54, 2_674_816, 2_711_744} <= params
  for r in records:
    assert r["status"] in ("PASS", "FAIL", "NOT RUN")
    assert ("reason" in r) == (r["status"] == "NOT RUN")
    assert r["scope"] == "smoke" and r["stand_in"]  # a --quick run
  assert (tmp_path / "sensli_tables" / "table_4_3_params.png").exists()
  assert (tmp_path / "REPORT.md").exists()
  assert "sensli_tables:" in out


def test_reproduce_all_with_broken_script(tmp_path, capsys):
  exp = tmp_path / "experiments"
  exp.mkdir()
  (exp / "reproduce_ok.py").write_text(
      "from nnopt.reproduce import Claims, Reproduction\n"
      "def run(out_dir, quick):\n"
      "  c = Claims('balles')\n"
      "  c.equal('Fig. 1', 'one is one', 1, 1)\n"
      "  c.not_run('Fig. 2', 'needs a GPU', 'no GPU here')\n"
      "  return c\n"
      "REPRODUCTION = Reproduction(id='ok', thesis='balles', "
      "items=('Fig. 1', 'Fig. 2'), run=run)\n")
  (exp / "reproduce_crash.py").write_text(
      "from nnopt.reproduce import Reproduction\n"
      "def run(out_dir, quick):\n"
      "  raise RuntimeError('kaputt')\n"
      "REPRODUCTION = Reproduction(id='crash', thesis='mlsgd', "
      "items=('Fig. 3',), run=run)\n")
  (exp / "reproduce_broken.py").write_text("import not_a_module_xyz\n")
  code, out, _ = run_cli(capsys, "reproduce", "--list", "--experiments", exp)
  assert code == 0
  assert "ok" in out and "crash" in out and "reproduce_broken.py" in out
  out_dir = tmp_path / "out"
  code, out, err = run_cli(capsys, "reproduce", "--all", "--experiments", exp,
                           "--out", out_dir)
  assert code == 1  # a script crashed: recorded, reported, not silent
  assert "crash failed" in err and "Traceback" not in err
  crash = json.loads((out_dir / "crash" / "claims.json").read_text())
  assert crash[0]["status"] == "NOT RUN" and "kaputt" in crash[0]["reason"]
  assert "kaputt" in (out_dir / "crash" / "error.log").read_text()
  code, out, err = run_cli(capsys, "report", out_dir)
  assert code == 0, err
  report = (out_dir / "REPORT.md").read_text()
  # Columns: PASS, FAIL, INCONCLUSIVE, NOT RUN, INFO, total, smoke.
  assert "| balles | 1 | 0 | 0 | 1 | 0 | 2 | 0 |" in report
  assert "| mlsgd | 0 | 0 | 0 | 1 | 0 | 1 | 0 |" in report


def test_report_errors(tmp_path, capsys):
  code, _, err = run_cli(capsys, "report", tmp_path)
  assert_user_error(code, err, "no claims.json")
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "claims.json").write_text('[{"thesis": "nobody"}]')
  code, _, err = run_cli(capsys, "report", tmp_path)
  assert_user_error(code, err, "claims.json")
