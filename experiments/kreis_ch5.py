"""Settings of Kreis ch. 5 shared by ``configs/frobenius_exp{1,2,3}.py`` and
``reproduce_frobenius.py``: the learning-rate grids of §5.3.3 and App. B.4
(spec §4), the champion step sizes and the damping of each experiment.

Configs import them as ``from experiments import kreis_ch5`` (the package
``experiments`` is installed with nnopt, so this works from any directory).

The thesis's autoencoder loss is PyTorch's ``MSELoss`` (mean over N·D, no ½)
with BackPACK's G scaling (spec P11). nnopt's ``squared_error`` is
``½‖·‖²`` per example with model samples from N(ŷ, I); the two runs are the
same when the learning rate is multiplied by ``2/D`` and G by ``2/D``
(``cotangent_scale``), see :func:`torch_mse_equivalent`.
"""

from __future__ import annotations

import numpy as np

EXP1_GRID = tuple(float(v) for v in np.logspace(0, -5, num=30))
EXP2_SGD_GRID = tuple(sorted(set(float(v) for v in np.logspace(0, -5, 50))
                             | {0.1}, reverse=True))  # P8: 0.1 added
EXP2_PRECOND_GRID = tuple(round(0.2 - 0.01 * i, 2) for i in range(16))
EXP3_GRID = tuple(float(v) for v in np.logspace(-5, 0, num=100))
EXP3_SGD_EXTENDED = tuple(float(v) for v in np.logspace(0, 1, num=11)[1:])  # P8

CHAMPIONS = {  # (SGD, preconditioned), spec §4 with P4 resolved
    "exp1": (EXP1_GRID[3], EXP1_GRID[19]),
    "exp2": (0.1, 0.1),
    "exp3": (1.0, EXP3_GRID[67]),
}
DAMPING = {"exp1": 1e-2, "exp2": 1e-3, "exp3": 1e-3}


def torch_mse_equivalent(learning_rate: float, output_dim: int
                         ) -> tuple[float, float]:
  """``(lr, cotangent_scale)`` for ``squared_error`` matching torch-mean MSE."""
  return learning_rate * 2.0 / output_dim, 2.0 / output_dim


def sgd_variant(learning_rate: float, *, output_dim: int | None = None
                ) -> dict:
  """A config variant: plain SGD at a thesis rate (for the autoencoder, the
  torch-MSE-equivalent rate, :func:`torch_mse_equivalent`)."""
  if output_dim is not None:
    learning_rate = torch_mse_equivalent(learning_rate, output_dim)[0]
  return dict(optimizer=dict(name="sgd", learning_rate=learning_rate,
                             options={}))


def frobenius_variant(learning_rate: float, experiment: str, *,
                      output_dim: int | None = None) -> dict:
  """A config variant: covariance-preconditioned SGD at a thesis rate with
  the experiment's damping on both factors (autoencoder: torch-MSE
  equivalent rate and G scale)."""
  damping = DAMPING[experiment]
  options = dict(damping_x=damping, damping_y=damping)
  if output_dim is not None:
    learning_rate, options["cotangent_scale"] = torch_mse_equivalent(
        learning_rate, output_dim)
  return dict(optimizer=dict(name="frobenius_sgd", learning_rate=learning_rate,
                             options=options))


def grid_variants(sgd_grid, pre_grid, experiment: str, *,
                  output_dim: int | None = None) -> dict:
  """``sgd_lrNN`` and ``frobenius_lrNN`` for every rate of the two grids."""
  variants = {f"sgd_lr{i:02d}": sgd_variant(lr, output_dim=output_dim)
              for i, lr in enumerate(sgd_grid)}
  variants.update({f"frobenius_lr{i:02d}": frobenius_variant(
      lr, experiment, output_dim=output_dim) for i, lr in enumerate(pre_grid)})
  return variants
