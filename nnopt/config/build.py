"""Building an :class:`Experiment` (what a Trainer needs) and loading config files."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
from typing import Any, Callable, Iterable, Mapping

from nnopt.config import optimizers as optimizers_lib
from nnopt.config.overrides import Override, resolve
from nnopt.config.schema import ConfigError, to_plain
from nnopt.config.validation import _wants_experiment, get_hook


# -- build ---------------------------------------------------------------------------


@dataclasses.dataclass
class Experiment:
  """Everything a :class:`nnopt.engine.trainer.Trainer` needs, built from a config.

  Attributes:
    config: the resolved plain-dict config.
    dataset: the loaded :class:`nnopt.data.Dataset`.
    model: the flax module.
    loss: the :class:`nnopt.losses.Loss`.
    optimizer: the optax transformation.
    hooks: the loop hooks.
    augment: host-side augmentation ``(x, rng) -> x`` or None.
    trainer_kwargs: the remaining keyword arguments of ``Trainer``.
  """

  config: dict[str, Any]
  dataset: Any
  model: Any
  loss: Any
  optimizer: Any
  hooks: list[Any]
  augment: Callable[..., Any] | None
  trainer_kwargs: dict[str, Any]

  def trainer(self, workdir: str | None = None, *, progress: bool = True,
              **overrides: Any):
    """A fresh :class:`nnopt.engine.trainer.Trainer` for this experiment."""
    from nnopt.engine.trainer import Trainer  # pylint: disable=g-import-not-at-top
    kwargs = {**self.trainer_kwargs, **overrides}
    return Trainer(self.model, self.loss, self.optimizer, self.dataset,
                   hooks=self.hooks, augment=self.augment, workdir=workdir,
                   progress=progress, **kwargs)


def dataset_key(config: Mapping[str, Any]) -> str:
  """A key under which two configs share their loaded dataset."""
  d = config["dataset"]
  return json.dumps({k: d[k] for k in ("name", "data_dir", "seed", "options")},
                    sort_keys=True)


def load_dataset(config: Mapping[str, Any]):
  """Loads the dataset of a resolved config (DatasetError passes through)."""
  from nnopt import data  # pylint: disable=g-import-not-at-top
  d = config["dataset"]
  return data.load_dataset(d["name"], data_dir=d["data_dir"], seed=d["seed"],
                           **d["options"])


def _check_model_on_data(model, dataset, config) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(dataset.x_train[:1])
  name = config["model"]["name"]
  try:
    out = jax.eval_shape(lambda: model.apply(
        model.init(jax.random.key(0), x), x))
  except Exception as e:  # pylint: disable=broad-except
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ConfigError(f"model {name!r} with options {config['model']['options']}"
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


def build(config: Any, *, variant: str | None = None, quick: bool = False,
          overrides: Iterable[Override | str] = (), dataset: Any = None,
          check_shapes: bool = True) -> Experiment:
  """Validates a config and builds its :class:`Experiment`.

  Args:
    config: a ConfigDict/dict (resolved or not).
    variant, quick, overrides: see :func:`resolve`.
    dataset: an already loaded dataset to reuse (else it is loaded).
    check_shapes: check (abstractly, with ``jax.eval_shape``) that the model
      takes the dataset's inputs and has one output per class.

  Raises:
    ConfigError: the config is invalid.
    nnopt.data.DatasetError: the dataset cannot be loaded.
  """
  from nnopt.losses import get_loss  # pylint: disable=g-import-not-at-top
  from nnopt.models import build_model  # pylint: disable=g-import-not-at-top
  from nnopt.engine.step import CaptureSpec  # pylint: disable=g-import-not-at-top

  resolved = resolve(config, variant, quick=quick, overrides=overrides)
  try:
    model = build_model(resolved["model"]["name"],
                        **resolved["model"]["options"])
  except (ValueError, TypeError) as e:
    raise ConfigError(f"model: {e}") from None
  loss = get_loss(resolved["loss"])
  # Filled in as it is built; optimizer factories with an ``experiment``
  # parameter (e.g. 'mgopt', for the run's model and loss) see the config,
  # model and loss, not yet the dataset, optimizer or hooks.
  experiment = Experiment(resolved, None, model, loss, None, [], None, {})
  opt = resolved["optimizer"]
  options = dict(opt["options"])
  try:
    if _wants_experiment(optimizers_lib.get_optimizer(opt["name"])):
      options["experiment"] = experiment
    optimizer = optimizers_lib.make_optimizer(opt["name"],
                                              opt["learning_rate"], **options)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"optimizer: {e}") from None
  if dataset is None:
    dataset = load_dataset(resolved)
  if check_shapes:
    _check_model_on_data(model, dataset, resolved)
  augment = None
  if resolved["dataset"]["augment"] == "crop_flip":
    from nnopt.data import random_crop_flip  # pylint: disable=g-import-not-at-top
    aug_options = dict(resolved["dataset"]["augment_options"])
    if "pad_value" not in aug_options and dataset.meta.get("normalized"):
      import numpy as np  # pylint: disable=g-import-not-at-top
      mean = np.asarray(dataset.meta["mean"], np.float32)
      std = np.asarray(dataset.meta["std"], np.float32)
      aug_options["pad_value"] = -mean / std
    augment = functools.partial(random_crop_flip, **aug_options)
  train = resolved["train"]
  trainer_kwargs = dict(
      batch_size=train["batch_size"], num_steps=train["num_steps"],
      num_epochs=train["num_epochs"], seed=train["seed"],
      buckets=None if train["buckets"] is None else tuple(train["buckets"]),
      capture=CaptureSpec(**resolved["capture"]),
      eval_every=train["eval_every"], eval_train=train["eval_train"],
      eval_batch_size=train["eval_batch_size"], log_every=train["log_every"],
      checkpoint_every=train["checkpoint_every"])
  experiment.dataset, experiment.optimizer = dataset, optimizer
  experiment.augment, experiment.trainer_kwargs = augment, trainer_kwargs
  for spec in resolved["hooks"]:
    factory = get_hook(spec["name"])
    options = dict(spec.get("options") or {})
    if _wants_experiment(factory):
      options["experiment"] = experiment
    experiment.hooks.append(factory(**options))
  return experiment


# -- config files --------------------------------------------------------------------


def load_config_file(path: str | os.PathLike[str]):
  """Runs ``get_config()`` of a config file; returns ``(name, config)``.

  Raises:
    ConfigError: missing file, no ``get_config``, or an error while running it
      (the message quotes the error and its line).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path!r} does not exist")
  if not path.endswith(".py"):
    raise ConfigError(f"config file {path!r} must be a Python file (.py) "
                      "defining get_config()")
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"nnopt_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f"config file {path!r} line {e.lineno}: syntax error: "
                      f"{e.msg}") from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"config file {path!r} failed to load: "
                      f"{type(e).__name__}: {e}") from None
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"config file {path!r} defines no get_config()")
  try:
    config = module.get_config()
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"get_config() of {path!r} raised "
                      f"{type(e).__name__}: {e}") from None
  plain = to_plain(config)
  if not isinstance(plain, dict):
    raise ConfigError(f"get_config() of {path!r} must return a ConfigDict or "
                      f"dict, got {type(config).__name__}")
  return plain.get("name") or name, config
