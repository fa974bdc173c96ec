"""Wall time of one full-size ``frobenius_ch5`` experiment (issue 13).

Runs the reproduction's own code for one experiment at the thesis's settings
(``experiments/frobenius_setting.py``: both step-size grids on the runs axis,
the champions' diagnostics runs, the per-step timings, the claims and the
seeds 1-2 robustness reruns) and prints the time of each stage. The data are
MNIST when its files are found, else Fashion-MNIST (the same shapes; the
Debian package ``dataset-fashion-mnist``), said in the output; the verdicts
are printed but are not the reproduction's (those need MNIST).

    python experiments/bench/frobenius_full.py exp3 [--out /tmp/frob]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# pylint: disable=wrong-import-position
from nnopt.data import DatasetError, load_dataset
from nnopt.reproduce import Claims
from experiments import frobenius_setting as fs
from experiments.frobenius_claims import claims_exp1, claims_exp2, claims_exp3
from experiments.frobenius_robustness import robustness

CLAIMS = {"exp1": claims_exp1, "exp2": claims_exp2, "exp3": claims_exp3}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("experiment", choices=sorted(CLAIMS))
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  try:
    data, name = load_dataset("mnist"), "MNIST"
  except DatasetError:
    data, name = load_dataset("fashion_mnist"), "Fashion-MNIST (MNIST absent)"
  out = Path(args.out or tempfile.mkdtemp(prefix="frobenius_full_"))
  out.mkdir(parents=True, exist_ok=True)
  setting = fs.Setting(args.experiment, False, data)
  print(f"{args.experiment} on {name}: {setting.steps} steps per run, "
        f"{len(setting.sgd_grid)} SGD and {len(setting.pre_grid)} "
        f"preconditioned step sizes; {os.cpu_count()} CPUs", flush=True)
  stages, start = [], time.perf_counter()
  t0 = time.perf_counter()
  res = fs.sweep(setting)
  stages.append(("grids, champions, timings", time.perf_counter() - t0))
  claims = Claims("kreis")
  t0 = time.perf_counter()
  CLAIMS[args.experiment](claims, res, setting, out)
  stages.append(("claims and figures", time.perf_counter() - t0))
  t0 = time.perf_counter()
  robustness(claims, args.experiment, setting, res, data)
  stages.append(("robustness (seeds 1-2)", time.perf_counter() - t0))
  total = time.perf_counter() - start
  for stage, seconds in stages:
    print(f"  {stage}: {seconds / 60:.1f} min", flush=True)
  print(f"{args.experiment} full size on {name}: {total / 60:.1f} min in all "
        f"(figures in {out})")
  for c in claims:
    print(f"  {c.status:8s} {c.item}: {c.claim}")


if __name__ == "__main__":
  main()
