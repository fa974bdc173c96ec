"""Multilevel training of one network: its level models and MG/Opt around
any optax smoother.

* :func:`level_models` derives the MLSGD level hierarchy from the finest
  ODE-ResNet: ``'depth'`` halves ``layers_per_block`` and doubles ``h`` per
  level (constant interpolation); ``'resolution'`` is a two-level hierarchy
  whose coarse model pools its inputs 2×2 and uses 2×2 residual kernels (the
  fine model must use ``res_param='mlsgd_basis'``).
* :func:`network_mgopt` wraps a fine optimizer (the smoother) and a coarse
  optimizer, both optax transformations, in
  :func:`nnopt.multilevel.transform.coarse_grid_correction` with a depth or
  identity transfer and the coarse network's (or the Galerkin) objective.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax

from nnopt.losses import Loss, get_loss
from nnopt.multilevel.coarse_network import (depth_coarse_model,
                                             network_coarse_loss)
from nnopt.multilevel.network_transfers import (depth_transfer,
                                                is_residual_path,
                                                resolution_transfer)
from nnopt.multilevel.transfer import identity_transfer
from nnopt.multilevel.transform import coarse_grid_correction
from nnopt.stats.layer_keys import key_str

HIERARCHIES = ("depth", "identity")
COARSE_OBJECTIVES = ("network", "galerkin")


def level_models(fine: Any, hierarchy: str, num_levels: int):
  """Level models coarsest → finest and the transfers between them.

  Args:
    fine: the finest model, an ODE-ResNet-like dataclass (fields
      ``layers_per_block``, ``h``; for ``'resolution'`` also ``res_kernel``,
      ``res_param``, ``input_pool``, ``channels``).
    hierarchy: ``'depth'`` or ``'resolution'``.
    num_levels: the number of levels (2 for ``'resolution'``).

  Returns:
    ``(models, transfers)``: ``num_levels`` models and ``num_levels - 1``
    transfers, transfer ``k`` between models ``k`` and ``k + 1``.
  """
  if hierarchy == "depth":
    if fine.layers_per_block % 2 ** (num_levels - 1):
      raise ValueError(f"{num_levels} depth levels need layers_per_block "
                       f"divisible by {2 ** (num_levels - 1)}, got "
                       f"{fine.layers_per_block}")
    models = [dataclasses.replace(fine,
                                  layers_per_block=fine.layers_per_block // 2 ** k,
                                  h=fine.h * 2 ** k)
              for k in reversed(range(num_levels))]
    return models, [depth_transfer("constant")] * (num_levels - 1)
  if hierarchy == "resolution":
    if num_levels != 2:
      raise ValueError("the resolution hierarchy has exactly 2 levels")
    coarse = dataclasses.replace(fine, res_kernel=2, res_param="standard",
                                 input_pool=fine.input_pool + 1)
    return [coarse, fine], [resolution_transfer(fc_channels=fine.channels[-1])]
  raise ValueError(f"hierarchy must be 'depth' or 'resolution', got {hierarchy!r}")


def _coarse_batch_loss(hierarchy: str, interpolation: str, model: Any,
                       loss: Loss | None):
  """f_H(θ̄, batch) of the coarse network for ``coarse_objective='network'``."""
  if model is None:
    raise ValueError(
        "mgopt with coarse_objective='network' needs the run's model: build "
        "the optimizer through nnopt.config.build (which passes model=), "
        "pass model=, or use coarse_objective='galerkin'")
  loss = get_loss("softmax_cross_entropy") if loss is None else loss
  coarse_model = (depth_coarse_model(model, interpolation)
                  if hierarchy == "depth" else model)
  return network_coarse_loss(coarse_model, loss)


def network_mgopt(fine: optax.GradientTransformation,
                  coarse: optax.GradientTransformation, *,
                  hierarchy: str = "depth", interpolation: str = "constant",
                  coarse_objective: str = "network", model: Any = None,
                  loss: Loss | None = None, num_coarse_steps: int = 5,
                  every: int = 2, lam: float = 0.0, alpha_cgc: float = 1.0,
                  rule: str = "fixed", gate_mode: str = "none",
                  kappa: float = 0.25, kappa2: float = 0.0
                  ) -> optax.GradientTransformationExtraArgs:
  """MG/Opt on a network: :func:`coarse_grid_correction` of ``fine``/``coarse``.

  Every ``every`` steps (κ-gate permitting) the smoother's step is replaced
  by a cgc of ``num_coarse_steps`` steps of ``coarse`` on the
  first-order-coherent cgc objective
  h(θ̄) = f_H(θ̄) + ⟨R_g g − ∇f_H(R_pθ), θ̄⟩ + λ/2‖θ̄ − R_pθ‖² of the current
  batch (Kreis Algorithm 5, (3.5)). The coarse objective f_H is

  * ``coarse_objective='network'``: the coarse network's loss on the step's
    ``batch`` extra arg. For ``hierarchy='depth'`` that network is ``model``
    with half the residual layers per block and step 2h
    (:func:`nnopt.multilevel.coarse_network.depth_coarse_model`, Kreis
    Ex. 3.34 (3.12)–(3.14)); for ``'identity'`` it is ``model`` itself.
  * ``coarse_objective='galerkin'``: f_H(θ̄) = f(θ + P(θ̄ − R_pθ)) through the
    step's ``value_fn`` (the fine network with tied residual layers; exact
    but it costs fine evaluations).

  Args:
    fine: the smoother.
    coarse: the optimizer on h.
    hierarchy: ``'depth'`` (:func:`depth_transfer` with ``interpolation`` on
      the stacked residual leaves of e.g. an ODE-ResNet) or ``'identity'``
      (Kreis Ex. 3.38).
    interpolation: the depth transfer's kind.
    coarse_objective: ``'network'`` or ``'galerkin'`` (see above).
    model: the fine model (needed for ``'network'``).
    loss: the loss of the coarse network (default: softmax cross-entropy).
    num_coarse_steps / every / lam / alpha_cgc / rule / gate_mode / kappa /
      kappa2: see :func:`coarse_grid_correction`.

  References:
    Kreis Algorithm 5, (3.5), Ex. 3.34/3.35/3.38.
  """
  if hierarchy == "depth":
    transfer = depth_transfer(interpolation)
  elif hierarchy == "identity":
    transfer = identity_transfer()
  else:
    raise ValueError(f"mgopt hierarchy must be one of {HIERARCHIES}, got "
                     f"{hierarchy!r}")
  if coarse_objective not in COARSE_OBJECTIVES:
    raise ValueError(f"mgopt coarse_objective must be one of "
                     f"{COARSE_OBJECTIVES}, got {coarse_objective!r}")
  coarse_batch_loss = None
  if coarse_objective == "network":
    coarse_batch_loss = _coarse_batch_loss(hierarchy, interpolation, model,
                                           loss)
  cgc = coarse_grid_correction(
      fine, coarse, transfer, num_coarse_steps=num_coarse_steps, every=every,
      lam=lam, alpha_cgc=alpha_cgc, rule=rule, gate_mode=gate_mode,
      kappa=kappa, kappa2=kappa2, coarse_batch_loss=coarse_batch_loss)
  if hierarchy != "depth":
    return cgc

  def init(params):
    paths = [key_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    if not any(is_residual_path(p) for p in paths):
      raise ValueError("mgopt with hierarchy='depth' needs stacked residual "
                       "parameters (a path component 'block…', e.g. "
                       "ODEResNet); this model has none")
    return cgc.init(params)

  return optax.GradientTransformationExtraArgs(init, cgc.update)


__all__ = ["COARSE_OBJECTIVES", "HIERARCHIES", "level_models", "network_mgopt"]
