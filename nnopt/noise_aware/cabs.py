"""Coupled adaptive batch size (CABS, Balles ch. 4) and the competitor rule,
as hooks on the engine loop.

The rules themselves are the pure functions of
:mod:`nnopt.noise_aware.cabs_rule`; the hooks here read the batch statistics
recorded in the optimizer state, feed them to a rule and set the sampler's
next batch size.

Usage with the engine (the optimizer must record the variance, see
:func:`nnopt.noise_aware.batch_variance.track_batch_variance`; it declares
that it needs the layer statistics, so the engine captures them):

.. code-block:: python

    hook = CABS(learning_rate=0.1)
    trainer = Trainer(model, loss, cabs_sgd(0.1), data, batch_size=16,
                      num_steps=1000, buckets=hook.buckets(num_devices=8),
                      hooks=[hook])

Each step costs one device→host read of two scalars (f and tr Σ̂) for the
host-side decision; the step compiles once per bucket. With data
parallelism the statistics are those of the global batch.

By default (``lag=0``, Algorithm 1) the size of step k+1 is decided from step
k's statistics, so the host waits for step k to finish before it can prepare
and dispatch step k+1, and the device idles meanwhile. With ``lag=1`` the
size of step k+1 is decided from step k−1's statistics, which are ready while
step k still runs: the read overlaps with computation and the loop keeps the
device busy. This is a one-step delay of the rule (not the thesis'
behaviour): the EMAs see the same sequence of statistics, one step later;
the first step after the start (or a resume) keeps the current size.
"""

from __future__ import annotations

from typing import Any

import jax

from nnopt.data import default_buckets
from nnopt.hooks import Hook
from nnopt.noise_aware.batch_variance import find_batch_variance
from nnopt.noise_aware.cabs_rule import (BatchRuleState, CABSError, cabs_next,
                                         competitor_next)
from nnopt.noise_aware.ema import check_beta


class _BatchRuleHook(Hook):
  """Shared machinery: read the recorded statistics, set the next size, log."""

  prefix = "cabs"

  def __init__(self, *, mu: float, m_min: int, m_max: int, lag: int = 0):
    check_beta(mu, "mu")
    if not 2 <= int(m_min) <= int(m_max):
      raise CABSError(f"need 2 <= m_min <= m_max (a variance needs 2 "
                      f"examples), got m_min={m_min}, m_max={m_max}")
    if lag not in (0, 1):
      raise CABSError(f"lag must be 0 (Algorithm 1) or 1, got {lag!r}")
    self.mu, self.m_min, self.m_max = float(mu), int(m_min), int(m_max)
    self.lag = int(lag)
    self.state = BatchRuleState(batch_size=self.m_min)
    self._pending = None  # lag=1: the last step's statistics, on device

  def buckets(self, num_devices: int | None = None, max_sizes: int = 8):
    """Batch-size buckets from ``m_min`` to ``m_max`` (one compile each)."""
    n = jax.device_count() if num_devices is None else num_devices
    return default_buckets(self.m_max, min_batch=self.m_min,
                           max_sizes=max_sizes, multiple_of=n)

  def _limit(self, run) -> int:
    limit = min(self.m_max, run.sampler.num_examples)
    if run.sampler.buckets:
      limit = min(limit, run.sampler.buckets[-1])
    return limit

  def on_start(self, run) -> None:
    self._pending = None
    run.sampler.set_batch_size(min(self.state.batch_size, self._limit(run)))

  def _inputs(self, recorded, metrics) -> dict[str, Any]:
    """The device scalars the rule reads (few: each costs a transfer)."""
    raise NotImplementedError

  def _update(self, values: dict[str, float]) -> BatchRuleState:
    raise NotImplementedError

  def on_step(self, run, metrics) -> None:
    recorded = find_batch_variance(run.state.opt_state)
    if recorded is None:
      raise CABSError(
          f"{type(self).__name__} needs the batch variance in the optimizer "
          "state: use nnopt.noise_aware.cabs_sgd(lr) or chain "
          "nnopt.noise_aware.track_batch_variance() in front of the "
          "optimizer")
    current = self._inputs(recorded, metrics)
    used = run.sampler.batch_size
    if self.lag:
      for leaf in jax.tree.leaves(current):
        leaf.copy_to_host_async()  # ready when the next step reads it
      current, self._pending = self._pending, current
    log = {f"{self.prefix}_batch_size": used}
    if current is not None:
      # float() reads on the calling thread; jax.device_get would first
      # schedule an asynchronous copy and wait for it (a thread hop that
      # costs ~0.2 ms per step on CPU).
      values = {k: float(v) for k, v in current.items()}
      self.state = self._update(values)
      log.update({f"{self.prefix}_{k}": v for k, v in values.items()})
    size = min(self.state.batch_size, self._limit(run))
    run.sampler.set_batch_size(size)
    log.update({
        f"{self.prefix}_next_batch_size": size,
        f"{self.prefix}_var_avg": self.state.var_avg,
        f"{self.prefix}_denom_avg": self.state.denom_avg,
        "examples_seen": int(run.sampler.examples_seen),
    })
    run.log.update(log)

  def state_dict(self) -> dict[str, Any]:
    return dict(self.state._asdict())

  def load_state_dict(self, state, run) -> None:
    self.state = BatchRuleState(float(state["var_avg"]),
                                float(state["denom_avg"]),
                                int(state["batch_size"]))
    run.sampler.set_batch_size(min(self.state.batch_size, self._limit(run)))


