"""Per-layer gradient norms and factor spectra (Kreis Figs 5.2–5.12).

For a layer with Euclidean kernel gradient E and preconditioned gradient
``P = R_Y^{-1} E R_X`` the Frobenius-type norm of the gradient is

.. math::
  ‖P‖_{X→Y}^2 = \\operatorname{tr}(R_X^{-1} P^T R_Y P) = \\sum_{ij} P_{ij} E_{ij}

(the dual norm of the derivative, ≥ 0; spec §1.3). The thesis plotted
``sqrt(trace(P ⊙ E))``, which sums only the diagonal of the Hadamard product
and may be negative (spec P10); :func:`frobenius_norm_thesis` reproduces it
for comparison.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nnopt.preconditioning import solvers

Array = jax.Array


def frobenius_norm(kernel_grad: Array, preconditioned: Array) -> Array:
  """``sqrt(Σ P ⊙ E)``, the Frobenius-type norm (clipped at 0 against round-off)."""
  inner = jnp.sum(preconditioned * kernel_grad)
  return jnp.sqrt(jnp.maximum(inner, 0.0))


def frobenius_norm_thesis(kernel_grad: Array, preconditioned: Array) -> Array:
  """``sqrt(trace(P ⊙ E))`` as plotted in the thesis (NaN when negative).

  Only the ``min(m, n)`` diagonal entries of the Hadamard product enter;
  kept to reproduce the figures, not as a norm.
  """
  product = (preconditioned * kernel_grad).reshape(-1, kernel_grad.shape[-1])
  return jnp.sqrt(jnp.trace(product))


def gradient_norms(kernel_grad: Array, preconditioned: Array) -> dict[str, Array]:
  """Euclidean, Frobenius-type and thesis-variant norms of one kernel gradient."""
  return {
      "euclidean": jnp.linalg.norm(kernel_grad.reshape(-1)),
      "frobenius": frobenius_norm(kernel_grad, preconditioned),
      "frobenius_thesis": frobenius_norm_thesis(kernel_grad, preconditioned),
  }


def spectra(factor: Array) -> Array:
  """Ascending eigenvalues of a symmetric factor (its entries if diagonal)."""
  if factor.ndim == 1:
    return jnp.sort(factor)
  return solvers.eigenvalues(factor)
