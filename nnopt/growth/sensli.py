"""SensLI (Kreis Algorithm 6): one selection step as a pure function.

:func:`sensli_step` is lines 4–7 of Algorithm 6::

    ext_model, ext_params, cands = fully_extend(model, params)      # l. 4-5
    sens = sensitivities(ext_model, ext_params, loss, x, y, ...)    # l. 6
    merits = candidate_merits(...); selection = select(merits, ...) # l. 7
    new_model, new_params = insert(model, params, selection.chosen)

The engine adapter that runs it at the end of given epochs and swaps
architecture, parameters and optimizer is :class:`nnopt.growth.hook.SensLI`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import numpy as np

from nnopt.growth.architecture import Candidate, fully_extend, insert
from nnopt.growth.selection import Selection, select
from nnopt.growth.sensitivity import (Sensitivity, candidate_merits,
                                      reference_merits, sensitivities)
from nnopt.losses import Loss


class SensLIResult(NamedTuple):
  """What one SensLI selection computed.

  Attributes:
    model, params: the network after insertion (unchanged if none).
    selection: the :class:`Selection` (chosen names, ratios, reason).
    merits: merit of every candidate.
    reference: the threshold set's merits (empty without threshold).
    candidates: the candidates of the fully extended network.
    ext_model: the fully extended architecture.
    sensitivity: the averaged gradients of the fully extended network.
  """

  model: nn.Module
  params: Any
  selection: Selection
  merits: dict[str, float]
  reference: dict[str, float]
  candidates: list[Candidate]
  ext_model: nn.Module
  sensitivity: Sensitivity


def sensli_step(model: nn.Module, params, loss: Loss, x: np.ndarray,
                y: np.ndarray, *, rule: str = "max", position=None,
                norm: str | None = None, slice_mode: str = "sum_over_in",
                threshold: float | None = None, strict: bool = False,
                denominator: str = "baseline", accept_multiple: bool = False,
                mode: str = "full", batch_size: int | None = None,
                subset_size: int | None = None, augment=None, seed: int = 0,
                resnet_positions: str = "after_each_block",
                resnet_w1_scale: float = 0.8) -> SensLIResult:
  """Sensitivities → merits → selection → insertion (Alg. 6, lines 4–7).

  Args:
    model, params: the current network.
    loss: training loss; ``x``, ``y``: training data (host arrays).
    rule, position, threshold, strict, accept_multiple: see
      :func:`nnopt.growth.select`.
    norm, slice_mode: merit norm (default per family: Frobenius for
      FNN/ResNet, operator norm for VGG), see :mod:`nnopt.growth.norms`.
    denominator: threshold set, see :func:`reference_merits`.
    mode, batch_size, subset_size, augment, seed: see :func:`sensitivities`.
    resnet_positions, resnet_w1_scale: see :func:`candidates` /
      :func:`identity_params`.
  """
  ext_model, ext_params, cands = fully_extend(
      model, params, resnet_w1_scale=resnet_w1_scale,
      resnet_positions=resnet_positions)
  sens = sensitivities(ext_model, ext_params, loss, x, y, mode=mode,
                       batch_size=batch_size, subset_size=subset_size,
                       augment=augment, seed=seed)
  input_shape = x.shape[1:]
  merits = candidate_merits(ext_model, sens.grads, cands, input_shape,
                            norm=norm, slice_mode=slice_mode)
  reference = {}
  if threshold is not None:
    reference = reference_merits(ext_model, sens.grads, cands, input_shape,
                                 norm=norm, denominator=denominator,
                                 slice_mode=slice_mode)
  selection = select(merits, rule, seed=seed, position=position,
                     threshold=threshold, reference=reference, strict=strict,
                     accept_multiple=accept_multiple)
  new_model, new_params = model, params
  if selection.chosen:
    new_model, new_params = insert(model, params, selection.chosen,
                                   resnet_w1_scale=resnet_w1_scale,
                                   resnet_positions=resnet_positions)
  return SensLIResult(new_model, new_params, selection, merits, reference,
                      cands, ext_model, sens)
