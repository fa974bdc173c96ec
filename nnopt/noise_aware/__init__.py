"""Noise-aware methods of Balles's thesis (chs. 3-7).

* variance-adapted and sign transforms (:mod:`~nnopt.noise_aware.adaptation`):
  ``msgd``, ``sign_sgd``, ``msign_sgd``, ``svag``, ``msvag``, ``msvag_mb``,
  ``adam_star`` and their ``scale_by_*`` building blocks;
* sign-descent geometry transforms (:mod:`~nnopt.noise_aware.steepest_descent`):
  ``l1_sign_gd``, ``block_normalized_gd``, ``coordinate_descent``, ``diag_ef``;
* batch-variance estimation inside an optimizer and CABS
  (:mod:`~nnopt.noise_aware.batch_variance`, :mod:`~nnopt.noise_aware.cabs`);
* the geometry of sign descent (:mod:`~nnopt.noise_aware.geometry`) and
  Fisher vs empirical Fisher (:mod:`~nnopt.noise_aware.fisher`).
"""

from nnopt.noise_aware.batch_variance import (BatchVarianceState, cabs_sgd,
                                              find_batch_variance,
                                              track_batch_variance)
from nnopt.noise_aware.steepest_descent import (block_normalized_gd,
                                                coordinate_descent, diag_ef,
                                                l1_sign_gd,
                                                scale_by_block_normalize,
                                                scale_by_coordinate_descent,
                                                scale_by_diag_ef,
                                                scale_by_l1_sign)
from nnopt.noise_aware.adaptation import (adam_star, msgd, msign_sgd, msvag,
                                    msvag_mb, scale_by_adam_star,
                                    scale_by_msgd, scale_by_msign,
                                    scale_by_msvag, scale_by_msvag_mb,
                                    scale_by_sign, scale_by_svag, sign_sgd,
                                    svag)

__all__ = [n for n in dir() if not n.startswith("_")]
