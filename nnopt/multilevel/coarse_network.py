"""Coarse networks for MG/Opt: the ODE-ResNet with half the depth and step 2h.

Kreis Ex. 3.34, (3.12)–(3.14): the fine network integrates each residual
block with n explicit Euler steps of size h; its coarse model integrates the
same time interval with n/2 steps of size 2h (spec-mgopt §5.2, §7.1/§7.2:
"a ResNet with half the blocks and step 2h"). Its parameters are those of the
fine network with every stacked residual leaf halved along the layer axis, so
the depth transfers of :mod:`nnopt.multilevel.network_transfers` map between
the two. The coarse objective of a cgc is that network's loss on the current
mini-batch (the ``batch`` extra arg of nnopt's engine):

.. math::  f_H(θ̄) = ℓ(g_H(θ̄, x), y),

which the cgc makes first-order coherent with the fine loss by the shift
⟨R_g∇f(θ) − ∇f_H(R_pθ), θ̄⟩ (:func:`nnopt.multilevel.cgc_objective`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax

from nnopt.losses import Loss
from nnopt.models.apply import apply_model
from nnopt.multilevel.network_transfers import coarse_depth
from nnopt.multilevel.transfer import TransferError
from nnopt.stats.layer_keys import leaves_by_path

Array = jax.Array
PyTree = Any
BatchLoss = Callable[[PyTree, Mapping[str, Array]], Array]

# What makes a model "ODE-ResNet-like": a dataclass (flax module) whose
# residual layers per block and Euler step are fields.
DEPTH_FIELDS = ("layers_per_block", "h")


def is_depth_model(model: Any) -> bool:
  """Whether ``model`` has the :data:`DEPTH_FIELDS` (e.g. ``ODEResNet``)."""
  if not dataclasses.is_dataclass(model):
    return False
  names = {f.name for f in dataclasses.fields(model)}
  return all(name in names for name in DEPTH_FIELDS)


def depth_coarse_model(fine: nn.Module, interpolation: str = "constant"
                       ) -> nn.Module:
  """The coarse ODE-ResNet of Kreis Ex. 3.34: half the layers, step 2h.

  Args:
    fine: an ODE-ResNet-like module (fields ``layers_per_block`` and ``h``;
      residual parameters stacked on a leading layer axis).
    interpolation: the depth transfer's kind (``'constant'`` and ``'linear'``:
      n → n/2 layers; ``'linear_odd'``: 2n − 1 → n, Kreis Ex. 3.36).

  Returns:
    ``fine`` with ``layers_per_block`` coarsened and ``h`` doubled.

  Raises:
    ValueError: ``fine`` is not ODE-ResNet-like, or its depth cannot be
      coarsened with ``interpolation``.
  """
  if not is_depth_model(fine):
    raise ValueError(
        f"a network coarse model needs an ODE-ResNet-like model with fields "
        f"{DEPTH_FIELDS} and stacked residual parameters (e.g. "
        f"nnopt.models.odenet.ODEResNet); got {type(fine).__name__}")
  try:
    n_coarse = coarse_depth(fine.layers_per_block, interpolation)
  except TransferError as e:
    raise ValueError(f"{type(fine).__name__}: {e}") from None
  return dataclasses.replace(fine, layers_per_block=n_coarse, h=2 * fine.h)


def batch_loss(model: nn.Module, loss: Loss) -> BatchLoss:
  """``(params, batch) -> loss(model(params, batch['x']), batch['y'], weights)``.

  The model runs in training mode like the engine's step; it must have no
  non-parameter state (an ODE-ResNet normalizes with the batch's own
  statistics and has none) and no dropout.
  """

  def value(params, batch):
    outputs = apply_model(model, params, batch["x"], train=True)[0]
    return loss(outputs, batch["y"], batch.get("weights"))

  return value


def _shapes(tree: PyTree) -> dict[str, tuple[int, ...]]:
  return {key: tuple(leaf.shape) for key, leaf in leaves_by_path(tree).items()}


def check_coarse_params(model: nn.Module, coarse_params: PyTree,
                        example_inputs: Array) -> None:
  """Raises ValueError unless ``coarse_params`` fit ``model`` (abstractly)."""
  want = _shapes(jax.eval_shape(
      lambda: model.init(jax.random.key(0), example_inputs))["params"])
  got = _shapes(coarse_params)
  if got != want:
    diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    details = "; ".join(f"{k}: restricted {got.get(k)}, coarse network "
                        f"{want.get(k)}" for k in diff[:4])
    raise ValueError(
        f"the restricted parameters do not fit the coarse network "
        f"{type(model).__name__} (layers_per_block="
        f"{getattr(model, 'layers_per_block', '?')}): {details}")


def network_coarse_loss(coarse_model: nn.Module, loss: Loss, *,
                        check: bool = True) -> BatchLoss:
  """f_H(θ̄, batch): the coarse network's loss on a batch.

  Args:
    coarse_model: e.g. :func:`depth_coarse_model` of the fine model.
    loss: the run's loss.
    check: on the first trace for a batch shape, check that θ̄ has the coarse
      network's parameter shapes (a clear error instead of flax's).
  """
  value = batch_loss(coarse_model, loss)
  checked = set()

  def f_H(theta_c, batch):
    key = tuple(batch["x"].shape[1:])
    if check and key not in checked:
      check_coarse_params(coarse_model, theta_c, batch["x"][:1])
      checked.add(key)
    return value(theta_c, batch)

  return f_H


__all__ = ["BatchLoss", "DEPTH_FIELDS", "batch_loss", "check_coarse_params",
           "depth_coarse_model", "is_depth_model", "network_coarse_loss"]
