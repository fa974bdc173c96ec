"""Config factories that adapt a family's transform or hook to config options.

Each is a thin function from JSON-like options (and the run arguments it
declares, see :mod:`nnopt.config.signatures`) to the family's object; the
algorithms live in the families:

* optimizers: :func:`mgopt` (:func:`nnopt.multilevel.levels.network_mgopt`
  around two optimizers of the table);
* hooks: :func:`sensli_hook` (:class:`nnopt.growth.SensLI`) and
  :func:`mlsgd_hook` (:class:`nnopt.multilevel.MLSGDHook`). The CABS hooks
  take plain options and are in the table as their classes.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import optax

from nnopt.growth import ReduceLROnPlateau, SensLI
from nnopt.models.odenet import odenet_regularizer
from nnopt.multilevel import MLSGDHook
from nnopt.multilevel.levels import level_models, network_mgopt

NamedOptimizer = Callable[..., optax.GradientTransformation]


# -- optimizers --------------------------------------------------------------------


def _scaled(learning_rate, factor: float):
  if factor == 1.0:
    return learning_rate
  if callable(learning_rate):
    return lambda count: factor * learning_rate(count)
  return factor * learning_rate


def mgopt(learning_rate, *, inner: str = "sgd",
          inner_options: dict[str, Any] | None = None, coarse: str = "sgd",
          coarse_learning_rate: float | None = None,
          coarse_lr_factor: float = 1.0,
          coarse_options: dict[str, Any] | None = None,
          coarse_objective: str = "network", hierarchy: str = "depth",
          interpolation: str = "constant", num_coarse_steps: int = 5,
          every: int = 2, lam: float = 0.0, alpha_cgc: float = 1.0,
          rule: str = "fixed", gate_mode: str = "none", kappa: float = 0.25,
          kappa2: float = 0.0, model: Any = None, loss: Any = None,
          named_optimizer: NamedOptimizer
          ) -> optax.GradientTransformationExtraArgs:
  """MG/Opt for configs (``optimizer.name = 'mgopt'``).

  The smoother is the table's optimizer ``inner`` (with ``inner_options``)
  at ``learning_rate``; the coarse optimizer is ``coarse`` (with
  ``coarse_options``) at ``coarse_learning_rate``, by default
  ``coarse_lr_factor · learning_rate`` (schedules are scaled too). The other
  options are those of :func:`nnopt.multilevel.levels.network_mgopt`; the
  run's ``model`` and ``loss`` give the coarse network.
  """
  fine = named_optimizer(inner, learning_rate, inner_options)
  if coarse_learning_rate is None:
    coarse_learning_rate = _scaled(learning_rate, coarse_lr_factor)
  coarse_opt = named_optimizer(coarse, coarse_learning_rate, coarse_options)
  return network_mgopt(
      fine, coarse_opt, hierarchy=hierarchy, interpolation=interpolation,
      coarse_objective=coarse_objective, model=model, loss=loss,
      num_coarse_steps=num_coarse_steps, every=every, lam=lam,
      alpha_cgc=alpha_cgc, rule=rule, gate_mode=gate_mode, kappa=kappa,
      kappa2=kappa2)


# -- hooks -------------------------------------------------------------------------


def sensli_hook(*, at_epochs: Sequence[int] = (), lr_factor: float = 1.0,
                optimizer: str = "restart", use_augment: bool = True,
                rule: str = "max", position: int | None = None,
                norm: str | None = None, slice_mode: str = "sum_over_in",
                threshold: float | None = None, strict: bool = False,
                denominator: str = "baseline", accept_multiple: bool = False,
                mode: str = "full", batch_size: int | None = None,
                subset_size: int | None = None, seed: int | None = None,
                resnet_positions: str = "after_each_block",
                resnet_w1_scale: float = 0.8, loss: Any, dataset: Any,
                augment: Any, run_learning_rate: Any,
                make_optimizer: Callable[[float], optax.GradientTransformation],
                run_seed: int = 0) -> SensLI:
  """SensLI for configs (``hooks: [{'name': 'sensli', 'options': {...}}]``).

  Loss and training data are the run's; with ``lr_factor != 1`` the run's
  optimizer is rebuilt at the reduced rate (``make_optimizer``), which needs
  a constant learning rate. ``use_augment`` applies the run's augmentation
  in the sensitivity epoch (reference code, P8). The other options are
  those of :func:`nnopt.growth.sensli_step`; ``seed`` (the ``'random'``
  rule's and the sensitivity epoch's) defaults to the run's seed.
  """
  if not at_epochs:
    raise ValueError("the 'sensli' hook needs at_epochs (when to insert)")
  optimizer_fn, learning_rate = None, None
  if lr_factor != 1.0:
    if callable(run_learning_rate) or run_learning_rate is None:
      raise ValueError("sensli lr_factor needs a constant learning_rate in the "
                       "config (a schedule restarts from its own values)")
    optimizer_fn, learning_rate = make_optimizer, float(run_learning_rate)
  return SensLI(loss, dataset.x_train, dataset.y_train, at_epochs=at_epochs,
                optimizer=optimizer, optimizer_fn=optimizer_fn,
                learning_rate=learning_rate, lr_factor=lr_factor,
                seed=run_seed if seed is None else seed,
                rule=rule, position=position, norm=norm, slice_mode=slice_mode,
                threshold=threshold, strict=strict, denominator=denominator,
                accept_multiple=accept_multiple, mode=mode,
                batch_size=batch_size, subset_size=subset_size,
                augment=augment if use_augment else None,
                resnet_positions=resnet_positions,
                resnet_w1_scale=resnet_w1_scale)


def reduce_on_plateau_hook(*, factor: float = 0.5, patience: int = 10,
                           threshold: float = 1e-4, min_lr: float = 0.0,
                           dataset: Any, run_learning_rate: Any,
                           make_optimizer: Callable[
                               [float], optax.GradientTransformation]
                           ) -> ReduceLROnPlateau:
  """PyTorch's ReduceLROnPlateau on the test accuracy (SensLI Exp1; hooks:
  ``[{'name': 'reduce_on_plateau', 'options': {...}}]``); rebuilds the run's
  optimizer at the reduced rate, so it needs a constant learning rate."""
  if callable(run_learning_rate) or run_learning_rate is None:
    raise ValueError("reduce_on_plateau needs a constant learning_rate in the "
                     "config")
  return ReduceLROnPlateau(dataset.x_test, dataset.y_test, make_optimizer,
                           float(run_learning_rate), factor=factor,
                           patience=patience, threshold=threshold,
                           min_lr=min_lr)


def mlsgd_hook(*, hierarchy: str = "depth", epochs=(7, 5, 3),
               n_cycles: int | None = None, lr: float = 0.05,
               decay_every: int | None = None, decay: float = 0.7,
               variant: str = "none", lam: float = 5.0,
               stoch_fraction: float = 0.03125, regularize: bool = True,
               first_cycle_no_gc: bool = True, angle_check: str = "off",
               mu: float = 0.0, eta: float | None = None,
               eps: float | None = None, model: Any, loss: Any,
               dataset: Any) -> MLSGDHook:
  """MLSGD for configs (``hooks: [{'name': 'mlsgd', 'options': {...}}]``).

  The levels come from the run's (finest) model by
  :func:`nnopt.multilevel.levels.level_models`; lr decays ×``decay`` every
  ``decay_every`` global epochs (all levels counted); ``angle_check``,
  ``mu`` (3.3) and the gates ``eta``, ``eps`` (3.4)/(3.5) as in
  :class:`nnopt.multilevel.MLSGDConfig`.
  """
  models, transfers = level_models(model, hierarchy, len(epochs))

  def schedule(epoch):
    return lr * decay ** (epoch // decay_every) if decay_every else lr

  return MLSGDHook(models, transfers, tuple(epochs), lr=schedule, loss=loss,
                   dataset=dataset, variant=variant, lam=lam,
                   stoch_fraction=stoch_fraction,
                   regularizer=odenet_regularizer if regularize else None,
                   first_cycle_no_gc=first_cycle_no_gc,
                   angle_check=angle_check, mu=mu, eta=eta, eps=eps,
                   n_cycles=n_cycles)


__all__ = ["mgopt", "mlsgd_hook", "reduce_on_plateau_hook", "sensli_hook"]
