"""Building an :class:`Experiment` (what a Trainer needs) from a :class:`Spec`."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from nnopt.config import table
from nnopt.config.datasets import augmentation, load_dataset
from nnopt.config.errors import ConfigError
from nnopt.config.optimizers import (build_schedule, construct,
                                     with_named_optimizer)
from nnopt.config.signatures import run_arguments
from nnopt.config.spec import Spec, thaw
from nnopt.config.sweep import is_sweep, run_specs
from nnopt.engine.runs import RunsTrainer
from nnopt.engine.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a :class:`nnopt.engine.trainer.Trainer` needs, built from a spec.

  Attributes:
    spec: the :class:`Spec` it was built from.
    dataset: the loaded :class:`nnopt.data.Dataset`.
    model: the flax module.
    loss: the :class:`nnopt.losses.Loss`.
    optimizer: the optax transformation.
    hooks: the loop hooks.
    augment: host-side augmentation ``(x, rng) -> x`` or None.
    trainer_kwargs: the remaining keyword arguments of ``Trainer``.
    optimizer_factory: ``(**hparams) -> optimizer`` with some of the
      learning rate and the options replaced (a sweep's runs).
    hooks_for: ``(seed, hook_options=(), hparams=None) -> hooks`` of a run
      with that seed (hooks that take the run argument ``run_seed`` get it),
      a sweep run's hook options ``((hook index, option, value), ...)``,
      which replace those of the config (:class:`nnopt.config.sweep.
      SweepRun`), and its optimizer hyperparameters, which the run arguments
      ``run_learning_rate`` and ``make_optimizer`` then follow (a hook that
      rebuilds the optimizer keeps the run's rate and options).
  """

  spec: Spec
  dataset: Any
  model: Any
  loss: Any
  optimizer: Any
  hooks: tuple[Any, ...]
  augment: Callable[..., Any] | None
  trainer_kwargs: Mapping[str, Any]
  optimizer_factory: Callable[..., Any] | None = None
  hooks_for: Callable[..., tuple[Any, ...]] | None = None

  @property
  def is_sweep(self) -> bool:
    """Whether the spec asks for several runs (``sweep``)."""
    return is_sweep(self.spec)

  def runs_trainer(self, workdir: str | None = None, *, progress: bool = True,
                   **overrides: Any) -> RunsTrainer:
    """A :class:`nnopt.engine.runs.RunsTrainer` of the spec's sweep (one run
    when it has none): seeds × grid points, one program per architecture;
    each run's hooks get its grid's hook options."""
    kwargs = {**self.trainer_kwargs, **overrides}
    kwargs.pop("seed", None)
    return RunsTrainer(self.model, self.loss, self.optimizer_factory,
                       self.dataset, runs=run_specs(self.spec),
                       hooks=lambda run: self.hooks_for(
                           run.seed, getattr(run, "hook_options", ()),
                           run.hparams),
                       augment=self.augment, workdir=workdir,
                       progress=progress, **kwargs)

  def trainer(self, workdir: str | None = None, *, progress: bool = True,
              **overrides: Any) -> Trainer:
    """A fresh :class:`nnopt.engine.trainer.Trainer` for this experiment."""
    kwargs = {**self.trainer_kwargs, **overrides}
    return Trainer(self.model, self.loss, self.optimizer, self.dataset,
                   hooks=self.hooks, augment=self.augment, workdir=workdir,
                   progress=progress, **kwargs)


def check_model_on_data(model, dataset, spec: Mapping[str, Any]) -> None:
  """Checks abstractly (``jax.eval_shape``) that the model takes the
  dataset's inputs and has one output per class or target dimension."""
  x = jnp.asarray(dataset.x_train[:1])
  name = spec["model"]["name"]
  try:
    out = jax.eval_shape(lambda: model.apply(
        model.init(jax.random.key(0), x), x))
  except Exception as e:  # pylint: disable=broad-except
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ConfigError(f"model {name!r} with options {dict(spec['model']['options'])}"
                      f" cannot take inputs of shape {tuple(x.shape[1:])} "
                      f"(dataset {dataset.name!r}): {msg}") from None
  if dataset.num_classes is not None:
    want = dataset.num_classes
    what = f"{want} classes"
  else:
    want = int(dataset.y_train.reshape(len(dataset.y_train), -1).shape[1])
    what = f"{want} target dimensions"
  got = out.shape[-1]
  if got != want:
    raise ConfigError(f"model {name!r} has {got} outputs but dataset "
                      f"{dataset.name!r} has {what}; set the model's output "
                      f"width in model.options")


