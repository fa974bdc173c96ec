"""The runs axis vs one engine run at a time (issue 13's benchmarks).

Each line runs nnopt's :class:`~nnopt.engine.runs.RunsTrainer` (R runs as one
program per architecture) and R runs of :class:`~nnopt.engine.trainer.Trainer`
in this process and prints the ratio of wall times (compilation included on
both sides: a seed study pays it once per program, a loop of runs once per
run, as the theses' scripts did):

* ``sensli``: SensLI on the spiral, the Exp2 schedule (FNN 2-5-2, full batch,
  lr 0.2, one insertion) cut to ``--sensli-epochs`` epochs, 40 runs
  (target >= 15x);
* ``frobenius``: Kreis Exp1's grid, MLP 784-100-100-100-10, batch 100, 30
  step sizes of ``frobenius_sgd``, 200 steps (target >= 3x), on Fashion-MNIST
  when its files are installed, else on synthetic 784-d data;
* ``mgopt``: 50 seeds of the MG/Opt R1 quadratic (Fig 3.1), one vmapped
  program vs a loop over seeds (target >= 10x);
* ``single``: one run through the runs axis vs the engine's Trainer, per step
  after compilation (target <= 1.05x);
* ``inverses``: per-device inverse FLOPs of the distributed preconditioner
  on 8 simulated devices (``experiments/bench/distributed_inverses.py``).

    python experiments/bench/runs.py [--only sensli,single] [--engine-runs N]

``--engine-runs N`` times only N of the single runs and scales to all of them
(said in the output).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np
import optax

from nnopt import growth, losses
from nnopt import preconditioning as pc
from nnopt.data import Dataset, DatasetError, load_dataset
from nnopt.engine.runs import RunSpec, RunsTrainer
from nnopt.engine.trainer import NonFiniteLossError, Trainer
from nnopt.models import FNN

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import StepTimer  # pylint: disable=wrong-import-position

CE = losses.softmax_cross_entropy


def _seconds(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def _engine_loop(make, n_all: int, n_timed: int | None) -> tuple[float, str]:
  """Seconds of ``n_all`` engine runs (evenly spaced ``n_timed`` of them,
  scaled); a run that diverges ends there, as on the runs axis."""
  n = n_all if not n_timed else min(n_timed, n_all)
  chosen = np.unique(np.linspace(0, n_all - 1, n).round().astype(int))

  def one(i):
    try:
      make(i).fit()
    except NonFiniteLossError:
      pass

  seconds = sum(_seconds(lambda i=i: one(i)) for i in chosen)
  note = "" if len(chosen) == n_all else (
      f" (timed {len(chosen)} of {n_all} evenly spaced, scaled)")
  return seconds * n_all / len(chosen), note


def bench_sensli(epochs: int, engine_runs: int | None) -> str:
  data = load_dataset("spiral", seed=0)
  model = FNN((5, 2), init_scheme="pytorch")
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=0.2)
  at = [epochs // 3]

  def hooks(spec):
    return [growth.SensLI(CE, data.x_train, data.y_train, at_epochs=at,
                          mode="epoch", batch_size=len(data.x_train),
                          seed=spec.seed)]

  kw = dict(batch_size=None, num_epochs=epochs, eval_every=1, progress=False)
  runs = 40
  together = _seconds(lambda: RunsTrainer(model, CE, base, data, runs=runs,
                                          hooks=hooks, **kw).fit())
  alone, note = _engine_loop(
      lambda i: Trainer(model, CE, base, data, seed=i,
                        hooks=hooks(RunSpec(seed=i)), **kw), runs, engine_runs)
  return (f"sensli spiral, {runs} runs x {epochs} epochs: runs axis "
          f"{together:.1f} s, engine loop {alone:.1f} s{note}: "
          f"{alone / together:.1f}x (target >= 15x)")


def _mnist_like() -> tuple[Dataset, str]:
  try:
    return load_dataset("fashion_mnist", flatten=True), "Fashion-MNIST"
  except (DatasetError, TypeError):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=6000).astype(np.int32)
    return Dataset(x_train=x, y_train=y, x_test=x[:1000], y_test=y[:1000],
                   name="synthetic784", num_classes=10), "synthetic 784-d data"


def bench_frobenius(engine_runs: int | None, steps: int = 200) -> str:
  data, name = _mnist_like()
  model = FNN((100, 100, 100, 10), activation="relu", init_scheme="pytorch")
  grid = np.logspace(0, -5, 30)

  def factory(learning_rate):
    return pc.frobenius_sgd(learning_rate, damping_x=1e-2, damping_y=1e-2)

  kw = dict(batch_size=100, num_steps=steps, log_every=steps, progress=False)
  specs = [RunSpec(seed=0, hparams={"learning_rate": float(lr)})
           for lr in grid]
  together = _seconds(lambda: RunsTrainer(model, CE, factory, data,
                                          runs=specs, **kw).fit())
  alone, note = _engine_loop(
      lambda i: Trainer(model, CE, factory(float(grid[i])), data, seed=0,
                        **kw), len(grid), engine_runs)
  return (f"frobenius Exp1 grid on {name}, 30 step sizes x {steps} steps: "
          f"runs axis {together:.1f} s, engine loop {alone:.1f} s{note}: "
          f"{alone / together:.1f}x (target >= 3x)")


def bench_single(repeats: int = 5, steps: int = 2600) -> str:
  data = load_dataset("digits", flatten=True)
  model = FNN((128, 64, 10), activation="relu")
  kw = dict(batch_size=64, num_steps=steps + 1, log_every=50, progress=False)
  engine, runs_axis = [], []
  for _ in range(repeats):
    timer = StepTimer(100, steps)
    Trainer(model, CE, optax.adam(1e-3), data, hooks=[timer], **kw).fit()
    engine.append(timer)
    timer = StepTimer(100, steps)
    RunsTrainer(model, CE, optax.adam(1e-3), data, runs=1,
                hooks=lambda spec, t=timer: [t], **kw).fit()
    runs_axis.append(timer)
  wall = statistics.median(r.seconds / e.seconds
                           for r, e in zip(runs_axis, engine))
  cpu = statistics.median(r.cpu_seconds / e.cpu_seconds
                          for r, e in zip(runs_axis, engine))
  return (f"single run, MLP 64-128-64-10 on digits, B=64, steps 100-{steps}: "
          f"runs axis / engine time per step {wall:.3f} wall, {cpu:.3f} "
          f"process CPU (medians of {repeats}, interleaved; target <= 1.05)")


def bench_inverses() -> str:
  try:
    import distributed_inverses  # pylint: disable=g-import-not-at-top
  except ImportError:
    return "inverses: experiments/bench/distributed_inverses.py is missing"
  distributed_inverses.main()  # prints one line per network
  return "inverses: done"


def bench_mgopt(seeds: int = 50) -> str:
  from experiments import reproduce_mgopt as mg  # pylint: disable=g-import-not-at-top
  return mg.bench_line(seeds)


BENCHES = ("sensli", "frobenius", "mgopt", "single", "inverses")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default=",".join(BENCHES))
  parser.add_argument("--engine-runs", type=int, default=None)
  parser.add_argument("--sensli-epochs", type=int, default=300)
  args = parser.parse_args(argv)
  for name in args.only.split(","):
    if name == "sensli":
      line = bench_sensli(args.sensli_epochs, args.engine_runs)
    elif name == "frobenius":
      line = bench_frobenius(args.engine_runs)
    elif name == "mgopt":
      line = bench_mgopt()
    elif name == "single":
      line = bench_single()
    elif name == "inverses":
      line = bench_inverses()
    else:
      raise SystemExit(f"unknown bench {name!r}; choose from {BENCHES}")
    print(line, flush=True)


if __name__ == "__main__":
  main()
