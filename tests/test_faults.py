"""A corpus of bad inputs and faults, run through the CLI as a user would.

Every case asserts its outcome: exit status 2 with exactly one ``nnopt:
error:`` line on stderr and no traceback, or a documented one-line warning
and a correct run; and that no file of the earlier run in the work directory
was changed or lost (every file is hashed before and after). The CLI runs in
process (``nnopt.cli.main``); signals are real signals, sent to this process
from a hook at a chosen step (plus one console-script subprocess).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from nnopt import cli
from nnopt import config as C
from nnopt.reproduce import Claims, write_claims

REPO = pathlib.Path(__file__).resolve().parent.parent

# A tiny config: two variants, 6 steps, checkpoints every 2 steps.
TINY = '''
from nnopt.config import base_config

def get_config():
  config = base_config()
  config.dataset.name = "spiral"
  config.model.name = "fnn"
  config.model.options = dict(widths=(8, 2), activation="tanh")
  config.train.batch_size = 45
  config.train.num_steps = 6
  config.train.num_epochs = None
  config.train.log_every = 2
  config.train.checkpoint_every = 2
  config.variants = dict(sgd=dict(optimizer=dict(name="sgd", learning_rate=0.1)),
                         adam=dict(optimizer=dict(name="adam",
                                                  learning_rate=0.01)))
  config.variant_order = ["sgd", "adam"]
  return config
'''
RUN = ["--variant", "adam", "--no-progress"]


# -- helpers ----------------------------------------------------------------------


def run_cli(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def snapshot(root: pathlib.Path) -> dict[str, str]:
  """sha256 of every file under ``root`` (by relative path)."""
  if not root.exists():
    return {}
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_error(code, err, *fragments):
  assert code == 2, err
  assert "Traceback" not in err, err
  lines = [l for l in err.splitlines() if l.strip()]
  errors = [l for l in lines if l.startswith("nnopt: error: ")]
  assert len(errors) == 1 and lines == errors, err
  for fragment in fragments:
    assert fragment in errors[0], errors[0]


def warnings_of(err):
  return [l for l in err.splitlines() if l.startswith("nnopt: warning: ")]


def records(workdir, variant="adam"):
  path = workdir / variant / "metrics.jsonl"
  return [json.loads(l) for l in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """The tiny config file, an earlier run of its 'adam' variant (checkpoints
  2, 4, 6) and the final record of an uninterrupted 10-step run."""
  root = tmp_path_factory.mktemp("faults")
  path = root / "tiny.py"
  path.write_text(TINY)
  earlier = root / "earlier"
  assert cli.main(["run", str(path), "--workdir", str(earlier), *RUN]) == 0
  reference = root / "reference"
  assert cli.main(["run", str(path), "--workdir", str(reference), *RUN,
                   "--set", "train.num_steps=10"]) == 0
  final = json.loads((reference / "adam" / "metrics.jsonl").read_text()
                     .splitlines()[-1])
  return {"config": path, "earlier": earlier, "final": final, "root": root}


@pytest.fixture
def workdir(tiny, tmp_path):
  """A copy of the earlier run, to be damaged or reused."""
  target = tmp_path / "w"
  shutil.copytree(tiny["earlier"], target)
  return target


def _write(tmp_path, text, name="cfg.py"):
  path = tmp_path / name
  path.write_text(text)
  return path


def _config_with(body: str) -> str:
  """TINY with extra lines in get_config (before the return)."""
  return TINY.replace("  return config", body + "\n  return config")


def _schedule(arguments: str) -> str:
  return _config_with("  config.variants.adam.optimizer.learning_rate = "
                      f"dict({arguments})")


# -- configs, overrides and command lines: one error line, nothing changed --------

# id -> (config text or None for TINY, extra argv, fragments of the error)
CONFIG_CASES = {
    "syntax_error": ("def get_config(:\n", [], ["syntax error"]),
    "import_error": ("import not_a_module_xyz\n", [], ["failed to load",
                                                     "not_a_module_xyz"]),
    "no_get_config": ("x = 1\n", [], ["defines no get_config"]),
    "get_config_raises": ("def get_config():\n  return 1 / 0\n", [],
                          ["ZeroDivisionError"]),
    "wrong_return_type": ("def get_config():\n  return [1, 2]\n", [],
                          ["must return a ConfigDict or dict"]),
    "unknown_top_key": (_config_with("  config.optimiser = {}"), [],
                        ["unknown config key 'optimiser'", "optimizer"]),
    "unknown_nested_key": (_config_with("  config.train.batchsize = 3"), [],
                           ["train.batchsize", "train.batch_size"]),
    "wrong_type": (_config_with("  config.train.batch_size = 'big'"), [],
                   ["train.batch_size must be int or None"]),
    "unknown_dataset": (_config_with("  config.dataset.name = 'imagenet'"), [],
                        ["imagenet"]),
    "unknown_dataset_option": (
        _config_with("  config.dataset.options = dict(turns=3)"), [],
        ["dataset.options", "turns"]),
    "unknown_model": (_config_with("  config.model.name = 'mlp'"), [],
                      ["unknown model 'mlp'", "fnn"]),
    "unknown_model_option": (
        _config_with("  config.model.options = dict(width=(8, 2))"), [],
        ["model.options", "width", "widths"]),
    "model_option_wrong_type": (
        _config_with("  config.model.options = dict(widths='eight')"), [],
        ["model.options.widths"]),
    "model_does_not_fit_data": (
        _config_with("  config.model.options = dict(widths=(8, 3))"), [],
        ["3 outputs", "2 classes"]),
    "unknown_optimizer": (_config_with(
        "  config.variants.adam.optimizer.name = 'adamm'"), [],
        ["unknown optimizer 'adamm'", "adam"]),
    "unknown_optimizer_option": (_config_with(
        "  config.variants.adam.optimizer.options = dict(beta_1=0.9)"), [],
        ["has no option(s) ['beta_1']", "b1"]),
    "optimizer_option_wrong_type": (_config_with(
        "  config.variants.adam.optimizer.options = dict(b1='high')"), [],
        ["option 'b1' must be float"]),
    "unknown_loss": (_config_with("  config.loss = 'hinge'"), [],
                     ["unknown loss 'hinge'"]),
    "unknown_hook": (_config_with("  config.hooks = [dict(name='grow')]"), [],
                     ["unknown hook 'grow'", "sensli"]),
    "unknown_hook_option": (_config_with(
        "  config.hooks = [dict(name='sensli', options=dict(at_epoch=[1]))]"),
        [], ["hooks[0].options", "at_epoch"]),
    "hook_not_a_dict": (_config_with("  config.hooks = ['sensli']"), [],
                        ["hooks[0] must be"]),
    "unknown_schedule": (_schedule("schedule='cosine', init_value=0.1"), [],
                         ["unknown learning-rate schedule 'cosine'"]),
    "schedule_without_name": (_schedule("init_value=0.1"), [],
                              ["needs a 'schedule' key"]),
    "schedule_bad_option": (_schedule(
        "schedule='cosine_decay_schedule', init_value=0.1, steps=10"), [],
        ["cosine_decay_schedule", "steps"]),
    "schedule_negative_rate": (_schedule(
        "schedule='cosine_decay_schedule', init_value=-0.1, decay_steps=10"),
        [], ["init_value must be a non-negative"]),
    "negative_learning_rate": (None, ["--set", "optimizer.learning_rate=-0.1"],
                               ["learning_rate must be a positive", "-0.1"]),
    "zero_learning_rate": (None, ["--set", "optimizer.learning_rate=0"],
                           ["learning_rate must be a positive"]),
    "nan_learning_rate": (None, ["--set", "optimizer.learning_rate=nan"],
                          ["learning_rate must be a positive", "nan"]),
    "inf_learning_rate": (None, ["--set", "optimizer.learning_rate=inf"],
                          ["learning_rate must be a positive"]),
    "no_budget": (None, ["--set", "train.num_steps=None"],
                  ["train.num_steps or train.num_epochs"]),
    "zero_batch_size": (None, ["--set", "train.batch_size=0"],
                        ["train.batch_size must be a positive integer"]),
    "batch_larger_than_data": (None, ["--set", "train.batch_size=5000"],
                               ["train.batch_size 5000 exceeds the 450"]),
    "variant_order_unknown": (_config_with(
        "  config.variant_order = ['sgd', 'nadam']"), [],
        ["variant_order names unknown variant(s) ['nadam']"]),
    "variants_not_a_dict": (_config_with("  config.variants = ['sgd']"), [],
                            ["variants must be a dict"]),
    "panels_unknown_variant": (_config_with(
        "  config.panels = {'optimizers': ['sgd', 'adamw']}"), [],
        ["panels['optimizers']", "adamw"]),
    "set_without_equals": (None, ["--set", "train.seed"],
                           ["--set needs KEY=VALUE"]),
    "set_empty_key": (None, ["--set", "=3"], ["--set has an empty key"]),
    "set_unknown_key": (None, ["--set", "train.batchsize=3"],
                        ["unknown config key 'train.batchsize'"]),
    "set_bad_literal": (None, ["--set", "train.num_steps=ten"],
                        ["train.num_steps must be int or None", "'ten'"]),
    "set_unknown_variant": (None, ["--set", "variants.nadam.train.seed=1"],
                            ["unknown variant 'nadam'"]),
    "set_section_to_scalar": (None, ["--set", "train=3"],
                              ["train is a section"]),
    "unknown_variant_flag": (None, ["--variant", "nadam"],
                             ["unknown variant(s) ['nadam']"]),
    "unknown_flag": (None, ["--bogus"], ["unrecognized arguments: --bogus"]),
    "resume_with_other_lr": (None, ["--resume", "--set",
                                    "optimizer.learning_rate=0.5"],
                             ["another config",
                              "optimizer.learning_rate: 0.01 -> 0.5"]),
    "resume_with_other_model": (None, [
        "--resume", "--set", "model.options.widths=(16, 2)"],
        ["another config", "model.options.widths"]),
    "resume_below_checkpoint": (None, ["--resume", "--set",
                                       "train.num_steps=4"],
                                ["at step 6, beyond num_steps 4"]),
    "resume_without_checkpointing": (None, [
        "--resume", "--set", "train.checkpoint_every=None"],
        ["saves no checkpoints", "checkpoint_every"]),
    "fresh_run_over_checkpoints": (None, [],
                                   ["holds checkpoints of an earlier run",
                                    "--resume"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_or_command_line(case, tiny, workdir, tmp_path, capsys):
  text, argv, fragments = CONFIG_CASES[case]
  path = tiny["config"] if text is None else _write(tmp_path, text)
  before = snapshot(workdir)
  code, _, err = run_cli(capsys, "run", path, "--workdir", workdir, *RUN,
                         *argv)
  assert_one_error(code, err, *fragments)
  assert snapshot(workdir) == before


def test_missing_or_non_python_config_file(tmp_path, capsys):
  code, _, err = run_cli(capsys, "run", tmp_path / "nope.py")
  assert_one_error(code, err, "does not exist")
  code, _, err = run_cli(capsys, "run", _write(tmp_path, TINY, "config.txt"))
  assert_one_error(code, err, "must be a Python file")


# -- data -----------------------------------------------------------------------------


@pytest.fixture
def no_data_places(monkeypatch, tmp_path):
  """No dataset is found outside the data_dir a test gives."""
  empty = tmp_path / "empty"
  empty.mkdir()
  monkeypatch.setenv("NNOPT_DATA_DIR", str(empty))
  monkeypatch.setenv("TFDS_DATA_DIR", str(empty))
  monkeypatch.setenv("HOME", str(empty))


@pytest.mark.parametrize("case", ["missing_data_dir", "corrupt_idx",
                                  "partial_idx"])
def test_bad_data(case, tiny, workdir, tmp_path, capsys, no_data_places):
  data = tmp_path / "data"
  names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
  if case != "missing_data_dir":
    data.mkdir()
    for name in names[:2] if case == "partial_idx" else names:
      (data / name).write_bytes(b"\x00\x00\x08\x03garbage")
  config = _write(tmp_path, _config_with(
      "  config.dataset.name = 'mnist'\n"
      "  config.model.options = dict(widths=(8, 10))"))
  before = snapshot(workdir)
  code, _, err = run_cli(capsys, "run", config, "--workdir", workdir, *RUN,
                         "--data_dir", data)
  fragment = {"missing_data_dir": "mnist", "corrupt_idx": "IDX file",
              "partial_idx": "only part of an IDX dataset"}[case]
  assert_one_error(code, err, fragment)
  assert snapshot(workdir) == before


# -- work directories ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["a_file", "under_a_file", "proc"])
def test_unusable_workdir(case, tiny, tmp_path, capsys):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  target = {"a_file": blocker, "under_a_file": blocker / "w",
            "proc": pathlib.Path("/proc/nnopt_x/w")}[case]
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", target,
                         *RUN)
  fragment = {"a_file": "is a file, not a directory",
              "under_a_file": "is a file, not a directory",
              "proc": "cannot create the work directory"}[case]
  assert_one_error(code, err, fragment)
  assert blocker.read_text() == "x"


def test_resume_nonexistent_workdir(tiny, tmp_path, capsys):
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir",
                         tmp_path / "nothing", *RUN, "--resume")
  assert_one_error(code, err, "does not exist", "nothing to resume")
  assert not (tmp_path / "nothing").exists()


def test_resume_without_any_checkpoint(tiny, workdir, capsys):
  shutil.rmtree(workdir / "adam" / "checkpoints")
  before = snapshot(workdir)
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--resume")
  assert_one_error(code, err, "no checkpoint under", "nothing to resume")
  assert snapshot(workdir) == before


def test_resume_with_corrupt_saved_config(tiny, workdir, capsys):
  (workdir / "adam" / "config.json").write_text('{"dataset": ')
  before = snapshot(workdir)
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--resume", "--set", "train.num_steps=10")
  assert_one_error(code, err, "config.json is not valid JSON")
  assert snapshot(workdir) == before


def test_resume_readme_example_without_checkpoints(tmp_path, capsys):
  # The README's `nnopt run configs/digits_mlp.py --workdir runs/digits
  # --resume` after a run without checkpoint_every: refused, nothing changed.
  base = ["run", REPO / "configs" / "digits_mlp.py", "--workdir", tmp_path,
          "--no-progress", "--set", "train.num_steps=3",
          "--set", "train.num_epochs=None"]
  code, _, err = run_cli(capsys, *base)
  assert code == 0, err
  before = snapshot(tmp_path)
  code, _, err = run_cli(capsys, *base, "--resume")
  assert_one_error(code, err, "saves no checkpoints")
  assert snapshot(tmp_path) == before


# -- corrupt checkpoints and metrics: a warning and a correct run ----------------------


def _largest_file(directory):
  return max((p for p in directory.rglob("*") if p.is_file()),
             key=lambda p: p.stat().st_size)


def _truncate(path, size=None):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2 if size is None else size])


DAMAGE = {
    "truncated_largest_file": lambda d: _truncate(_largest_file(d)),
    "garbage_metadata": lambda d: (d / "meta" / "metadata").write_text(
        "\x00garbage{"),
    "truncated_small_file": lambda d: _truncate(d / "_CHECKPOINT_METADATA",
                                                10),
    "flipped_byte": lambda d: _flip(_largest_file(d)),
    "missing_file": lambda d: _largest_file(d / "state").unlink(),
}


def _flip(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_corrupt_latest_checkpoint_falls_back(case, tiny, workdir, capsys):
  ckpts = workdir / "adam" / "checkpoints"
  DAMAGE[case](ckpts / "6")
  damaged = snapshot(ckpts / "6")
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--resume", "--set", "train.num_steps=10")
  assert code == 0, err
  assert "Traceback" not in err and "ERROR" not in err, err
  [warning] = warnings_of(err)
  assert "corrupt checkpoint 6" in warning and "resuming from step 4" in warning
  # the corrupt checkpoint is kept aside as it was; orbax keeps the newest 3
  assert snapshot(workdir / "adam" / "checkpoints.corrupt" / "6") == damaged
  assert sorted(int(p.name) for p in ckpts.iterdir()) == [6, 8, 10]
  final = records(workdir)[-1]
  assert final["step"] == 10
  assert final["train_loss"] == pytest.approx(tiny["final"]["train_loss"],
                                              rel=1e-6)
  assert [r["step"] for r in records(workdir)] == [2, 4, 6, 8, 10]


def test_every_checkpoint_corrupt_is_an_error(tiny, workdir, capsys):
  for step in (2, 4, 6):
    (workdir / "adam" / "checkpoints" / str(step) / "meta" /
     "metadata").write_text("{")
  before = snapshot(workdir)
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--resume", "--set", "train.num_steps=10")
  assert_one_error(code, err, "no intact checkpoint", "step 6", "step 2")
  assert snapshot(workdir) == before


@pytest.mark.parametrize("case", ["cut_off_last_line", "garbage_line"])
def test_damaged_metrics_file_resumes(case, tiny, workdir, capsys):
  path = workdir / "adam" / "metrics.jsonl"
  if case == "cut_off_last_line":
    path.write_text(path.read_text() + '{"step": 7, "train_lo')
  else:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + ["<<garbage>>"] + lines[1:]) + "\n")
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--resume", "--set", "train.num_steps=10")
  assert code == 0, err
  [warning] = warnings_of(err)
  assert "metrics.jsonl: dropped" in warning
  assert ("cut off" in warning) == (case == "cut_off_last_line")
  assert [r["step"] for r in records(workdir)] == [2, 4, 6, 8, 10]
  assert records(workdir)[-1]["train_loss"] == pytest.approx(
      tiny["final"]["train_loss"], rel=1e-6)
  assert (workdir / "curves.png").read_bytes().startswith(b"\x89PNG")


# -- signals -----------------------------------------------------------------------------


@pytest.fixture
def signal_hook(monkeypatch, signal_at):
  monkeypatch.setitem(C.HOOKS, "test_signal_at", signal_at)


@pytest.mark.parametrize("name,checkpoints", [
    ("SIGINT", True), ("SIGTERM", True), ("SIGTERM", False)])
def test_signal_saves_checkpoint_and_exits(name, checkpoints, tiny, tmp_path,
                                           capsys, signal_hook):
  signum = getattr(signal, name)
  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  workdir = tmp_path / "w"
  every = ["--set", f"train.checkpoint_every={4 if checkpoints else None}"]
  hook = ["--set", f"hooks=[{{'name': 'test_signal_at', 'options': "
          f"{{'at': 5, 'signum': {int(signum)}}}}}]"]
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--set", "train.num_steps=10", *every, *hook)
  assert code == 128 + signum, err
  assert "Traceback" not in err
  [line] = [l for l in err.splitlines() if "interrupted" in l]
  assert err.strip().splitlines()[-1] == line
  assert line.startswith(f"nnopt: interrupted by {name} at step 5")
  ckpts = workdir / "adam" / "checkpoints"
  if not checkpoints:
    assert "no checkpoint saved" in line and not ckpts.exists()
    return
  assert "saved checkpoint 5" in line and "--resume" in line
  assert sorted(int(p.name) for p in ckpts.iterdir()) == [4, 5]
  assert [signal.getsignal(s) for s in handlers] == list(handlers.values())
  # Resumed (the hook fires at step 5 only) it ends as an uninterrupted run.
  code, _, err = run_cli(capsys, "run", tiny["config"], "--workdir", workdir,
                         *RUN, "--set", "train.num_steps=10", *every, *hook,
                         "--resume")
  assert code == 0, err
  assert records(workdir)[-1]["train_loss"] == pytest.approx(
      tiny["final"]["train_loss"], rel=1e-6)


def test_sigterm_to_console_script(tiny, tmp_path):
  script = shutil.which("nnopt") or str(pathlib.Path(sys.executable).parent /
                                        "nnopt")
  if not os.path.exists(script):
    # CI installs the package (README), so there the script must exist.
    if os.environ.get("CI") == "true":
      pytest.fail("the nnopt console script is not installed")
    pytest.skip("console script not installed (pip install -e .)")
  workdir = tmp_path / "w"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
      [script, "run", str(tiny["config"]), "--workdir", str(workdir), *RUN,
       "--set", "train.num_steps=100000", "--set", "train.checkpoint_every=50",
       "--set", "train.log_every=1"],
      stderr=subprocess.PIPE, text=True, env=env)
  metrics = workdir / "adam" / "metrics.jsonl"
  deadline = time.monotonic() + 120
  while time.monotonic() < deadline and proc.poll() is None and not (
      metrics.exists() and metrics.stat().st_size > 0):
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 143, err
  assert "Traceback" not in err
  last = err.strip().splitlines()[-1]
  assert last.startswith("nnopt: interrupted by SIGTERM at step "), err
  step = int(last.split(" at step ")[1].split(";")[0])
  assert f"saved checkpoint {step}" in last
  assert step in [int(p.name) for p in (workdir / "adam" /
                                        "checkpoints").iterdir()]


# -- reproduce and report ----------------------------------------------------------------


def test_reproduce_bad_inputs(tmp_path, capsys):
  code, _, err = run_cli(capsys, "reproduce", "no_such_id", "--out", tmp_path)
  assert_one_error(code, err, "unknown reproduction 'no_such_id'")
  code, _, err = run_cli(capsys, "reproduce", "--list", "sensli_tables")
  assert_one_error(code, err, "--list takes no ids")
  blocker = tmp_path / "file"
  blocker.write_text("x")
  for out in (blocker, blocker / "sub"):
    code, _, err = run_cli(capsys, "reproduce", "sensli_tables", "--quick",
                           "--out", out)
    assert_one_error(code, err, "--out", "not a directory")
  assert blocker.read_text() == "x"


@pytest.mark.parametrize("case", ["missing_dir", "a_file", "no_claims",
                                  "invalid_json", "not_a_list",
                                  "bad_record", "unwritable_output"])
def test_report_bad_inputs(case, tmp_path, capsys):
  root = tmp_path / "out"
  root.mkdir()
  claims = root / "x" / "claims.json"
  claims.parent.mkdir()
  claims.write_text({
      "invalid_json": '[{"thesis": "kreis", ', "not_a_list": '{"a": 1}',
      "bad_record": '[{"thesis": "nobody"}]'}.get(case, "[]"))
  if case == "unwritable_output":
    good = Claims("balles")
    good.equal("Fig. 1", "one is one", 1, 1)
    write_claims(claims, good)
  if case == "no_claims":
    claims.unlink()
  argv = {"missing_dir": [tmp_path / "nothing"],
          "a_file": [claims],
          "unwritable_output": [root, "--output", tmp_path / "f" / "R.md"]
          }.get(case, [root])
  if case == "unwritable_output":
    (tmp_path / "f").write_text("x")
  before = snapshot(tmp_path)
  code, _, err = run_cli(capsys, "report", *argv)
  assert_one_error(code, err)
  assert snapshot(tmp_path) == before
