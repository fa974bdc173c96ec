"""Shared timing helpers of the benchmarks."""

from __future__ import annotations

import statistics
import time

import jax

from nnopt.hooks import Hook


class StepTimer(Hook):
  """Times the steps after ``warmup`` (compilation) up to ``end`` of an engine
  run; the final evaluation and log of the run are not part of it.

  ``seconds`` is wall time; ``cpu_seconds`` is this process's CPU time over
  the same steps (all its threads), which other jobs on a shared machine do
  not inflate.
  """

  def __init__(self, warmup: int, end: int):
    self.warmup, self.end, self.start, self.seconds = warmup, end, None, None
    self.cpu_start = self.cpu_seconds = None

  def on_step(self, run, metrics):
    del metrics
    if run.step == self.warmup:
      jax.block_until_ready(run.state)
      self.start, self.cpu_start = time.perf_counter(), time.process_time()
    elif run.step == self.end:
      jax.block_until_ready(run.state)
      self.seconds = time.perf_counter() - self.start
      self.cpu_seconds = time.process_time() - self.cpu_start


def time_call(fn, *args, repeats: int = 5, number: int = 20) -> float:
  """Median seconds per call of a (jitted) ``fn(*args)`` after one warm-up."""
  jax.block_until_ready(fn(*args))
  samples = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(number):
      out = fn(*args)
    jax.block_until_ready(out)
    samples.append((time.perf_counter() - t0) / number)
  return statistics.median(samples)


def time_calls(fns: dict, *args, repeats: int = 15,
               number: int = 10) -> dict:
  """Median seconds per call of each jitted ``fn(*args)``, interleaved.

  Every repetition times ``number`` calls of each function in turn, so that
  a shared machine's varying load affects all of them alike (ratios between
  them stay meaningful where separate ``time_call`` runs would not).
  """
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
  samples = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      for _ in range(number):
        out = fn(*args)
      jax.block_until_ready(out)
      samples[name].append((time.perf_counter() - t0) / number)
  return {name: statistics.median(s) for name, s in samples.items()}


def peak_bytes(jitted, *args) -> int | None:
  """Temporary + output bytes of a compiled function (XLA memory analysis)."""
  try:
    stats = jitted.lower(*args).compile().memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if stats is None:
    return None
  return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)


def table(rows, header) -> str:
  widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
  line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))
  return "\n".join([line(header), line(["-" * w for w in widths])]
                   + [line(r) for r in rows])
