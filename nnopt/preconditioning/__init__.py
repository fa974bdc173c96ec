"""Layer-wise preconditioning (Kreis ch. 2.5 and 5).

* fixed inner products per layer (:mod:`~nnopt.preconditioning.inner_products`:
  :func:`scale_by_inner_products`, :func:`inner_product_sgd`);
* the covariance (Frobenius/K-FAC) preconditioner as composable pieces:
  factor estimation (:mod:`~nnopt.preconditioning.estimation`,
  :func:`kronecker_factors`), damping and inversion
  (:mod:`~nnopt.preconditioning.inversion`, :func:`damped_inverses`;
  numerics in :mod:`~nnopt.preconditioning.solvers`) and preconditioning of
  kernels and biases (:mod:`~nnopt.preconditioning.preconditioner`,
  :func:`scale_by_kronecker`), for the layers that
  :mod:`~nnopt.preconditioning.layer_plan` selects; the factors themselves
  come from :mod:`nnopt.stats.kronecker`; the dense inverses can be spread
  over the devices of a mesh axis (``distribute_inverses=``,
  :mod:`~nnopt.preconditioning.distribution`);
* option sets over those pieces: :func:`scale_by_frobenius` /
  :func:`frobenius_sgd` (the thesis's, :mod:`~nnopt.preconditioning.frobenius`)
  and :func:`scale_by_kfac` / :func:`kfac`
  (:mod:`~nnopt.preconditioning.kfac_preset`);
* per-layer diagnostics of ch. 5 (:mod:`~nnopt.preconditioning.diagnostics`).

The state of the covariance preconditioner is a :class:`FrobeniusState`; in
a chained optimizer state ``optax.tree_utils.tree_get(opt_state,
'FrobeniusState')`` finds it.
"""

from nnopt.preconditioning.diagnostics import (frobenius_norm_thesis,
                                               gradient_norms, spectra)
from nnopt.preconditioning.estimation import (FactorEstimateState,
                                              FactorEstimator,
                                              kronecker_factors)
from nnopt.preconditioning.frobenius import frobenius_sgd, scale_by_frobenius
from nnopt.preconditioning.inner_products import (InnerProduct, euclidean,
                                                  fixed_spd,
                                                  inner_product_sgd,
                                                  scale_by_inner_products,
                                                  scaled_identity,
                                                  sobolev_grid)
from nnopt.preconditioning.inversion import (InverseState, Inverter,
                                             damped_inverses)
from nnopt.preconditioning.kfac_preset import kfac, scale_by_kfac
from nnopt.preconditioning.layer_plan import LayerPlan
from nnopt.preconditioning.preconditioner import (FrobeniusState,
                                                  scale_by_kronecker)
from nnopt.preconditioning.solvers import (damped_inverse, pi_damping,
                                           precondition_kernel)

__all__ = [n for n in dir() if not n.startswith("_")]
