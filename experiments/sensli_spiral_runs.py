"""The spiral reproduction's runs on the engine's runs axis.

:func:`train` trains every variant of one experiment (baseline, SensLI with a
rule, extended network) for a list of seeds with
:class:`nnopt.engine.runs.RunsTrainer` and the :class:`nnopt.growth.SensLI`
hook. Variants that start from the same architecture and learning rate are
runs of one trainer: they step as one ``jit(vmap(step))`` until their
insertions split them into groups by architecture (one compilation per
architecture). Run ``(variant, seed)`` is the engine run ``Trainer(...,
seed=seed)`` with that variant's hook.

Curves (:class:`Curves`): the training loss of every step's batch before the
update (``log_every=1``: a record's ``train_loss`` is the mean over the steps
since the last log), and the test error ``1 - test_accuracy`` and test loss
after every epoch. A recorder hook moves each run's records into arrays at
every epoch end, so that 10^6 step records never pile up in memory.

Gradient norms (Fig 4.6a): :func:`grad_norms` is an optax transformation in
front of SGD that passes the gradient through and keeps ``‖∇W‖_F`` of every
kernel in its state (the latest step, and the sum and count since the
optimizer's start, i.e. since the insertion restarted it). The per-step
series is read for one run by a hook; the per-run mean after insertion is
``sum / count`` at the end.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import sys
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt import growth, losses
from nnopt.engine.runs import RunSpec, RunsTrainer
from nnopt.hooks import Hook
from nnopt.models import FNN, ResNet
from nnopt.stats.layer_keys import by_layer

CE = losses.softmax_cross_entropy
B = 45  # the spiral's mini-batch (450 points: 10 steps per epoch)


def fnn(*widths):
  return FNN(tuple(widths), init_scheme="pytorch")


def resnet(blocks):
  return ResNet(3, blocks, 2, activation="tanh", init_scheme="pytorch")


def steps_per_epoch(batch) -> int:
  return 1 if batch is None else 450 // batch


def final_loss(curve: np.ndarray, batch) -> np.ndarray:
  """Per-run final training loss: last step (full batch) or last epoch's mean."""
  return curve[:, -steps_per_epoch(batch):].mean(axis=1)


class Curves(NamedTuple):
  """Curves of ``R`` runs (row r belongs to ``seeds[r]``).

  Attributes:
    train_loss: ``(R, steps)`` loss of every step's batch before the update.
    test_error: ``(R, epochs)`` test error (fraction) after every epoch.
    test_loss: ``(R, epochs)`` test loss after every epoch.
    attempts: per run, the SensLI hook's attempts (epoch, merits, chosen, …).
    models, params: final architecture and parameters of every run.
    norm_means: with gradient norms, per run ``{layer: mean ‖∇W‖_F}`` over
      the steps since the last insertion (since the start without one).
    norm_series: with gradient norms, ``{layer: (steps,) ‖∇W‖_F}`` of the
      first run (NaN before a layer exists).
  """

  train_loss: np.ndarray
  test_error: np.ndarray
  test_loss: np.ndarray
  attempts: list[list[dict[str, Any]]]
  models: list[Any]
  params: list[Any]
  norm_means: list[dict[str, float]] | None = None
  norm_series: dict[str, np.ndarray] | None = None


class GradNormState(NamedTuple):
  last: dict[str, jax.Array]
  total: dict[str, jax.Array]
  count: jax.Array


def _kernel_norms(tree) -> dict[str, jax.Array]:
  return {layer: jnp.sqrt(jnp.sum(jnp.square(leaves["kernel"])))
          for layer, leaves in by_layer(tree).items() if "kernel" in leaves}


