"""The package's shape: small modules, layers that import only downward
(import-linter, contracts in pyproject.toml), no lazy imports of nnopt's own
modules, nothing that registers itself on import."""

import ast
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "nnopt").rglob("*.py"))


def _tree(path):
  return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_has_at_most_400_lines(path):
  lines = len(path.read_text().splitlines())
  assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines"


# The CLI imports its subcommands' modules when they run, so that `nnopt
# --help` and one-line argument errors do not wait for JAX to load.
LAZY_ALLOWED = ("nnopt/cli/",)


def test_no_function_level_import_of_nnopt():
  lazy = []
  for path in MODULES:
    if str(path.relative_to(ROOT)).startswith(LAZY_ALLOWED):
      continue
    for node in ast.walk(_tree(path)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for inner in ast.walk(node):
          if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("nnopt"):
            lazy.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
          elif isinstance(inner, ast.Import) and any(
              a.name.startswith("nnopt") for a in inner.names):
            lazy.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
  assert not lazy, f"imports of nnopt inside functions: {lazy}"


def test_nothing_registers_itself_on_import():
  calls = []
  for path in MODULES:
    for node in _tree(path).body:
      if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if "register" in name and not owner.startswith("jax"):
          calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
  assert not calls, f"module-level registrations: {calls}"


def test_layers_import_only_downward():
  lint = shutil.which("lint-imports")
  if lint is None:
    if os.environ.get("CI") == "true":
      pytest.fail("lint-imports (import-linter) is not installed in CI")
    pytest.skip("import-linter is not installed (pip install -e '.[test]')")
  result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
