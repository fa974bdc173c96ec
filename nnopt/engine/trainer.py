"""The engine: one jitted, data-parallel step and one loop with hooks.

.. code-block:: python

    trainer = Trainer(model, losses.softmax_cross_entropy, optax.adam(1e-3),
                      dataset, batch_size=128, num_epochs=10, eval_every=100,
                      workdir='runs/adam')
    run = trainer.fit()

Methods that change the run between steps (layer insertion, adaptive batch
sizes, multilevel cycles) are :class:`Hook` s: they may replace the
architecture, parameters, optimizer (state) or batch size through
:class:`Run`; the loop then uses the step compiled for the new setting (one
compilation per architecture/optimizer/batch bucket, cached).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import numpy as np
import optax
import tqdm

from nnopt.data import EpochSampler
from nnopt.engine import parallel
from nnopt.engine.checkpoint import Checkpointer
from nnopt.engine.resume import (ResumeError, Warn, print_warning,
                                 restore_run, resume_point, truncate_metrics)
from nnopt.engine.run import Run
from nnopt.engine.signals import Interrupted, deferred_signals
from nnopt.engine.step import (accumulating, check_needs, init_train_state,
                               make_eval_step, make_train_step, metric_names)
from nnopt.hooks import Hook
from nnopt.losses import Loss
from nnopt.models.apply import init_variables, initial_model_state
from nnopt.stats.needs import Needs, required_needs


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite."""

  def __init__(self, step: int, checkpoint_step: int | None):
    kept = ("no checkpoint was written" if checkpoint_step is None else
            f"the last good checkpoint (step {checkpoint_step}) is kept")
    super().__init__(f"training loss is not finite at step {step}; stopped "
                     f"the run; {kept}")
    self.step = step


