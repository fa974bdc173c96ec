"""Kreis ch. 5 Exp3 with its whole step-size grids on Fashion-MNIST.

``kreis_fmnist`` trains the thesis's champions and their grid neighbours;
this module runs ``frobenius_ch5``'s own pipeline for Exp3
(:mod:`experiments.frobenius_setting`: the 110 SGD and 100 preconditioned
step sizes of the thesis's grids at full length, 1,800 steps, on the runs
axis; champions by the final MA-200 loss; the champions' diagnostics and
timings; seeds 1–2 of the champions) on Fashion-MNIST, and records its
claims with texts that say so. It is the one whole grid that fits this CPU
(about an hour on 2 shared cores; Exp1's is estimated at ~2 h, Exp2's
longer). The claims are single-run checks, as ``frobenius_ch5``'s (the
thesis shows one run), plus the seeds 0–2 fractions of its robustness
reruns.

Training writes ``experiments/results/kreis_fmnist/exp3_grid/``: the claims
(``claims.json``), the grids' final MA-200 losses and champions
(``grid.json``, with wall time, commit and host) and the figures;
``kreis_fmnist`` reads them back::

    python experiments/reproduce_kreis_fmnist.py --train-grid exp3
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from experiments import fmnist_runs as fr
from experiments import frobenius_setting as fs
from experiments.frobenius_claims import claims_exp3
from experiments.frobenius_robustness import robustness
from experiments.kreis_ch5 import CHAMPIONS
from experiments.kreis_fmnist_runs import RESULTS
from nnopt.data import load_dataset
from nnopt.reproduce import Claims, read_claims, write_claims

GRID_DIR = RESULTS / "exp3_grid"
CLAIMS = {"exp3": claims_exp3}
ON = "on Fashion-MNIST, whole grids"


class OnFashionMNIST:
  """Claims whose items and texts say they ran on Fashion-MNIST's whole
  grids (the pipeline's claim texts are the thesis's MNIST statements)."""

  def __init__(self, claims: Claims):
    self.claims = claims

  def __getattr__(self, method):
    fn = getattr(self.claims, method)

    def call(item, claim, *args, **kwargs):
      return fn(f"{item} (Fashion-MNIST)", f"{ON}: {claim}", *args, **kwargs)
    return call


def train_grid(experiment: str = "exp3", out_dir: Path = GRID_DIR, *,
               quick: bool = False) -> Claims:
  """Runs ``frobenius_ch5``'s pipeline for ``experiment`` on Fashion-MNIST
  at full size and writes its records to ``out_dir``; returns the claims.
  ``quick``: ``frobenius_ch5``'s quick setting on the 8×8 digits (a test of
  the plumbing; its records say ``quick``)."""
  if experiment not in CLAIMS:
    raise ValueError(f"a whole grid fits here only for {sorted(CLAIMS)}, "
                     f"got {experiment!r}")
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  data = (load_dataset("digits", flatten=True) if quick
          else load_dataset("fashion_mnist"))
  setting = fs.Setting(experiment, quick, data)
  res = fs.sweep(setting)
  claims = Claims("kreis", dataset="digits" if quick else "fashion_mnist")
  labelled = OnFashionMNIST(claims)
  CLAIMS[experiment](labelled, res, setting, out_dir)
  robustness(labelled, experiment, setting, res, data)
  write_claims(out_dir / "claims.json", claims)
  grid = {m: {"grid": [float(x) for x in r["grid"]],
              "final_ma": [float(x) for x in r["finals"]],
              "champion": float(r["lr"]),
              "ms_per_step": round(1e3 * float(r["time"]), 4)}
          for m, r in ((m, res[m]) for m in ("sgd", "frobenius"))}
  (out_dir / "grid.json").write_text(json.dumps({
      "experiment": experiment, "dataset": claims.dataset, "quick": quick,
      "steps": setting.steps, "window": setting.window, **grid,
      "wall_seconds": round(time.perf_counter() - start, 1),
      "commit": os.environ.get(fr.COMMIT_ENV),
      "host": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"},
      indent=1) + "\n")
  return claims


def grid_claims(claims: Claims, grid_dir: Path | None = None) -> None:
  """Appends the committed whole-grid claims (in ``grid_dir``, default
  :data:`GRID_DIR`), their champions as INFO, or one NOT RUN naming the
  command that trains them."""
  grid_dir = GRID_DIR if grid_dir is None else Path(grid_dir)
  path = grid_dir / "claims.json"
  if not path.exists():
    claims.not_run("Fig 5.10 (Fashion-MNIST)", f"{ON}: Exp3's claims "
                   "(frobenius_ch5's pipeline)", f"no records in {grid_dir} "
                   "(python experiments/reproduce_kreis_fmnist.py "
                   "--train-grid exp3; about an hour)")
    return
  claims.extend(read_claims(path))
  meta = json.loads((grid_dir / "grid.json").read_text())
  measured = {"wall_seconds": meta["wall_seconds"]}
  for m, thesis in zip(("sgd", "frobenius"), CHAMPIONS[meta["experiment"]]):
    grid, finals = np.array(meta[m]["grid"]), np.array(meta[m]["final_ma"])
    at_thesis = int(np.argmin(np.abs(grid - thesis)))
    measured[m] = {"champion": meta[m]["champion"],
                   "final_ma": float(finals.min()),
                   "thesis_champion": float(grid[at_thesis]),
                   "thesis_champion_final_ma": float(finals[at_thesis]),
                   "grid_size": len(grid),
                   "ms_per_step": meta[m]["ms_per_step"]}
  claims.info("Table ch5 (Fashion-MNIST)", f"{ON}: Exp3's champions by the "
              "final MA-200 loss, and the thesis's champions there", measured)


def cost_text(grid_dir: Path | None = None) -> str:
  """``--list``'s words on the whole grids: their measured wall time."""
  path = (GRID_DIR if grid_dir is None else Path(grid_dir)) / "grid.json"
  if not path.exists():
    return "Exp3 whole grids: not run yet (about an hour, --train-grid exp3)"
  meta = json.loads(path.read_text())
  return (f"Exp3 whole grids ({len(meta['sgd']['grid'])} + "
          f"{len(meta['frobenius']['grid'])} step sizes, champions, seeds "
          f"1-2): {meta['wall_seconds'] / 60:.0f} min measured")


__all__ = ["GRID_DIR", "OnFashionMNIST", "cost_text", "grid_claims",
           "train_grid"]
