"""Noise-aware methods of Balles's thesis (chs. 3-7).

* M-SGD, SIGN-SGD and M-SSD (:mod:`~nnopt.noise_aware.momentum`): ``msgd``,
  ``sign_sgd``, ``msign_sgd``;
* variance adaptation with EMA estimates
  (:mod:`~nnopt.noise_aware.variance_adaptation`): ``svag``, ``msvag``,
  ``adam_star``; with mini-batch estimates
  (:mod:`~nnopt.noise_aware.msvag_mb`): ``msvag_mb``;
* sign-descent geometry transforms (:mod:`~nnopt.noise_aware.steepest_descent`):
  ``l1_sign_gd``, ``block_normalized_gd``, ``coordinate_descent``; the
  diagonal empirical Fisher (:mod:`~nnopt.noise_aware.diag_ef`): ``diag_ef``;
* batch-variance estimation inside an optimizer
  (:mod:`~nnopt.noise_aware.batch_variance`: ``track_batch_variance``,
  ``cabs_sgd``), the CABS and competitor batch-size rules
  (:mod:`~nnopt.noise_aware.cabs_rule`) and their hooks on a training run
  (:mod:`~nnopt.noise_aware.cabs`: ``CABS``, ``Competitor``);
* EMA variance estimation (:mod:`~nnopt.noise_aware.ema`);
* the geometry of sign descent (:mod:`~nnopt.noise_aware.geometry`) and
  Fisher vs empirical Fisher (:mod:`~nnopt.noise_aware.fisher`).

Every transform is an optax ``GradientTransformationExtraArgs``; those that
read the step's layer statistics (``msvag_mb``, ``diag_ef``,
``track_batch_variance``/``cabs_sgd``) declare ``Needs(stats=True)`` in their
state (:mod:`nnopt.stats.needs`).
"""

from nnopt.noise_aware.batch_variance import (BatchVarianceState, cabs_sgd,
                                              find_batch_variance,
                                              track_batch_variance)
from nnopt.noise_aware.cabs import CABS, Competitor
from nnopt.noise_aware.cabs_rule import (BatchRuleState, CABSError, cabs_next,
                                         competitor_next)
from nnopt.noise_aware.diag_ef import DiagEFState, diag_ef, scale_by_diag_ef
from nnopt.noise_aware.momentum import (MomentumState, msgd, msign_sgd,
                                        scale_by_msgd, scale_by_msign,
                                        scale_by_sign, sign_sgd)
from nnopt.noise_aware.msvag_mb import MsvagMbState, msvag_mb, scale_by_msvag_mb
from nnopt.noise_aware.steepest_descent import (block_normalized_gd,
                                                coordinate_descent, l1_sign_gd,
                                                scale_by_block_normalize,
                                                scale_by_coordinate_descent,
                                                scale_by_l1_sign)
from nnopt.noise_aware.variance_adaptation import (VarianceAdaptationState,
                                                   adam_star, msvag,
                                                   scale_by_adam_star,
                                                   scale_by_msvag,
                                                   scale_by_svag, svag)

__all__ = [
    "BatchRuleState", "BatchVarianceState", "CABS", "CABSError", "Competitor",
    "DiagEFState", "MomentumState", "MsvagMbState", "VarianceAdaptationState",
    "adam_star", "block_normalized_gd", "cabs_next", "cabs_sgd",
    "competitor_next", "coordinate_descent", "diag_ef", "find_batch_variance",
    "l1_sign_gd", "msgd", "msign_sgd", "msvag", "msvag_mb",
    "scale_by_adam_star", "scale_by_block_normalize",
    "scale_by_coordinate_descent", "scale_by_diag_ef", "scale_by_l1_sign",
    "scale_by_msgd", "scale_by_msign", "scale_by_msvag", "scale_by_msvag_mb",
    "scale_by_sign", "scale_by_svag", "sign_sgd", "svag",
    "track_batch_variance",
]
