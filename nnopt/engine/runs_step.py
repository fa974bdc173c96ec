"""The compiled programs of a runs axis: ``jit(vmap(step))`` per group, the
host batches that feed it, and the vmapped evaluation."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from nnopt.engine import parallel
from nnopt.engine.runs_group import (DATA_AXIS, RUNS_AXIS, RunSlot,
                                     axis_size, batch_sharding,
                                     stacked_sharding)
from nnopt.engine.step import (accumulating, check_needs, make_eval_step,
                               make_train_step)
from nnopt.losses import Loss
from nnopt.stats.needs import Needs, required_needs


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


class GroupPrograms:
  """Compiles and caches the step and eval programs of the groups.

  Args:
    loss: the runs' loss.
    mesh: the ``('runs', 'data')`` mesh.
    factory: the optimizer factory ``(**hparams) -> transformation`` (None:
      the runs' optimizer objects are used as they are).
    needs: what to capture on top of what the optimizer declares.
    x_train: the training inputs (shape and dtype for the needs check).
  """

  def __init__(self, loss: Loss, mesh, factory: Callable[..., Any] | None,
               needs: Needs | None, x_train: np.ndarray):
    self.loss, self.mesh, self.factory = loss, mesh, factory
    self.extra_needs = Needs() if needs is None else needs
    self.x_spec = jax.ShapeDtypeStruct((1, *x_train.shape[1:]), x_train.dtype)
    self.compilations = 0
    self._steps: dict[Any, tuple[Callable, Any]] = {}
    self._needs: dict[Any, tuple[Needs, Any]] = {}
    self._evals: dict[Any, Callable] = {}
    self._single_evals: dict[Any, Callable] = {}
    self._chunk_cache: dict[Any, Any] = {}
    self._sharded = mesh.devices.size > 1
    self._data = axis_size(mesh, DATA_AXIS)
    self._runs = axis_size(mesh, RUNS_AXIS)

  def needs_of(self, model, optimizer, params) -> Needs:
    needs = required_needs(optimizer, params).merge(self.extra_needs)
    check_needs(needs, model, self.loss, params, self.x_spec)
    return needs

  def _group_needs(self, group) -> Needs:
    if group.key not in self._needs:
      needs = self.needs_of(group.model, group.optimizer,
                            group.row_state(0).params)
      self._needs[group.key] = (needs, group.optimizer)  # keeps the id alive
    return self._needs[group.key][0]

  def _count(self) -> None:
    self.compilations += 1

  def step(self, group, per_run: bool) -> Callable:
    """``(state, batch, sums, hparams) -> (state, metrics, sums)``, stacked."""
    needs = self._group_needs(group)
    # One row: the run's own step between a squeeze and an expand, which XLA
    # compiles like the engine's step (vmap over one row costs ~15 % on CPU).
    single = len(group.members) == 1 and self._runs == 1
    key = (group.key, needs, per_run, single)
    if key in self._steps:
      return self._steps[key][0]
    model, loss, fixed = group.model, self.loss, group.optimizer
    factory = None if group.custom else self.factory

    def one_run(state, batch, sums, hparams):
      optimizer = fixed
      if factory is not None:
        try:
          optimizer = factory(**hparams)
        except jax.errors.ConcretizationTypeError as e:
          raise ValueError(
              f"the optimizer factory cannot take {sorted(hparams)} as "
              f"traced values (it branches on them in Python: "
              f"{_first_line(e)}); inject them with optax.inject_hyperparams "
              "instead") from None
      step = accumulating(make_train_step(model, loss, optimizer, needs,
                                          on_trace=self._count))
      return step(state, batch, sums)

    if single:
      def fn(state, batch, sums, hparams):
        row = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
        out = one_run(row(state), row(batch) if per_run else batch, row(sums),
                      row(hparams))
        return jax.tree.map(lambda a: a[None], out)
    else:
      fn = jax.vmap(one_run, in_axes=(0, 0 if per_run else None, 0, 0))
    if self._sharded:
      stacked = stacked_sharding(self.mesh)
      fn = jax.jit(fn, in_shardings=(stacked, batch_sharding(self.mesh, per_run),
                                     stacked, stacked),
                   out_shardings=(stacked, stacked, stacked))
    else:
      fn = jax.jit(fn)
    self._steps[key] = (fn, fixed)
    return fn

  # -- batches -----------------------------------------------------------------

  def _host_batch(self, slot: RunSlot, draw, dataset, augment) -> dict:
    indices, mask = draw
    xb = dataset.x_train[indices]
    if augment is not None:
      xb = augment(xb, np.random.default_rng([slot.spec.seed, slot.step]))
    return {"x": xb, "y": dataset.y_train[indices],
            "weights": mask.astype(np.float32, copy=False)}

  def _padded(self, rows: int) -> int:
    return -(-rows // self._data) * self._data

  def batch(self, group, dataset, augment) -> tuple[dict, bool]:
    """The group's next batch and whether it is per run (else shared).

    Runs that share seed, step and sampler position draw the same indices:
    the batch is then built and sent once for the whole group.
    """
    members = group.members
    first = members[0]
    where = lambda m: (m.spec.seed, m.step, m.sampler.epoch,
                       m.sampler.position, m.sampler.batch_size)
    shared = all(where(m) == where(first) for m in members)
    draws = [m.sampler.next_batch() for m in members]
    if shared:
      one = self._host_batch(first, draws[0], dataset, augment)
      return parallel.pad_batch(one, self._padded(len(one["weights"]))), False
    batches = [self._host_batch(m, d, dataset, augment)
               for m, d in zip(members, draws)]
    size = self._padded(max(len(b["weights"]) for b in batches))
    batches = [parallel.pad_batch(b, size) for b in batches]
    batches += [batches[0]] * (group.rows - len(batches))
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}, True

  # -- evaluation --------------------------------------------------------------

  def _chunks(self, dataset, split: str, eval_batch_size: int) -> list:
    """The split in padded evaluation batches, placed on the mesh once."""
    key = (id(dataset), split, eval_batch_size)
    if key not in self._chunk_cache:
      x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
      size = self._padded(min(eval_batch_size, len(x)))
      chunks = []
      for start in range(0, len(x), size):
        idx = np.arange(start, min(start + size, len(x)))
        batch = parallel.pad_batch({"x": x[idx], "y": y[idx], "weights":
                                    np.ones(len(idx), np.float32)}, size)
        chunks.append(jax.device_put(
            batch, batch_sharding(self.mesh, False) if self._sharded
            else None))
      self._chunk_cache[key] = (dataset, chunks)  # keeps the id alive
    return self._chunk_cache[key][1]

  def _group_eval(self, group, split: str, dataset, eval_batch_size: int):
    cache = group.evals
    if split not in cache:
      model = group.model
      if model not in self._evals:
        fn = jax.vmap(make_eval_step(model, self.loss), in_axes=(0, None, 0))
        if self._sharded:
          stacked = stacked_sharding(self.mesh)
          fn = jax.jit(fn, in_shardings=(stacked, batch_sharding(self.mesh, False),
                                         stacked), out_shardings=stacked)
        else:
          fn = jax.jit(fn)
        self._evals[model] = fn
      totals = None
      for batch in self._chunks(dataset, split, eval_batch_size):
        sums = self._evals[model](group.state.params, batch,
                                  group.state.model_state)
        totals = sums if totals is None else {
            k: totals[k] + sums[k] for k in sums}
      cache[split] = totals  # on the device; fetched with the step's sums
    return cache[split]

  def group_evals(self, group, splits, dataset, eval_batch_size: int):
    """Starts the group's evaluations (device arrays, ``{split: sums}``)."""
    return {split: self._group_eval(group, split, dataset, eval_batch_size)
            for split in splits}

  def evaluate(self, slot: RunSlot, split: str, dataset, eval_batch_size: int,
               fetched: dict[str, Any] | None = None) -> dict[str, float]:
    """Mean loss (and accuracy) of the run's current parameters on a split.

    ``fetched`` holds the group's evaluations already on the host
    (:meth:`group_evals`); a run that left its group is evaluated alone.
    """
    if fetched is not None and split in fetched and slot.group is not None \
        and not slot.changed:
      totals = {k: float(v[slot.row]) for k, v in fetched[split].items()}
    else:
      if slot.model not in self._single_evals:
        self._single_evals[slot.model] = jax.jit(
            make_eval_step(slot.model, self.loss))
      fn = self._single_evals[slot.model]
      totals = {}
      for batch in self._chunks(dataset, split, eval_batch_size):
        sums = jax.device_get(fn(slot.state.params, batch,
                                 slot.state.model_state))
        for k, v in sums.items():
          totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count")
    return {f"{split}_{k}": v / count for k, v in totals.items()}


__all__ = ["GroupPrograms"]
