"""Kronecker-factor math shared by the layer-wise preconditioners.

`factors` turns one layer's captured statistics into its two Kronecker
factors (input side A, output side G), `solvers` inverts damped factors and
applies them to kernel gradients, `diagnostics` gives the per-layer gradient
norms and spectra plotted in Kreis ch. 5.
"""

from nnopt.preconditioning.diagnostics import (frobenius_norm_thesis,
                                               gradient_norms, spectra)
from nnopt.preconditioning.factors import (FactorError, LayerGeometry,
                                           input_factor, layer_geometry,
                                           output_factor)
from nnopt.preconditioning.solvers import (damped_inverse, pi_damping,
                                           precondition_kernel)

__all__ = [
    "FactorError", "LayerGeometry", "damped_inverse", "frobenius_norm_thesis",
    "gradient_norms", "input_factor", "layer_geometry", "output_factor",
    "pi_damping", "precondition_kernel", "spectra",
]
