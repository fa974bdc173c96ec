"""Config names for multilevel training: the ``'odenet'`` model, the
``'mlsgd'`` hook (``hooks=[{'name': 'mlsgd', 'options': {...}}]``) and the
``'mgopt'`` optimizer (MG/Opt's coarse-grid correction around an inner
optimizer, ``optimizer.name = 'mgopt'``).

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

from nnopt import optimizers as optimizers_lib
from nnopt.models import MODELS, register_model
from nnopt.models.odenet import ODEResNet, odenet_regularizer
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


def mgopt(learning_rate, *, inner: str = "sgd",
          inner_options: dict[str, Any] | None = None, coarse: str = "sgd",
          coarse_learning_rate: float | None = None,
          coarse_options: dict[str, Any] | None = None,
          hierarchy: str = "depth", interpolation: str = "constant",
          num_coarse_steps: int = 5, every: int = 2, lam: float = 0.0,
          alpha_cgc: float = 1.0, rule: str = "fixed", gate_mode: str = "none",
          kappa: float = 0.25, kappa2: float = 0.0
          ) -> optax.GradientTransformationExtraArgs:
  """MG/Opt for configs: :func:`coarse_grid_correction` around ``inner``.

  The smoother is the registered optimizer ``inner`` at ``learning_rate``;
  every ``every`` steps (κ-gate permitting) it is replaced by a cgc of
  ``num_coarse_steps`` steps of ``coarse`` (at ``coarse_learning_rate``,
  default ``learning_rate``) on the Galerkin coarse objective
  f_H(θ̄) = f(θ + P(θ̄ − R_pθ)) of the current batch (the engine's
  ``value_fn``). Hierarchies: ``'depth'`` (:func:`depth_transfer` with
  ``interpolation``, on the stacked residual leaves of e.g. an ODE-ResNet;
  the model must have some) and ``'identity'`` (Kreis Ex. 3.38).

  References:
    Kreis Algorithm 5, (3.5), Ex. 3.35/3.38.
  """
  if hierarchy == "depth":
    transfer = depth_transfer(interpolation)
  elif hierarchy == "identity":
    transfer = identity_transfer()
  else:
    raise ValueError(f"mgopt hierarchy must be 'depth' or 'identity', got "
                     f"{hierarchy!r}")
  fine = _inner_optimizer("inner", inner, learning_rate, inner_options)
  coarse_opt = _inner_optimizer(
      "coarse", coarse,
      learning_rate if coarse_learning_rate is None else coarse_learning_rate,
      coarse_options)
  cgc = coarse_grid_correction(
      fine, coarse_opt, transfer, num_coarse_steps=num_coarse_steps,
      every=every, lam=lam, alpha_cgc=alpha_cgc, rule=rule,
      gate_mode=gate_mode, kappa=kappa, kappa2=kappa2)
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
