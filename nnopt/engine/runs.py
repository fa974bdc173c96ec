"""Many runs as one compiled program: the engine's runs axis.

Seed studies and step-size grids train R independent runs of one setting.
:class:`RunsTrainer` trains them together: the runs that share an
architecture and an optimizer function form a :class:`~nnopt.engine.
runs_group.Group` whose states are stacked along a leading axis, and one
``jit(vmap(step))`` advances all of them per host step.

.. code-block:: python

    trainer = RunsTrainer(
        model, losses.softmax_cross_entropy,
        lambda learning_rate: optax.sgd(learning_rate, momentum=0.9),
        dataset, runs=[RunSpec(seed=s, hparams={'learning_rate': lr})
                       for s in range(5) for lr in (0.3, 0.1, 0.03)],
        batch_size=100, num_epochs=3, workdir='runs/grid')
    slots = trainer.fit()          # slots[i].history: run i's records

* **Same runs.** Run ``i`` is exactly the run ``Trainer(..., seed=
  spec.seed)`` with its hyperparameters: same initialization, data order and
  step keys (tested to 1e-5 after 50 steps).
* **Hyperparameters.** ``optimizer`` is an optax transformation or a factory
  ``(**hparams) -> transformation``. A factory is called inside the vmapped
  step with each run's hyperparameters as traced float32 scalars, so any
  float argument of any factory (learning rate, damping, β, λ, …) varies per
  run in one program. With a transformation, ``hparams`` name values injected
  by ``optax.inject_hyperparams`` and are set in each run's state.
* **Mesh.** The mesh axis ``'runs'`` shards the runs, ``'data'`` each run's
  batch (:func:`~nnopt.engine.runs_group.runs_mesh`); a group is padded to a
  multiple of the runs axis with copies of its first run. Runs that share
  their seed share the data order, and the batch is then sent once.
* **Hooks.** Each run has its own hook instances (``hooks`` is a factory
  ``spec -> hooks``, or a list that is deep-copied per run) and its own
  sampler; a hook sees its run as a :class:`nnopt.hooks.RunView`. A run whose
  architecture or optimizer a hook swaps leaves its group and joins the group
  of its new setting (one compilation per architecture: SensLI's choices
  split the runs into groups); a run whose batch size differs (CABS) steps
  in its group with its batch padded (weight 0) to the group's largest.
* **Files.** ``runs.json``, and per run a metrics stream and checkpoints
  (:mod:`nnopt.engine.runs_io`); ``fit(resume=True)`` resumes every run from
  its newest intact checkpoint. A run whose loss turns non-finite stops
  (``nonfinite_step`` in its last record) while the others go on.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import numpy as np
import optax
import tqdm

from nnopt.data import EpochSampler
from nnopt.engine import runs_io
from nnopt.engine.checkpoint import Checkpointer
from nnopt.engine.resume import (ResumeError, Warn, print_warning,
                                 restore_run, truncate_metrics)
from nnopt.engine.runs_group import (RowMetrics, RunSlot, RunSpec,
                                     build_group, group_key, run_specs,
                                     runs_mesh, stacked_sharding,
                                     with_injected)
from nnopt.engine.runs_step import GroupPrograms
from nnopt.engine.signals import Interrupted, deferred_signals
from nnopt.engine.step import init_train_state, metric_names
from nnopt.engine.trainer import NonFiniteLossError
from nnopt.hooks import Hook
from nnopt.losses import Loss
from nnopt.models.apply import init_variables

Factory = Callable[..., optax.GradientTransformation]


class RunsTrainer:
  """Trains R runs of one setting as one program per architecture.

  Args:
    model, loss, dataset: as :class:`nnopt.engine.trainer.Trainer`.
    optimizer: an optax transformation, or a factory ``(**hparams) ->
      transformation`` called with each run's hyperparameters.
    runs: a number R (seeds 0..R-1), or seeds, or :class:`RunSpec` s.
    hooks: per-run hooks: a factory ``RunSpec -> hooks`` or a list that is
      deep-copied for every run.
    mesh: a ``('runs', 'data')`` mesh (default: every device on ``'runs'``).
    params: initial parameters of every run, or ``RunSpec -> params``
      (default: ``model.init`` with the run's seed).
    on_nonfinite: ``'stop_run'`` (the run stops; the others go on) or
      ``'raise'`` (:class:`NonFiniteLossError`, as a single run).
    batch_size, num_steps, num_epochs, buckets, needs, eval_every,
    eval_train, eval_batch_size, log_every, checkpoint_every, workdir,
    augment, progress, warn: as :class:`~nnopt.engine.trainer.Trainer`,
      for every run.
  """

  def __init__(self, model: nn.Module, loss: Loss,
               optimizer: optax.GradientTransformation | Factory, dataset, *,
               runs: int | Sequence[RunSpec | int], batch_size: int | None,
               num_steps: int | None = None, num_epochs: int | None = None,
               buckets: Sequence[int] | None = None, needs=None,
               hooks: Sequence[Hook] | Callable[[RunSpec], Sequence[Hook]]
               = (), eval_every: int | None = None, eval_train: bool = False,
               eval_batch_size: int = 1000, log_every: int = 1,
               checkpoint_every: int | None = None, workdir: str | None = None,
               mesh: jax.sharding.Mesh | None = None,
               params: Any = None,
               augment: Callable[[np.ndarray, np.random.Generator], np.ndarray]
               | None = None, progress: bool = True, warn: Warn | None = None,
               on_nonfinite: str = "stop_run"):
    if num_steps is None and num_epochs is None:
      raise ValueError("RunsTrainer needs num_steps or num_epochs")
    if checkpoint_every and not workdir:
      raise ValueError("checkpoint_every needs a workdir")
    if batch_size is not None and batch_size > len(dataset.x_train):
      raise ValueError(f"batch_size {batch_size} exceeds the "
                       f"{len(dataset.x_train)} training examples")
    if on_nonfinite not in ("stop_run", "raise"):
      raise ValueError(f"on_nonfinite must be 'stop_run' or 'raise', got "
                       f"{on_nonfinite!r}")
    if jax.process_count() > 1:
      raise ValueError("the runs axis runs in one process (one RunsTrainer "
                       "per host)")
    self.specs = run_specs(runs)
    self.model, self.loss, self.dataset = model, loss, dataset
    self.factory = (None if isinstance(optimizer, optax.GradientTransformation)
                    else optimizer)
    self.optimizer = optimizer
    self.batch_size, self.buckets = batch_size, buckets
    self.num_steps, self.num_epochs = num_steps, num_epochs
    self.hooks = hooks
    self.eval_every, self.eval_train = eval_every, eval_train
    self.eval_batch_size, self.log_every = eval_batch_size, log_every
    self.checkpoint_every, self.workdir = checkpoint_every, workdir
    self.mesh = runs_mesh() if mesh is None else mesh
    self.augment, self.progress = augment, progress
    self.initial_params = params
    self.warn = print_warning if warn is None else warn
    self.on_nonfinite = on_nonfinite
    self.programs = GroupPrograms(loss, self.mesh, self.factory, needs,
                                  dataset.x_train)
    self.groups = []
    self.slots: list[RunSlot] = []
    self._zero = {k: 0.0 for k in (*metric_names(loss), "count")}
    # As in Trainer: several simulated CPU devices in one process must not
    # run two programs at once.
    local = list(self.mesh.devices.flat)
    self._serialize = len(local) > 1 and local[0].platform == "cpu"
    # Fail at construction, not at the first step, when a need cannot be met.
    x = jax.ShapeDtypeStruct((1, *dataset.x_train.shape[1:]),
                             dataset.x_train.dtype)
    params = jax.eval_shape(lambda k, x: init_variables(model, k, x)[0],
                            jax.random.key(0), x)
    self.programs.needs_of(model, self._optimizer_for(self.specs[0]), params)

  def resume_step(self) -> int | None:
    """The earliest step ``fit(resume=True)`` continues a run from (None: no
    run has a checkpoint); reads the files only.

    Raises:
      ResumeError: no checkpoints are configured, the workdir's run list is
        not this one's, or a run's checkpoints cannot be resumed.
    """
    if not self.checkpoint_every:
      raise ResumeError("resume needs checkpoints, and these runs have none "
                        "(checkpoint_every is not set)")
    return runs_io.earliest_resume_step(self.workdir, self.specs,
                                        num_steps=self.num_steps,
                                        num_epochs=self.num_epochs)

  @property
  def num_compilations(self) -> int:
    return self.programs.compilations

  def _optimizer_for(self, spec: RunSpec) -> optax.GradientTransformation:
    if self.factory is not None:
      return self.factory(**{k: float(v) for k, v in spec.hparams.items()})
    return with_injected(self.optimizer, spec.hparams)

  def _hooks_for(self, spec: RunSpec) -> list[Hook]:
    if callable(self.hooks):
      return list(self.hooks(spec))
    return [copy.deepcopy(h) for h in self.hooks]

  # -- runs --------------------------------------------------------------------

  def _fresh_slot(self, index: int, spec: RunSpec, hooks) -> RunSlot:
    x = self.dataset.x_train
    key = jax.random.key(spec.seed)
    params, model_state = init_variables(self.model, key, x[:1])
    if self.initial_params is not None:
      params = (self.initial_params(spec) if callable(self.initial_params)
                else self.initial_params)
    optimizer = self._optimizer_for(spec)
    slot = RunSlot(index, spec, self.model, optimizer,
                   EpochSampler(len(x), self.batch_size, seed=spec.seed,
                                buckets=self.buckets), hooks, self.mesh)
    slot.state = init_train_state(params, optimizer, spec.seed, model_state)
    return slot

  def _make_slots(self, resume: bool) -> list[RunSlot]:
    if resume and not self.checkpoint_every:
      raise ResumeError("resume needs checkpoints, and these runs have none "
                        "(checkpoint_every is not set)")
    if self.workdir:
      if resume:
        runs_io.check_manifest(self.workdir, self.specs)
      else:
        runs_io.write_manifest(self.workdir, self.specs)
    slots = []
    for i, spec in enumerate(self.specs):
      hooks = self._hooks_for(spec)
      make = lambda i=i, spec=spec, hooks=hooks: self._fresh_slot(i, spec, hooks)
      label = spec.label(i)
      ckpt = (Checkpointer(os.path.join(runs_io.run_dir(self.workdir, label),
                                        "checkpoints"))
              if self.checkpoint_every else None)
      slot = (restore_run(ckpt, make, hooks, self.mesh,
                          num_steps=self.num_steps, num_epochs=self.num_epochs,
                          warn=self.warn) if resume else make())
      slot.ckpt = ckpt
      if self.workdir:
        truncate_metrics(os.path.join(runs_io.run_dir(self.workdir, label),
                                      "metrics.jsonl"), slot.step, self.warn)
      slots.append(slot)
    return slots

  def _done(self, slot: RunSlot) -> bool:
    if slot.stop or slot.finished:
      return True
    if self.num_steps is not None and slot.step >= self.num_steps:
      return True
    return self.num_epochs is not None and slot.epoch >= self.num_epochs

  def _regroup(self) -> None:
    """Rebuilds the groups that lost or gain runs (after hooks, stops)."""
    moving, kept = [], []
    for group in self.groups:
      if any(m.changed or self._done(m) for m in group.members):
        moving += group.members
      else:
        kept.append(group)
    for m in moving:
      m.detach()
    if not moving:
      return
    new_keys = {group_key(m) for m in moving if not self._done(m)}
    for group in [g for g in kept if g.key in new_keys]:
      kept.remove(group)
      for m in group.members:
        m.detach()
      moving += group.members
    self._place(moving, kept)

  def _place(self, moving: list[RunSlot], kept: list) -> None:
    """Groups the detached runs by architecture and optimizer; finishes the
    runs that are done."""
    by_key: dict[Any, list[RunSlot]] = {}
    for m in moving:
      if self._done(m):
        self._finish(m)
      else:
        by_key.setdefault(group_key(m), []).append(m)
    self.groups = kept + [build_group(sorted(ms, key=lambda m: m.index),
                                      self.mesh, self._zero)
                          for ms in by_key.values()]

  def _finish(self, slot: RunSlot) -> None:
    if slot.finished:
      return
    slot.finished = True
    if slot.ckpt is not None:
      slot.ckpt.save(slot.step, slot.state, runs_io.checkpoint_meta(slot, self.specs))
      slot.ckpt.close()

  # -- the loop ----------------------------------------------------------------

  def fit(self, *, resume: bool = False) -> list[RunSlot]:
    """Trains every run to its end; returns the runs (index order)."""
    self.slots = slots = self._make_slots(resume)
    for slot in slots:
      for hook in slot.hooks:
        hook.on_start(slot)
    self._stepping = {id(s): [h for h in s.hooks if type(h).on_step
                              is not Hook.on_step] for s in slots}
    self._place(slots, [])
    per_epoch = slots[0].sampler.steps_per_epoch
    total = (self.num_steps if self.num_steps is not None
             else self.num_epochs * per_epoch)
    bar = tqdm.tqdm(total=total, initial=min(s.step for s in slots),
                    disable=not self.progress, unit="step", leave=False)
    t0 = time.perf_counter()
    try:
      with deferred_signals(True) as flag:
        while self.groups:
          if flag.signum is not None:
            self._interrupt(flag.signum)
          for group in list(self.groups):
            self._step_group(group, t0)
          self._regroup()
          bar.update(1)
        if flag.signum is not None:
          self._interrupt(flag.signum)
    finally:
      bar.close()
      for slot in slots:
        if slot.ckpt is not None:
          slot.ckpt.close()
    return slots

  def _step_group(self, group, t0: float) -> None:
    members = group.members
    epochs = [m.sampler.epoch for m in members]
    batch, per_run = self.programs.batch(group, self.dataset, self.augment)
    fn = self.programs.step(group, per_run)
    group.state, metrics, group.sums = fn(group.state, batch, group.sums,
                                          group.hparams)
    group.advanced()
    if self._serialize:
      jax.block_until_ready(group.state)
    for row, (m, before) in enumerate(zip(members, epochs)):
      m.step += 1
      stepping = self._stepping[id(m)]
      if stepping:
        mine = RowMetrics(metrics, row)
        for hook in stepping:
          hook.on_step(m, mine)
      if m.sampler.epoch_done or m.sampler.epoch != before:
        for hook in m.hooks:
          hook.on_epoch_end(m)
    due = [m for m in members if self._done(m) or m.step % self.log_every == 0]
    if due:
      self._log(group, due, t0)
    if self.checkpoint_every:
      for m in members:
        if m.step % self.checkpoint_every == 0 and not m.finished:
          m.ckpt.save(m.step, m.state, runs_io.checkpoint_meta(m, self.specs))

  def _evaluating(self, m: RunSlot) -> bool:
    return self._done(m) or (self.eval_every is not None
                             and m.step % self.eval_every == 0)

  def _log(self, group, due: list[RunSlot], t0: float) -> None:
    splits = ("test", "train") if self.eval_train else ("test",)
    evals = (self.programs.group_evals(group, splits, self.dataset,
                                       self.eval_batch_size)
             if any(self._evaluating(m) and not m.changed for m in due)
             else {})
    # One transfer per log: the sums, the divergence flags, the evaluations.
    sums, bad, evals = jax.device_get(
        (group.sums, group.state.nonfinite_step, evals))
    reset = np.zeros(group.rows, bool)
    wall = time.perf_counter() - t0
    for m in due:
      row = m.row
      reset[row] = True
      record = runs_io.base_record(m, wall)
      record.update(runs_io.train_means(sums, row))
      if bad[row] >= 0 and not m.changed:
        if self.on_nonfinite == "raise":
          raise NonFiniteLossError(int(bad[row]), m.ckpt.latest_step()
                                   if m.ckpt else None)
        record["nonfinite_step"] = int(bad[row])
        m.stop = True
      elif self._evaluating(m):
        for split in splits:
          record.update(self.programs.evaluate(
              m, split, self.dataset, self.eval_batch_size, evals))
      record.update(m.log)
      m.log = {}
      m.history.append(record)
      runs_io.append_record(self.workdir, m.label, record)
    if reset.all():
      if group.zero_sums is None:
        group.zero_sums = jax.block_until_ready(jax.device_put(
            {k: np.zeros(group.rows, np.float32) for k in sums},
            stacked_sharding(self.mesh)))
      group.sums = group.zero_sums
    else:
      group.sums = jax.block_until_ready(jax.device_put(
          {k: np.where(reset, 0.0, v).astype(np.float32)
           for k, v in sums.items()}, stacked_sharding(self.mesh)))

  def _interrupt(self, signum: int) -> None:
    saved = None
    for slot in self.slots:
      if slot.ckpt is not None and slot.step > 0 and not slot.finished and \
          slot.ckpt.save(slot.step, slot.state, runs_io.checkpoint_meta(slot, self.specs)):
        saved = slot.step
    raise Interrupted(signum, max(s.step for s in self.slots), saved,
                      self.workdir and os.path.join(self.workdir, "runs"))

  def spread(self, key: str = "train_loss") -> list[dict[str, float]]:
    """Mean and spread of ``key`` over the runs, per logged step."""
    return runs_io.spread([s.history for s in self.slots], key)


__all__ = ["RunSpec", "RunsTrainer", "runs_mesh", "with_injected"]
