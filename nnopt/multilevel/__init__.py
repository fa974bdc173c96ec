"""Multilevel training: transfer operators, MG/Opt and MLSGD.

* transfers (pytree maps): :class:`Transfer`, :func:`compose`,
  :func:`matrix_transfer`, :func:`eigen_transfer`, :func:`pinv_restriction`,
  :func:`identity_transfer`, :func:`depth_transfer`,
  :func:`resolution_transfer`; checks :func:`adjoint_constant`,
  :func:`check_transfer`, :func:`operator_norm`.
* MG/Opt (Kreis ch. 2.4/3): :func:`cgc_objective`, :func:`cgc_gradient`,
  :func:`gate`, :func:`coarse_grid_correction` (pure) and
  :func:`coarse_grid_correction_transform` (optax), :func:`galerkin_quadratic`,
  :func:`algorithm4`, :func:`algorithm5`, :func:`two_level`, :func:`vcycle`;
  coarse networks :func:`depth_coarse_model` (half the residual layers, step
  2h) and :func:`network_coarse_loss` (its loss on a batch).
* MLSGD (MLSGD thesis): the settings :class:`MLSGDConfig` and the pure
  pieces :func:`angle_ok`, :func:`gates_ok`, :func:`full_gradient`
  (:mod:`~nnopt.multilevel.mlsgd`); the level direction
  :func:`mlsgd_direction` and the per-step angle condition
  :func:`angle_guard` as optax transforms
  (:mod:`~nnopt.multilevel.mlsgd_transforms`); :class:`MLSGDHook`, which
  runs the V-cycles in the engine's training loop
  (:mod:`~nnopt.multilevel.hook`; there is no second driver).
* one network's levels (:mod:`~nnopt.multilevel.levels`): :func:`level_models`
  for MLSGD and :func:`network_mgopt`, MG/Opt around any optax smoother.
"""

from nnopt.models.kernels import (avg_pool2, basis_kernel, kernel_to_basis,
                                  replicate2)
from nnopt.multilevel.cgc import (CGCInfo, apply_correction, cgc_gradient,
                                  cgc_objective, cgc_shift, coarse_grid_correction,
                                  coarse_solve, gate)
from nnopt.multilevel.coarse_network import (batch_loss, depth_coarse_model,
                                             network_coarse_loss)
from nnopt.multilevel.hook import MLSGDHook
from nnopt.multilevel.levels import level_models, network_mgopt
from nnopt.multilevel.mgopt import (History, Quadratic, algorithm4, algorithm5,
                                    exact_quadratic_cgc, galerkin_quadratic,
                                    two_level, vcycle)
from nnopt.multilevel.mlsgd import (MLSGDConfig, angle_ok, full_gradient,
                                    gates_ok)
from nnopt.multilevel.mlsgd_transforms import (AngleGuardState,
                                               MLSGDDirectionState,
                                               angle_guard, mlsgd_direction)
from nnopt.multilevel.network_transfers import (depth_prolongation_matrix,
                                                depth_restriction_matrix,
                                                depth_transfer,
                                                resolution_transfer)
from nnopt.multilevel.transfer import (Transfer, TransferError, adjoint_constant,
                                       check_transfer, compose,
                                       eigen_restriction, eigen_transfer,
                                       identity_transfer, matrix_transfer,
                                       operator_norm, pinv_restriction,
                                       prolong_transpose)
from nnopt.multilevel.transform import (CoarseCorrectionState,
                                        coarse_grid_correction as
                                        coarse_grid_correction_transform)

__all__ = [n for n in dir() if not n.startswith("_")]