class CABS(_BatchRuleHook):
  """The CABS rule (Alg. 1) as an engine hook.

  Args:
    learning_rate: the constant SGD step α of the optimizer (the rule couples
      the batch size to it).
    mu: EMA constant of σ̄² and f̄ (ref-code default 0.95).
    m_min, m_max: batch-size bounds (ref-code defaults 16, 2048).
    eps: added to f̄ in the denominator.
    c: multiplier of the rule.
    lag: 0 (default, Algorithm 1: the next size from this step's statistics)
      or 1 (from the previous step's, so that the device→host read overlaps
      with the running step; see the module docstring).

  References:
    Balles (2021), (4.20), Algorithm 1.
  """

  prefix = "cabs"

  def __init__(self, learning_rate: float, *, mu: float = 0.95,
               m_min: int = 16, m_max: int = 2048, eps: float = 0.0,
               c: float = 1.0, lag: int = 0):
    super().__init__(mu=mu, m_min=m_min, m_max=m_max, lag=lag)
    if not float(learning_rate) > 0:
      raise CABSError(f"learning_rate must be > 0, got {learning_rate!r}")
    self.learning_rate, self.eps, self.c = float(learning_rate), eps, c

  def _inputs(self, recorded, metrics):
    return {"trace": recorded.trace, "loss": metrics["loss"]}

  def _update(self, values):
    return cabs_next(self.state, values["loss"], values["trace"],
                     self.learning_rate, mu=self.mu, m_min=self.m_min,
                     m_max=self.m_max, eps=self.eps, c=self.c)


class Competitor(_BatchRuleHook):
  """The competitor rule ``m = σ̄²/(θ_c² N̄)`` (§3.7) as an engine hook.

  Args:
    theta: the tolerance θ_c (thesis grid {0.6, 0.8, 1.0}).
    mu, m_min, m_max, lag: as for :class:`CABS`.

  References:
    Balles (2021), (4.17)–(4.18), §4.4.4.
  """

  prefix = "competitor"

  def __init__(self, theta: float = 1.0, *, mu: float = 0.95, m_min: int = 16,
               m_max: int = 2048, lag: int = 0):
    super().__init__(mu=mu, m_min=m_min, m_max=m_max, lag=lag)
    if not float(theta) > 0:
      raise CABSError(f"theta must be > 0, got {theta!r}")
    self.theta = float(theta)

  def _inputs(self, recorded, metrics):
    del metrics
    return {"trace": recorded.trace, "grad_sq_norm": recorded.grad_sq_norm}

  def _update(self, values):
    return competitor_next(self.state, values["trace"],
                           values["grad_sq_norm"], self.theta, mu=self.mu,
                           m_min=self.m_min, m_max=self.m_max)


__all__ = ["CABS", "Competitor"]
