"""Config names for multilevel training: the ``'odenet'`` model and the
``'mlsgd'`` hook (``hooks=[{'name': 'mlsgd', 'options': {...}}]``).

The hook factory derives the level models from the config's (finest) model:
``hierarchy='depth'`` halves ``layers_per_block`` and doubles ``h`` per level
(constant interpolation); ``hierarchy='resolution'`` makes a two-level
hierarchy whose coarse model pools its inputs 2×2 and uses 2×2 residual
kernels (the fine model must use ``res_param='mlsgd_basis'``).
"""

from __future__ import annotations

import dataclasses

from nnopt.models import MODELS, register_model
from nnopt.models.odenet import ODEResNet, odenet_regularizer
from nnopt.multilevel.hook import MLSGDHook
from nnopt.multilevel.network_transfers import depth_transfer, resolution_transfer


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
               first_cycle_no_gc: bool = True):
  """Hook factory for configs (see :class:`MLSGDHook`); lr decays ×``decay``
  every ``decay_every`` global epochs (all levels counted)."""
  models, transfers = level_models(experiment.model, hierarchy, len(epochs))

  def schedule(epoch):
    return lr * decay ** (epoch // decay_every) if decay_every else lr

  return MLSGDHook(models, transfers, tuple(epochs), lr=schedule,
                   loss=experiment.loss, dataset=experiment.dataset,
                   variant=variant, lam=lam, stoch_fraction=stoch_fraction,
                   regularizer=odenet_regularizer if regularize else None,
                   first_cycle_no_gc=first_cycle_no_gc, n_cycles=n_cycles)


def register() -> None:
  if "odenet" not in MODELS:
    register_model("odenet", ODEResNet)
  from nnopt.config import HOOKS, register_hook  # pylint: disable=g-import-not-at-top
  if "mlsgd" not in HOOKS:
    register_hook("mlsgd", mlsgd_hook)
