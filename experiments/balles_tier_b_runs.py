"""Balles Tier B runs: a config's variant trained through the engine, one
directory per (variant, α, seed) with ``metrics.jsonl`` and ``run.json``
(written last, so an interrupted reproduction resumes), the data check, and
the final value of a metric (for :mod:`experiments.reproduce_balles_tier_b`).
The seeds and α values of one (config, variant) train as one program on the
engine's runs axis (:func:`ensure_runs`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from experiments import run_groups as G
from nnopt import config as C
from nnopt.data import DatasetError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
#: A metric's final value: its mean over the last 5 % of the steps.
FINAL_FRACTION = 0.05
#: Whether missing runs of one (config, variant) train as one runs-axis
#: program (:func:`ensure_runs`) or one at a time.
RUNS_AXIS = True


def load_config(name):
  return C.load_config_file(CONFIGS / f"{name}.py")[1]


def fit(config, variant, quick, overrides=(), progress=False):
  exp = C.build(C.resolve(config, variant, quick=quick, overrides=overrides))
  trainer = exp.trainer(progress=progress)
  trainer.fit()
  return trainer


def fit_group(config, variant, quick, runs: dict[str, Sequence[str]],
              progress=False) -> dict[str, list[dict[str, Any]]]:
  """Runs of one variant (name → overrides: seed, α) as one runs-axis
  program, no files; their records by name."""
  members = [G.Member(name, C.resolve(config, variant, quick=quick,
                                      overrides=list(over)))
             for name, over in runs.items()]
  result = G.train_group(members, None, progress=progress)
  result.check_finite()
  return {name: run.records for name, run in result.runs.items()}


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
  return ensure_runs(runs_dir, config_name, variant, (alpha,), (seed,),
                     quick=quick, extra=extra, dir_name=dir_name)[(alpha, seed)]


def ensure_runs(runs_dir: Path, config_name: str, variant: str,
                alphas: Sequence[float | None], seeds: Sequence[int], *,
                quick: bool = False, extra: Iterable[str] = (),
                dir_name: str | None = None, runs_axis: bool | None = None
                ) -> dict[tuple[float | None, int], list[dict[str, Any]]]:
  """The records of every (α, seed) of one (config, variant), by (α, seed).

  The runs not on disk yet train together as one :class:`nnopt.engine.runs.
  RunsTrainer` (:mod:`experiments.run_groups`): the seeds, and the α values
  as the per-run hyperparameter ``learning_rate`` (CABS's hook gets its α
  from its own run's options); on an accelerator the group is one compiled
  program, each run the same as alone. While it trains, each run
  checkpoints under ``<config>/partial/<variant>/``, so an interrupted group
  resumes. ``runs_axis`` False (default :data:`RUNS_AXIS`) trains them one
  at a time. A run whose loss turns non-finite raises (as alone), after the
  others are written.
  """
  extra = list(extra)
  base = runs_dir / config_name
  names = {(a, s): run_name(dir_name or variant, a, s)
           for a in alphas for s in seeds}
  out = {k: read_run(base / n) for k, n in names.items()}
  missing = [k for k, r in out.items() if r is None]
  if not missing:
    return out
  config = load_config(config_name)
  method = variant.split("_", 1)[1] if config_name == "balles_cabs" else variant
  members = [G.Member(names[(a, s)], C.resolve(
      config, variant, quick=quick, overrides=[
          f"train.seed={s}", *lr_overrides(method, a), *extra]))
             for a, s in missing]
  meta = lambda a, s, wall: dict(config=config_name, variant=variant, alpha=a,
                                 seed=s, quick=quick, wall_seconds=wall)
  if not (RUNS_AXIS if runs_axis is None else runs_axis):
    for (a, s), member in zip(missing, members):
      history = G.train_alone(member.spec, progress=not quick).history
      G.write_run(base / member.name, history, meta(
          a, s, history[-1].get("wall_time") if history else None))
      out[(a, s)] = history
    return out
  workdir = base / "partial" / (dir_name or variant)
  result = G.train_group(members, workdir, progress=not quick,
                         checkpoints=3 if quick else 20)
  for (a, s), member in zip(missing, members):
    if member.name in result.finite():
      records = result.runs[member.name].records
      G.write_run(base / member.name, records, dict(
          meta(a, s, round(result.wall_seconds, 2)), group=result.names))
      out[(a, s)] = records
  G.discard(workdir, result.names)
  result.check_finite()
  return out


def final(records, key: str) -> float:
  """Mean of ``key`` over the records of the last 5 % of the steps (at least
  the last record that has it)."""
  have = [r for r in records if r.get(key) is not None]
  if not have:
    raise ValueError(f"no {key} recorded")
  last = max(r["step"] for r in records)
  window = [r[key] for r in have if r["step"] >= last * (1 - FINAL_FRACTION)]
  return float(np.mean(window or [have[-1][key]]))
