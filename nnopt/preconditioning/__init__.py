"""Layer-wise preconditioning (Kreis ch. 2.5 and 5).

* fixed inner products per layer (:mod:`~nnopt.preconditioning.inner_products`);
* the covariance (Frobenius) preconditioner and its K-FAC option set
  (:mod:`~nnopt.preconditioning.frobenius`, :mod:`~nnopt.preconditioning.kfac_preset`),
  built on the Kronecker factors of :mod:`nnopt.stats.kronecker`;
* damping and inversion (:mod:`~nnopt.preconditioning.solvers`) and the
  per-layer diagnostics of ch. 5 (:mod:`~nnopt.preconditioning.diagnostics`).
"""

from nnopt.preconditioning.diagnostics import (frobenius_norm_thesis,
                                               gradient_norms, spectra)
from nnopt.preconditioning.frobenius import (FrobeniusState, frobenius_sgd,
                                             scale_by_frobenius)
from nnopt.preconditioning.inner_products import (InnerProduct, euclidean,
                                                  fixed_spd,
                                                  scale_by_inner_products,
                                                  scaled_identity,
                                                  sobolev_grid)
from nnopt.preconditioning.kfac_preset import kfac, scale_by_kfac
from nnopt.preconditioning.solvers import (damped_inverse, pi_damping,
                                           precondition_kernel)

__all__ = [n for n in dir() if not n.startswith("_")]