def grad_norms() -> optax.GradientTransformation:
  """Identity on the gradient; records ``‖∇W‖_F`` of every kernel.

  State: the latest step's norms, their sum since ``init`` and the count.
  """

  def init(params):
    zeros = {k: jnp.zeros((), jnp.float32) for k in _kernel_norms(params)}
    return GradNormState(zeros, zeros, jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    del params
    norms = _kernel_norms(updates)
    total = {k: state.total[k] + v for k, v in norms.items()}
    return updates, GradNormState(norms, total, state.count + 1)

  return optax.GradientTransformation(init, update)


class _Recorder(Hook):
  """Moves a run's step records into arrays (at every epoch end and once at
  the end), then drops them from the run's history."""

  def __init__(self, epochs: int, steps: int):
    self.steps = steps
    self.loss = np.full(epochs * steps, np.nan, np.float32)
    self.error = np.full(epochs, np.nan, np.float32)
    self.test_loss = np.full(epochs, np.nan, np.float32)

  def drain(self, run) -> None:
    for rec in run.history:
      step = rec["step"]
      self.loss[step - 1] = rec["train_loss"]
      if "test_accuracy" in rec:
        self.error[step // self.steps - 1] = 1.0 - rec["test_accuracy"]
        self.test_loss[step // self.steps - 1] = rec["test_loss"]
    run.history.clear()

  def on_epoch_end(self, run) -> None:
    self.drain(run)


class _NormSeries(Hook):
  """Reads the gradient norms of every step out of the optimizer state."""

  def __init__(self, total_steps: int):
    self.series: dict[str, np.ndarray] = {}
    self.total_steps = total_steps

  def on_step(self, run, metrics) -> None:
    del metrics
    last = jax.device_get(run.state.opt_state[0].last)
    for layer, value in last.items():
      self.series.setdefault(layer, np.full(self.total_steps, np.nan,
                                            np.float32))[run.step - 1] = value


def train(variants: dict[str, tuple], data, loss, *, seeds: Sequence[int],
          lr: float, epochs: int, batch: int | None, at: Sequence[int] = (),
          positions: str = "after_each_block",
          norms_of: str | None = None) -> dict[str, Curves]:
  """Trains every variant for every seed.

  Args:
    variants: ``{label: (model, rule or None, lr_factor[, insertion epochs]
      [, learning rate])}``; ``rule=None`` trains the fixed architecture.
    data, loss: the dataset and training loss.
    seeds: one run per seed and variant (init, batch order, random rule).
    lr: initial learning rate (SGD); a variant's insertion restarts the
      optimizer at ``lr * lr_factor``.
    epochs, batch: epochs and mini-batch size (None: full batch).
    at: default insertion epochs (finished epochs).
    positions: the ResNet candidate set (``resnet_positions``).
    norms_of: a variant whose gradient norms are recorded.

  Returns:
    ``{label: Curves}``.
  """
  steps = 1 if batch is None else len(data.x_train) // batch
  by_start: dict[Any, list[str]] = {}
  for label, (model, *rest) in variants.items():
    rate = rest[3] if len(rest) > 3 else lr
    by_start.setdefault((model, rate), []).append(label)
  out = {}
  for (model, rate), labels in by_start.items():
    out.update(_train_group(model, rate, labels, variants, data, loss, seeds,
                            epochs, steps, batch, at, positions, norms_of))
  return {label: out[label] for label in variants}


def _train_group(model, rate, labels, variants, data, loss, seeds, epochs,
                 steps, batch, at, positions, norms_of) -> dict[str, Curves]:
  norms = norms_of in labels
  sgd = optax.inject_hyperparams(optax.sgd)(learning_rate=rate)
  optimizer = optax.chain(grad_norms(), sgd) if norms else sgd
  specs = [RunSpec(seed=int(s), name=f"{label}/{s}")
           for label in labels for s in seeds]

  def hooks(spec):
    label = spec.name.rsplit("/", 1)[0]
    _, rule, lr_factor, *more = variants[label]
    out = [_Recorder(epochs, steps)]
    if norms and label == norms_of and spec.seed == seeds[0]:
      out.append(_NormSeries(epochs * steps))
    if rule is not None:
      when = more[0] if more and more[0] is not None else at
      out.append(growth.SensLI(
          loss, data.x_train, data.y_train, at_epochs=when, mode="full",
          seed=spec.seed, rule=rule, lr_factor=lr_factor,
          resnet_positions=positions))
    return out

  trainer = RunsTrainer(model, loss, optimizer, data, runs=specs,
                        batch_size=batch, num_epochs=epochs, hooks=hooks,
                        log_every=1, eval_every=steps,
                        progress=sys.stderr.isatty())
  slots = trainer.fit()
  result = {}
  for k, label in enumerate(labels):
    mine = slots[k * len(seeds):(k + 1) * len(seeds)]
    recorders = []
    for slot in mine:
      slot.hooks[0].drain(slot)
      recorders.append(slot.hooks[0])
    sensli = [[h for h in s.hooks if isinstance(h, growth.SensLI)]
              for s in mine]
    means = series = None
    if norms and label == norms_of:
      means = []
      for slot in mine:
        state = jax.device_get(slot.state.opt_state[0])
        means.append({layer: float(v) / int(state.count)
                      for layer, v in state.total.items()})
      series = mine[0].hooks[1].series
    result[label] = Curves(
        np.stack([r.loss for r in recorders]),
        np.stack([r.error for r in recorders]),
        np.stack([r.test_loss for r in recorders]),
        [h[0].attempts if h else [] for h in sensli],
        [s.model for s in mine], [s.params for s in mine], means, series)
  return result
