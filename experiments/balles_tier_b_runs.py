"""Balles Tier B runs: a config's variant trained through the engine, one
directory per (variant, α, seed) with ``metrics.jsonl`` and ``run.json``
(written last, so an interrupted reproduction resumes), the data check, and
the final value of a metric (for :mod:`experiments.reproduce_balles_tier_b`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from nnopt import config as C
from nnopt.data import DatasetError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
#: A metric's final value: its mean over the last 5 % of the steps.
FINAL_FRACTION = 0.05


def load_config(name):
  return C.load_config_file(CONFIGS / f"{name}.py")[1]


def fit(config, variant, quick, overrides=(), progress=False):
  exp = C.build(C.resolve(config, variant, quick=quick, overrides=overrides))
  trainer = exp.trainer(progress=progress)
  trainer.fit()
  return trainer


def data_missing(config, variant) -> str | None:
  """None when the variant's data are found, else the loader's message
  (the data asked for and every place searched)."""
  try:
    C.load_dataset(C.resolve(config, variant))
  except DatasetError as e:
    return " ".join(str(e).split())
  return None


def lr_overrides(method: str, alpha: float | None) -> list[str]:
  if alpha is None:
    return []
  over = [f"optimizer.learning_rate={alpha}"]
  if method in ("cabs",):
    over.append("hooks=" + repr([dict(name="cabs", options=dict(
        learning_rate=alpha, m_min=16, m_max=2048))]))
  return over


def run_name(variant: str, alpha: float | None, seed: int) -> str:
  return f"{variant}{'' if alpha is None else f'_a{alpha:g}'}_s{seed}"


def read_run(path: Path) -> list[dict[str, Any]] | None:
  """The records of a finished run (``run.json`` written last), else None."""
  if not (path / "run.json").exists():
    return None
  with (path / "metrics.jsonl").open() as f:
    return [json.loads(line) for line in f if line.strip()]


def ensure_run(runs_dir: Path, config_name: str, variant: str,
               alpha: float | None, seed: int, *, quick: bool = False,
               extra: Iterable[str] = (), dir_name: str | None = None
               ) -> list[dict[str, Any]]:
  """The run's records, trained through the engine if not on disk yet."""
  out = runs_dir / config_name / run_name(dir_name or variant, alpha, seed)
  records = read_run(out)
  if records is not None:
    return records
  method = variant.split("_", 1)[1] if config_name == "balles_cabs" else variant
  trainer = fit(load_config(config_name), variant, quick,
                 [f"train.seed={seed}", *lr_overrides(method, alpha), *extra],
                 progress=not quick)
  out.mkdir(parents=True, exist_ok=True)
  with (out / "metrics.jsonl").open("w") as f:
    for record in trainer.history:
      f.write(json.dumps(record) + "\n")
  (out / "run.json").write_text(json.dumps(dict(
      config=config_name, variant=variant, alpha=alpha, seed=seed,
      quick=quick, wall_seconds=trainer.history[-1].get("wall_time")
      if trainer.history else None)) + "\n")
  return trainer.history


def final(records, key: str) -> float:
  """Mean of ``key`` over the records of the last 5 % of the steps (at least
  the last record that has it)."""
  have = [r for r in records if r.get(key) is not None]
  if not have:
    raise ValueError(f"no {key} recorded")
  last = max(r["step"] for r in records)
  window = [r[key] for r in have if r["step"] >= last * (1 - FINAL_FRACTION)]
  return float(np.mean(window or [have[-1][key]]))