class Trainer:
  """Trains a model on a dataset with an optax optimizer; see module doc.

  Args:
    model: flax module (an nnopt model).
    loss: an :class:`nnopt.losses.Loss`.
    optimizer: any optax transformation (extra args: see :mod:`nnopt.engine.step`).
    dataset: an :class:`nnopt.data.Dataset`.
    batch_size: global batch size; None for full batch.
    num_steps / num_epochs: when to stop (the first reached).
    seed: seeds initialization, sampling and the step's PRNG.
    buckets: batch-size buckets for dynamic batch sizes (each bucket
      compiles once).
    needs: what the step captures beyond what the optimizer declares
      (:class:`nnopt.stats.needs.Needs`; merged with
      ``required_needs(optimizer, params)``, which the engine reads from
      every optimizer it runs, also after a hook swaps it). Only needed for
      a transform of your own that reads ``stats`` without declaring it.
    hooks: loop hooks.
    eval_every: evaluate on the test split every this many steps (and at the
      end); None for only at the end.
    eval_train: also evaluate the full training loss.
    eval_batch_size: evaluation chunk size.
    log_every: write a metrics record every this many steps.
    checkpoint_every: save a checkpoint every this many steps (needs
      ``workdir``).
    workdir: where ``metrics.jsonl`` and ``checkpoints/`` go.
    mesh: device mesh (default: all devices on a ``'data'`` axis).
    params: initial parameters (default: ``model.init`` with ``seed``).
    model_state: initial non-parameter collections, e.g. ``{'batch_stats':
      …}`` (default: from ``model.init``; ``{}`` for models without any).
    augment: ``(x_batch, np.random.Generator) -> x_batch`` applied on the host.
    progress: show a tqdm progress bar.
    warn: where one-line warnings go (default: ``nnopt: warning: …`` on
      stderr), e.g. a resume past a corrupt checkpoint.

  ``fit`` stops at a step boundary on SIGINT/SIGTERM and saves a checkpoint
  there when checkpointing is on (:mod:`nnopt.engine.signals`); it also saves
  one at the last step.
  """

  def __init__(self, model: nn.Module, loss: Loss,
               optimizer: optax.GradientTransformation, dataset, *,
               batch_size: int | None, num_steps: int | None = None,
               num_epochs: int | None = None, seed: int = 0,
               buckets: Sequence[int] | None = None,
               needs: Needs = Needs(), hooks: Sequence[Hook] = (),
               eval_every: int | None = None, eval_train: bool = False,
               eval_batch_size: int = 1000, log_every: int = 1,
               checkpoint_every: int | None = None, workdir: str | None = None,
               mesh: jax.sharding.Mesh | None = None, params: Any = None,
               model_state: Any = None,
               augment: Callable[[np.ndarray, np.random.Generator], np.ndarray]
               | None = None, progress: bool = True, warn: Warn | None = None):
    if num_steps is None and num_epochs is None:
      raise ValueError("Trainer needs num_steps or num_epochs")
    if checkpoint_every and not workdir:
      raise ValueError("checkpoint_every needs a workdir")
    if batch_size is not None and batch_size > len(dataset.x_train):
      raise ValueError(f"batch_size {batch_size} exceeds the "
                       f"{len(dataset.x_train)} training examples")
    self.warn = print_warning if warn is None else warn
    self.model, self.loss, self.optimizer = model, loss, optimizer
    self.dataset = dataset
    self.batch_size, self.buckets = batch_size, buckets
    self.num_steps, self.num_epochs, self.seed = num_steps, num_epochs, seed
    self.needs, self.hooks = needs, list(hooks)
    self.eval_every, self.eval_train = eval_every, eval_train
    self.eval_batch_size, self.log_every = eval_batch_size, log_every
    self.checkpoint_every, self.workdir = checkpoint_every, workdir
    self.mesh = parallel.data_mesh() if mesh is None else mesh
    self.initial_params, self.augment, self.progress = params, augment, progress
    self.initial_model_state = model_state
    self.compilations: dict[Any, int] = {}
    self.history: list[dict[str, Any]] = []
    self._step_fns: dict[Any, Callable] = {}
    self._last_step: tuple[Any, Any, Callable] | None = None
    # Several simulated CPU devices in one process share one thread pool: two
    # programs in flight at once can starve each other's all-reduce
    # rendezvous (XLA then aborts the process). Such meshes run one step at a
    # time; accelerators and one-device-per-process CPU runs stay async.
    local = [d for d in self.mesh.devices.flat
             if d.process_index == jax.process_index()]
    self._serialize_steps = len(local) > 1 and local[0].platform == "cpu"
    self._single_process = jax.process_count() == 1
    self._eval_fns: dict[Any, Callable] = {}
    self._needs: dict[Any, tuple[Any, Needs]] = {}
    # A need the step cannot meet fails here, when the run is built, not at
    # the first step.
    self.step_needs(model, optimizer, self._abstract_params())

  def _abstract_params(self):
    if self.initial_params is not None:
      return self.initial_params
    x = jax.ShapeDtypeStruct((1, *self.dataset.x_train.shape[1:]),
                             self.dataset.x_train.dtype)
    return jax.eval_shape(lambda key, x: init_variables(self.model, key, x)[0],
                          jax.random.key(0), x)

  # -- compiled functions -------------------------------------------------

  def step_fn(self, run: Run) -> Callable:
    """The jitted step for the run's architecture and optimizer (cached)."""
    last = self._last_step
    if last is not None and last[0] is run.model and last[1] is run.optimizer:
      return last[2]
    needs = self.step_needs(run.model, run.optimizer, run.state.params)
    key = (run.model, id(run.optimizer), needs, self.loss.name)
    if key not in self._step_fns:
      def count():
        self.compilations[key] = self.compilations.get(key, 0) + 1

      step = accumulating(make_train_step(run.model, self.loss, run.optimizer,
                                          needs, on_trace=count))
      replicated = parallel.replicated(self.mesh)
      self._step_fns[key] = jax.jit(
          step, in_shardings=(replicated, self._batch_sharding(), replicated),
          out_shardings=(replicated, replicated, replicated))
    self._last_step = (run.model, run.optimizer, self._step_fns[key])
    return self._step_fns[key]

  def step_needs(self, model: nn.Module, optimizer, params) -> Needs:
    """What the step captures for ``optimizer``: its declared needs and
    ``self.needs``; checked against the model and loss (cached)."""
    key = (model, id(optimizer))
    if key not in self._needs:
      needs = required_needs(optimizer, params).merge(self.needs)
      x = jax.ShapeDtypeStruct((1, *self.dataset.x_train.shape[1:]),
                               self.dataset.x_train.dtype)
      check_needs(needs, model, self.loss, params, x)
      self._needs[key] = (optimizer, needs)  # keeps id(optimizer) alive
    return self._needs[key][1]

  def _batch_sharding(self):
    # On a one-device mesh over the default device, host batches take jit's
    # fast C++ transfer path when no input sharding is requested (several
    # times cheaper per step than the sharded transfer).
    if self.mesh.devices.size == 1 and self.mesh.devices.flat[0] == jax.devices()[0]:
      return None
    return parallel.batch_sharded(self.mesh)

  @property
  def num_compilations(self) -> int:
    return sum(self.compilations.values())

  def _eval_fn(self, model: nn.Module) -> Callable:
    if model not in self._eval_fns:
      self._eval_fns[model] = jax.jit(
          make_eval_step(model, self.loss),
          in_shardings=(parallel.replicated(self.mesh), self._batch_sharding(),
                        parallel.replicated(self.mesh)),
          out_shardings=parallel.replicated(self.mesh))
    return self._eval_fns[model]

  # -- data ------------------------------------------------------------------

  def _batch(self, run: Run, x: np.ndarray, y: np.ndarray,
             indices: np.ndarray, mask: np.ndarray) -> dict[str, jax.Array]:
    xb = x[indices]
    if self.augment is not None:
      xb = self.augment(xb, np.random.default_rng([self.seed, run.step]))
    batch = {"x": xb, "y": y[indices],
             "weights": mask.astype(np.float32, copy=False)}
    if self._single_process:
      return parallel.pad_batch(batch, parallel.padded_size(len(mask), self.mesh))
    return parallel.shard_batch(batch, self.mesh)

  def evaluate(self, run: Run, split: str = "test") -> dict[str, float]:
    """Mean loss (and accuracy) of the current parameters on a split."""
    x = getattr(self.dataset, f"x_{split}")
    y = getattr(self.dataset, f"y_{split}")
    size = parallel.padded_size(min(self.eval_batch_size, len(x)), self.mesh)
    fn = self._eval_fn(run.model)
    totals: dict[str, float] = {}
    for start in range(0, len(x), size):
      idx = np.arange(start, min(start + size, len(x)))
      batch = parallel.pad_batch(
          {"x": x[idx], "y": y[idx], "weights": np.ones(len(idx), np.float32)},
          size)
      sums = jax.device_get(fn(run.state.params,
                               parallel.shard_batch(batch, self.mesh),
                               run.state.model_state))
      for k, v in sums.items():
        totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count")
    return {f"{split}_{k}": v / count for k, v in totals.items()}

  # -- the loop ----------------------------------------------------------------

  def _initial_run(self) -> Run:
    x = self.dataset.x_train
    params, model_state = self.initial_params, self.initial_model_state
    key = jax.random.key(self.seed)
    if params is None:
      params, init_state = init_variables(self.model, key, x[:1])
      model_state = init_state if model_state is None else model_state
    elif model_state is None:
      model_state = initial_model_state(self.model, key, x[:1])
    state = parallel.replicate(
        init_train_state(params, self.optimizer, self.seed, model_state),
        self.mesh)
    sampler = EpochSampler(len(x), self.batch_size, seed=self.seed,
                           buckets=self.buckets)
    return Run(self.model, self.optimizer, state, sampler, self.mesh)

  def _meta(self, run: Run) -> dict[str, Any]:
    return {"step": run.step, "sampler": run.sampler.state_dict(),
            "hooks": [h.state_dict() for h in self.hooks]}

  def resume_step(self) -> int | None:
    """The step ``fit(resume=True)`` would continue from (None: 0, there is
    no checkpoint); reads the checkpoints only. Raises :class:`ResumeError`
    (see :func:`nnopt.engine.resume.resume_point`)."""
    point = resume_point(self._checkpointer(resume=True),
                         num_steps=self.num_steps, num_epochs=self.num_epochs)
    return None if point is None else point.step

  def _checkpointer(self, resume: bool = False) -> Checkpointer | None:
    if not self.checkpoint_every:
      if resume:
        raise ResumeError("resume needs checkpoints, and this run has none "
                          "(checkpoint_every is not set)")
      return None
    return Checkpointer(os.path.join(self.workdir, "checkpoints"))

  def _done(self, run: Run) -> bool:
    if run.stop:
      return True
    if self.num_steps is not None and run.step >= self.num_steps:
      return True
    return self.num_epochs is not None and run.epoch >= self.num_epochs

  def _total_steps(self, run: Run) -> int | None:
    if self.num_steps is not None:
      return self.num_steps
    per_epoch = run.sampler.steps_per_epoch
    return None if per_epoch is None else self.num_epochs * per_epoch

  def _write(self, record: dict[str, Any]) -> None:
    self.history.append(record)
    if self.workdir and jax.process_index() == 0:
      with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")

  def fit(self, *, resume: bool = False) -> Run:
    """Runs the loop to the end; returns the final :class:`Run`.

    Raises:
      NonFiniteLossError: when the loss turns NaN/inf (the last good
        checkpoint is kept).
    """
    ckpt = self._checkpointer(resume)
    if self.workdir:
      os.makedirs(self.workdir, exist_ok=True)
    run = (restore_run(ckpt, self._initial_run, self.hooks, self.mesh,
                       num_steps=self.num_steps, num_epochs=self.num_epochs,
                       warn=self.warn) if resume else self._initial_run())
    if self.workdir and jax.process_index() == 0:
      truncate_metrics(os.path.join(self.workdir, "metrics.jsonl"), run.step,
                       self.warn)
    for hook in self.hooks:
      hook.on_start(run)
    bar = tqdm.tqdm(total=self._total_steps(run), initial=run.step,
                    disable=not self.progress, unit="step", leave=False)
    try:
      with deferred_signals(self._single_process) as flag:
        self._loop(run, ckpt, bar, flag)
        if ckpt:  # the last step, so that a longer run can continue it
          ckpt.save(run.step, run.state, self._meta(run))
        if flag.signum is not None:
          self._interrupt(run, ckpt, flag.signum)
    finally:
      bar.close()
      if ckpt:
        ckpt.close()
    return run

  def _loop(self, run: Run, ckpt: Checkpointer | None, bar, flag) -> None:
    x, y = self.dataset.x_train, self.dataset.y_train
    zero_sums = parallel.replicate(
        {k: np.float32(0) for k in (*metric_names(self.loss), "count")},
        self.mesh)
    sums = zero_sums
    t0 = time.perf_counter()
    while not self._done(run):
      if flag.signum is not None:
        self._interrupt(run, ckpt, flag.signum)
      epoch_before = run.sampler.epoch
      indices, mask = run.sampler.next_batch()
      batch = self._batch(run, x, y, indices, mask)
      run.state, metrics, sums = self.step_fn(run)(run.state, batch, sums)
      if self._serialize_steps:
        jax.block_until_ready(run.state)
      run.step += 1
      for hook in self.hooks:
        hook.on_step(run, metrics)
      if run.sampler.epoch_done or run.sampler.epoch != epoch_before:
        for hook in self.hooks:
          hook.on_epoch_end(run)
      bar.update(1)
      last = self._done(run)
      if last or run.step % self.log_every == 0:
        self._log(run, sums, t0, bar, ckpt, evaluate=last or (
            self.eval_every is not None and run.step % self.eval_every == 0))
        sums = zero_sums
      if ckpt and run.step % self.checkpoint_every == 0:
        self._check_finite(run, ckpt)
        ckpt.save(run.step, run.state, self._meta(run))

  def _interrupt(self, run: Run, ckpt: Checkpointer | None, signum: int):
    """Saves a checkpoint at the current step (if on) and raises
    :class:`Interrupted`."""
    saved = None
    if ckpt is not None and run.step > 0 and ckpt.save(
        run.step, run.state, self._meta(run)):
      saved = run.step
    raise Interrupted(signum, run.step, saved,
                      None if ckpt is None else ckpt.directory)

  def _check_finite(self, run: Run, ckpt: Checkpointer | None) -> None:
    bad = int(jax.device_get(run.state.nonfinite_step))
    if bad >= 0:
      raise NonFiniteLossError(bad, ckpt.latest_step() if ckpt else None)

  def _log(self, run: Run, sums, t0, bar, ckpt, evaluate: bool) -> None:
    sums = jax.device_get(sums)
    count = float(sums.pop("count"))
    record: dict[str, Any] = {
        "step": run.step, "epoch": run.sampler.epoch,
        "examples_seen": int(run.sampler.examples_seen),
        "wall_time": time.perf_counter() - t0,
        "batch_size": run.sampler.batch_size or self.dataset.num_train,
    }
    for key, total in sums.items() if count else ():
      record[f"train_{key}"] = float(total) / count
    self._check_finite(run, ckpt)
    if evaluate:
      record.update(self.evaluate(run, "test"))
      if self.eval_train:
        record.update(self.evaluate(run, "train"))
    record.update(run.log)
    run.log = {}
    self._write(record)
    bar.set_postfix(loss=f"{record.get('train_loss', float('nan')):.4g}",
                    refresh=False)
