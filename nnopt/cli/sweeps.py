"""What ``nnopt run`` shows of a sweep: per setting, the mean and spread
over its seeds, and every run's curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nnopt import report
from nnopt.cli.errors import info
from nnopt.config.sweep import grid_points
from nnopt.engine.runs import RunsTrainer
from nnopt.engine.runs_io import spread

KEYS = ("train_loss", "test_loss", "test_accuracy")


def setting_label(variant: str, point: tuple) -> str:
  """``variant`` plus the setting's grid point (optimizer hyperparameters
  and hook options, as in the run names), e.g. ``sgd learning_rate=0.1``."""
  if not point:
    return variant
  return variant + " " + " ".join(f"{k}={v:.3g}" for k, v in point)


def _final(histories, key):
  values = []
  for history in histories:
    last = [r[key] for r in history if isinstance(r.get(key), (int, float))]
    if last and math.isfinite(last[-1]):
      values.append(float(last[-1]))
  return values


def _mean_std(values) -> str:
  n = len(values)
  mean = sum(values) / n
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 \
      else 0.0
  return f"{mean:.4g} ± {std:.2g}"


def sweep_summary(variant: str, trainer: RunsTrainer, rundir: Path,
                  seconds: float) -> None:
  """Prints one line per setting (final metrics, mean ± sample std over its
  seeds), writes ``summary.json`` (mean and spread per logged step) and
  ``runs.png`` (every run's curves, one row per setting)."""
  points = grid_points(trainer.specs)
  slots = trainer.slots
  print(f"{variant}: {len(slots)} runs, {len(points)} setting(s) "
        f"({seconds:.1f} s, {trainer.num_compilations} compilation(s))",
        flush=True)
  summary: dict[str, Any] = {}
  panels = {}
  for point, rows in points.items():
    label = setting_label(variant, point)
    histories = [slots[i].history for i in rows]
    diverged = sum(1 for h in histories if h and "nonfinite_step" in h[-1])
    parts = [f"{k} {_mean_std(v)}" for k in KEYS
             if (v := _final(histories, k))]
    note = f", {diverged} diverged" if diverged else ""
    print(f"  {label}: {', '.join(parts) or 'no records'} "
          f"(n={len(rows)}{note})", flush=True)
    summary[label] = {"runs": [slots[i].label for i in rows],
                      "hparams": dict(point), "diverged": diverged,
                      **{k: spread(histories, k) for k in KEYS}}
    panels[label] = [slots[i].label for i in rows]
  rundir.mkdir(parents=True, exist_ok=True)
  (rundir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
  runs = {s.label: s.history for s in slots if s.history}
  if runs:
    path = report.plot_curves(runs, rundir / "runs.png", title=variant,
                              panels=panels, dpi=80)
    info(f"wrote {path}")


def sweep_curves(variant: str, trainer: RunsTrainer) -> dict[str, list]:
  """The mean curve of every setting, as records for ``curves.png``."""
  out = {}
  for point, rows in grid_points(trainer.specs).items():
    histories = [trainer.slots[i].history for i in rows
                 if i < len(trainer.slots)]
    by_step: dict[int, dict[str, Any]] = {}
    for key in KEYS:
      for row in spread(histories, key):
        by_step.setdefault(row["step"], {"step": row["step"]})[key] = \
            row["mean"]
    if by_step:
      out[setting_label(variant, point)] = [by_step[s] for s in
                                            sorted(by_step)]
  return out


__all__ = ["setting_label", "sweep_curves", "sweep_summary"]