def check_batch_on_data(dataset, spec: Mapping[str, Any]) -> None:
  """Checks that the batch size fits the training set."""
  batch_size, n = spec["train"]["batch_size"], len(dataset.x_train)
  if batch_size is not None and batch_size > n:
    raise ConfigError(f"train.batch_size {batch_size} exceeds the {n} "
                      f"training examples of dataset {dataset.name!r}; use "
                      f"at most {n}, or None for full batches")


def build(spec: Spec, *, dataset: Any = None) -> Experiment:
  """Builds the :class:`Experiment` of a spec.

  Factories get the run arguments they declare
  (:mod:`nnopt.config.signatures`): the run's model, loss, dataset and
  augmentation, and for hooks the run's learning rate and optimizer factory.

  Args:
    spec: a :class:`Spec` from :func:`nnopt.config.resolve`.
    dataset: the spec's dataset, already loaded (e.g. shared by variants, see
      :func:`nnopt.config.dataset_key`); else it is loaded.

  Raises:
    ConfigError: the model does not fit the data, or a factory rejects its
      options.
    nnopt.data.DatasetError: the dataset cannot be loaded.
  """
  if not isinstance(spec, Spec):
    raise TypeError(f"build takes the Spec of nnopt.config.resolve(config, "
                    f"variant, ...), got {type(spec).__name__}")
  try:
    model = table.lookup("model", spec["model"]["name"])(
        **thaw(spec["model"]["options"]))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"model: {e}") from None
  loss = table.lookup("loss", spec["loss"])
  if dataset is None:
    dataset = load_dataset(spec)
  check_model_on_data(model, dataset, spec)
  check_batch_on_data(dataset, spec)
  augment = augmentation(spec, dataset)
  run = with_named_optimizer(dict(model=model, loss=loss, dataset=dataset,
                                  augment=augment))
  opt = spec["optimizer"]
  learning_rate = build_schedule(opt["learning_rate"])

  def make_optimizer(rate):
    return construct(opt["name"], rate, opt["options"], run)

  def optimizer_factory(**hparams):
    rate = hparams.pop("learning_rate", learning_rate)
    return construct(opt["name"], rate, {**thaw(opt["options"]), **hparams},
                     run)

  try:
    optimizer = make_optimizer(learning_rate)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"optimizer: {e}") from None
  hook_run = dict(run, run_learning_rate=learning_rate,
                  make_optimizer=make_optimizer)

  def hooks_for(seed: int, hook_options=(), hparams=None) -> tuple[Any, ...]:
    args = dict(hook_run, run_seed=int(seed))
    if hparams:  # a sweep run: its own rate and options, also when rebuilt
      args.update(run_learning_rate=hparams.get("learning_rate", learning_rate),
                  make_optimizer=lambda rate: optimizer_factory(
                      **{**hparams, "learning_rate": rate}))
    swept: dict[int, dict[str, Any]] = {}
    for index, option, value in hook_options:
      swept.setdefault(index, {})[option] = value
    hooks = []
    for i, hook in enumerate(spec["hooks"]):
      factory = table.lookup("hook", hook["name"])
      try:
        hooks.append(factory(**{**thaw(hook.get("options") or {}),
                                **swept.get(i, {})},
                             **run_arguments(factory, args)))
      except ValueError as e:
        raise ConfigError(f"hooks[{i}] ({hook['name']!r}): {e}") from None
    return tuple(hooks)

  train = spec["train"]
  hooks = hooks_for(train["seed"])
  trainer_kwargs = dict(
      batch_size=train["batch_size"], num_steps=train["num_steps"],
      num_epochs=train["num_epochs"], seed=train["seed"],
      buckets=None if train["buckets"] is None else tuple(train["buckets"]),
      eval_every=train["eval_every"], eval_train=train["eval_train"],
      eval_batch_size=train["eval_batch_size"], log_every=train["log_every"],
      checkpoint_every=train["checkpoint_every"])
  return Experiment(spec, dataset, model, loss, optimizer, hooks, augment,
                    trainer_kwargs, optimizer_factory, hooks_for)


__all__ = ["Experiment", "build", "check_batch_on_data", "check_model_on_data"]
