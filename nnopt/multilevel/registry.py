"""Config names for multilevel training: the ``'odenet'`` model, the
``'mlsgd'`` hook (``hooks=[{'name': 'mlsgd', 'options': {...}}]``) and the
``'mgopt'`` optimizer (MG/Opt's coarse-grid correction around an inner
optimizer, ``optimizer.name = 'mgopt'``; its coarse objective is by default
the coarse network's loss on the engine's ``batch``, the run's model and loss
reaching the factory through ``experiment=``).

The hook factory derives the level models from the config's (finest) model:
``hierarchy='depth'`` halves ``layers_per_block`` and doubles ``h`` per level
(constant interpolation); ``hierarchy='resolution'`` makes a two-level
hierarchy whose coarse model pools its inputs 2×2 and uses 2×2 residual
kernels (the fine model must use ``res_param='mlsgd_basis'``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax

from nnopt.config import optimizers as optimizers_lib
from nnopt.losses import get_loss
from nnopt.models import MODELS, register_model
from nnopt.models.odenet import ODEResNet, odenet_regularizer
from nnopt.multilevel.coarse_network import (depth_coarse_model,
                                             network_coarse_loss)
from nnopt.multilevel.hook import MLSGDHook
from nnopt.multilevel.network_transfers import (_path_str, depth_transfer,
                                                is_residual_path,
                                                resolution_transfer)
from nnopt.multilevel.transfer import identity_transfer
from nnopt.multilevel.transform import coarse_grid_correction


def level_models(fine: ODEResNet, hierarchy: str, num_levels: int):
  """Level models coarsest → finest and the transfers between them."""
  if hierarchy == "depth":
    models = [dataclasses.replace(fine, layers_per_block=fine.layers_per_block // 2 ** k,
                                  h=fine.h * 2 ** k)
              for k in reversed(range(num_levels))]
    if fine.layers_per_block % 2 ** (num_levels - 1):
      raise ValueError(f"{num_levels} depth levels need layers_per_block "
                       f"divisible by {2 ** (num_levels - 1)}, got "
                       f"{fine.layers_per_block}")
    return models, [depth_transfer("constant")] * (num_levels - 1)
  if hierarchy == "resolution":
    if num_levels != 2:
      raise ValueError("the resolution hierarchy has exactly 2 levels")
    coarse = dataclasses.replace(fine, res_kernel=2, res_param="standard",
                                 input_pool=fine.input_pool + 1)
    return [coarse, fine], [resolution_transfer(fc_channels=fine.channels[-1])]
  raise ValueError(f"hierarchy must be 'depth' or 'resolution', got {hierarchy!r}")


def mlsgd_hook(experiment, *, hierarchy: str = "depth", epochs=(7, 5, 3),
               n_cycles: int | None = None, lr: float = 0.05,
               decay_every: int | None = None, decay: float = 0.7,
               variant: str = "none", lam: float = 5.0,
               stoch_fraction: float = 0.03125, regularize: bool = True,
               first_cycle_no_gc: bool = True, angle_check: str = "off",
               mu: float = 0.0, eta: float | None = None,
               eps: float | None = None):
  """Hook factory for configs (see :class:`MLSGDHook`); lr decays ×``decay``
  every ``decay_every`` global epochs (all levels counted); ``angle_check``,
  ``mu`` (3.3) and the gates ``eta``, ``eps`` (3.4)/(3.5) as in
  :class:`nnopt.multilevel.MLSGDConfig`."""
  models, transfers = level_models(experiment.model, hierarchy, len(epochs))

  def schedule(epoch):
    return lr * decay ** (epoch // decay_every) if decay_every else lr

  return MLSGDHook(models, transfers, tuple(epochs), lr=schedule,
                   loss=experiment.loss, dataset=experiment.dataset,
                   variant=variant, lam=lam, stoch_fraction=stoch_fraction,
                   regularizer=odenet_regularizer if regularize else None,
                   first_cycle_no_gc=first_cycle_no_gc, angle_check=angle_check,
                   mu=mu, eta=eta, eps=eps, n_cycles=n_cycles)


def _inner_optimizer(what: str, name: str, learning_rate, options):
  factory = optimizers_lib.get_optimizer(name)
  optimizers_lib.check_options(f"mgopt {what} optimizer {name!r}", factory,
                               dict(options or {}), skip=1)
  return factory(learning_rate, **dict(options or {}))


COARSE_OBJECTIVES = ("network", "galerkin")


def _network_coarse_loss(hierarchy, interpolation, model, loss, experiment):
  """f_H(θ̄, batch) of the coarse network for ``coarse_objective='network'``."""
  model = model if model is not None else getattr(experiment, "model", None)
  if model is None:
    raise ValueError(
        "mgopt with coarse_objective='network' needs the run's model: build "
        "the optimizer through nnopt.config.build (which passes experiment=), "
        "pass model=, or use coarse_objective='galerkin'")
  if loss is None:
    loss = getattr(experiment, "loss", None) or "softmax_cross_entropy"
  if isinstance(loss, str):
    loss = get_loss(loss)
  coarse_model = (depth_coarse_model(model, interpolation)
                  if hierarchy == "depth" else model)
  return network_coarse_loss(coarse_model, loss)


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
          kappa2: float = 0.0, loss: str | None = None, model: Any = None,
          experiment: Any = None) -> optax.GradientTransformationExtraArgs:
  """MG/Opt for configs: :func:`coarse_grid_correction` around ``inner``.

  The smoother is the registered optimizer ``inner`` at ``learning_rate``;
  every ``every`` steps (κ-gate permitting) it is replaced by a cgc of
  ``num_coarse_steps`` steps of ``coarse`` (at ``coarse_learning_rate``,
  default ``coarse_lr_factor · learning_rate``) on the first-order-coherent cgc objective
  h(θ̄) = f_H(θ̄) + ⟨R_g g − ∇f_H(R_pθ), θ̄⟩ + λ/2‖θ̄ − R_pθ‖² of the
  current batch. The coarse objective f_H is

  * ``coarse_objective='network'`` (default): the coarse network's loss on
    the engine's ``batch`` extra arg. For ``hierarchy='depth'`` that network
    is the run's ODE-ResNet with half the residual layers per block and step
    2h (:func:`nnopt.multilevel.coarse_network.depth_coarse_model`), the
    coarse model of Kreis Ex. 3.34 (3.12)–(3.14) and spec-mgopt §7.1/§7.2, so
    it is the default; for ``'identity'`` it is the run's model itself.
  * ``coarse_objective='galerkin'``: f_H(θ̄) = f(θ + P(θ̄ − R_pθ)) through the
    engine's ``value_fn`` (the fine network with tied residual layers; exact
    but it costs fine evaluations).

  Hierarchies: ``'depth'`` (:func:`depth_transfer` with ``interpolation``,
  on the stacked residual leaves of e.g. an ODE-ResNet; the model must have
  some) and ``'identity'`` (Kreis Ex. 3.38).

  Args:
    learning_rate: the smoother's learning rate.
    inner / inner_options: the smoother (a registered optimizer).
    coarse / coarse_learning_rate / coarse_options: the optimizer on h.
    coarse_lr_factor: ᾱ = factor · α when ``coarse_learning_rate`` is None
      (schedules are scaled too).
    coarse_objective: ``'network'`` or ``'galerkin'`` (see above).
    hierarchy / interpolation: the transfer (see above).
    num_coarse_steps / every / lam / alpha_cgc / rule / gate_mode / kappa /
      kappa2: see :func:`coarse_grid_correction`.
    loss: the loss of the coarse network, a :func:`nnopt.losses.get_loss`
      name (default: the run's loss, else softmax cross-entropy).
    model: the fine model for ``'network'`` (default: the run's).
    experiment: set by :func:`nnopt.config.build` (the run's model and loss).

  References:
    Kreis Algorithm 5, (3.5), Ex. 3.34/3.35/3.38.
  """
  if hierarchy == "depth":
    transfer = depth_transfer(interpolation)
  elif hierarchy == "identity":
    transfer = identity_transfer()
  else:
    raise ValueError(f"mgopt hierarchy must be 'depth' or 'identity', got "
                     f"{hierarchy!r}")
  if coarse_objective not in COARSE_OBJECTIVES:
    raise ValueError(f"mgopt coarse_objective must be one of "
                     f"{COARSE_OBJECTIVES}, got {coarse_objective!r}")
  fine = _inner_optimizer("inner", inner, learning_rate, inner_options)
  if coarse_learning_rate is None:
    coarse_learning_rate = _scaled(learning_rate, coarse_lr_factor)
  coarse_opt = _inner_optimizer("coarse", coarse, coarse_learning_rate,
                                coarse_options)
  coarse_batch_loss = None
  if coarse_objective == "network":
    coarse_batch_loss = _network_coarse_loss(hierarchy, interpolation, model,
                                             loss, experiment)
  cgc = coarse_grid_correction(
      fine, coarse_opt, transfer, num_coarse_steps=num_coarse_steps,
      every=every, lam=lam, alpha_cgc=alpha_cgc, rule=rule,
      gate_mode=gate_mode, kappa=kappa, kappa2=kappa2,
      coarse_batch_loss=coarse_batch_loss)
  if hierarchy != "depth":
    return cgc

  def init(params):
    paths = [_path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    if not any(is_residual_path(p) for p in paths):
      raise ValueError("mgopt with hierarchy='depth' needs stacked residual "
                       "parameters (a path component 'block…', e.g. "
                       "ODEResNet); this model has none")
    return cgc.init(params)

  return optax.GradientTransformationExtraArgs(init, cgc.update)


def register() -> None:
  if "odenet" not in MODELS:
    register_model("odenet", ODEResNet)
  from nnopt.config import HOOKS, register_hook  # pylint: disable=g-import-not-at-top
  if "mlsgd" not in HOOKS:
    register_hook("mlsgd", mlsgd_hook)
  if "mgopt" not in optimizers_lib.OPTIMIZERS:
    optimizers_lib.register_optimizer("mgopt", mgopt)
