"""optax GradientTransformations of nnopt (pure, composable with optax).

Building blocks are ``scale_by_*`` (no learning rate); aliases take the
learning rate first, like optax's.

* Noise-aware (Balles): ``msgd``, ``sign_sgd``, ``msign_sgd``, ``svag``,
  ``msvag``, ``msvag_mb``, ``adam_star``, ``l1_sign_gd``,
  ``block_normalized_gd``, ``coordinate_descent``, ``diag_ef``, ``cabs_sgd``.
* Layer-wise preconditioning (Kreis ch. 5): ``scale_by_inner_products``,
  ``scale_by_frobenius`` / ``frobenius_sgd``, ``scale_by_kfac`` / ``kfac``.
* The multilevel coarse-grid correction lives in :mod:`nnopt.multilevel`.
"""

from nnopt.transforms.batch_variance import (BatchVarianceState, cabs_sgd,
                                             find_batch_variance,
                                             track_batch_variance)
from nnopt.transforms.frobenius import (FrobeniusState, frobenius_sgd,
                                        scale_by_frobenius)
from nnopt.transforms.inner_products import (InnerProduct, euclidean,
                                             fixed_spd, scale_by_inner_products,
                                             scaled_identity, sobolev_grid)
from nnopt.transforms.kfac import kfac, scale_by_kfac
from nnopt.transforms.noise_aware import (adam_star, msgd, msign_sgd, msvag,
                                          msvag_mb, scale_by_adam_star,
                                          scale_by_msgd, scale_by_msign,
                                          scale_by_msvag, scale_by_msvag_mb,
                                          scale_by_sign, scale_by_svag,
                                          sign_sgd, svag)
from nnopt.transforms.steepest_descent import (block_normalized_gd,
                                               coordinate_descent, diag_ef,
                                               l1_sign_gd,
                                               scale_by_block_normalize,
                                               scale_by_coordinate_descent,
                                               scale_by_diag_ef,
                                               scale_by_l1_sign)

__all__ = [n for n in dir() if not n.startswith("_")]
