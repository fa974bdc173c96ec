"""Damped inverses of Kronecker factors and their application to kernels.

The preconditioned kernel gradient of Kreis (5.15), in flax layout
(kernel = Wᵀ of shape (m, n)):

.. math::
  P = (A + γ_x I)^{-1} \\, K \\, (G + γ_y I)^{-1}

which is the transpose of ``(G+γ_y I)^{-1} E (A+γ_x I)^{-1}``; in vector
form ``vec(P) = ((A+γ_x I) ⊗ (G+γ_y I))^{-1} vec(K)`` for a row-major
flattened flax kernel (spec P16).

**One matrix per LAPACK call.** The dense solvers are
``jax.custom_batching.sequential_vmap`` functions: under ``jax.vmap`` (a
runs axis, several factors at once) they loop over the batch with
``lax.map`` instead of issuing one batched LAPACK call. On XLA:CPU
(jaxlib 0.10.2) a batched ``potrf``/``syevd``/``trsm`` custom call splits its
batch with ``jax::ParallelBatchMap``, which schedules the chunks on the
intra-op Eigen thread pool and blocks the calling pool thread until they
are done; when the thunk executor runs as many such calls concurrently as
the pool has threads (independent layers' A and G factors), every worker
blocks waiting for chunks that no free worker can run: a deadlock (0% CPU,
all ``tf_XLAEigen`` threads in ``BlockingCounter::Wait``). A batch of one
runs inline, so the loop cannot deadlock; it also evaluates the Cholesky
solver's eigh fallback only when it is taken (a batched ``lax.cond``
predicate would run both branches).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _symmetrize(matrix: Array) -> Array:
  return 0.5 * (matrix + matrix.T)


@jax.custom_batching.sequential_vmap  # one LAPACK call per matrix (above)
def eigh_inverse(factor: Array, damping: Array) -> tuple[Array, Array]:
  """``(F + γI)^{-1}`` through an eigendecomposition; also returns eig(F).

  Eigenvalues of the PSD factor are clipped at 0 before the damping is
  added, so round-off negatives of a rank-deficient factor cannot make the
  damped matrix indefinite: the inverse stays finite for any γ > 0.
  """
  eigenvalues, vectors = jnp.linalg.eigh(_symmetrize(factor))
  scale = 1.0 / (jnp.maximum(eigenvalues, 0.0) + damping)
  return (vectors * scale) @ vectors.T, eigenvalues


@jax.custom_batching.sequential_vmap  # one LAPACK call per matrix (above)
def cholesky_inverse(factor: Array, damping: Array) -> Array:
  """``(F + γI)^{-1}`` through a Cholesky factorization.

  Falls back to :func:`eigh_inverse` (under `lax.cond`) when the damped
  factor is numerically indefinite (γ far below the round-off of F), where a
  plain Cholesky would return NaNs.
  """
  factor = _symmetrize(factor)
  eye = jnp.eye(factor.shape[0], dtype=factor.dtype)
  chol = jnp.linalg.cholesky(factor + damping * eye)
  inverse = jax.scipy.linalg.cho_solve((chol, True), eye)
  return jax.lax.cond(jnp.all(jnp.isfinite(inverse)),
                      lambda: _symmetrize(inverse),
                      lambda: eigh_inverse(factor, damping)[0])


@jax.custom_batching.sequential_vmap  # one LAPACK call per matrix (above)
def eigenvalues(factor: Array) -> Array:
  """Ascending eigenvalues of a symmetric dense factor."""
  return jnp.linalg.eigvalsh(_symmetrize(factor))


def damped_inverse(factor: Array, damping: Array, method: str = "eigh"
                   ) -> Array:
  """``(F + γI)^{-1}`` for a dense (2-D) or diagonal (1-D) factor.

  Args:
    factor: symmetric PSD factor, or its diagonal.
    damping: γ > 0 (scalar array).
    method: ``'eigh'`` or ``'cholesky'`` (dense factors only).
  """
  if factor.ndim == 1:
    return 1.0 / (jnp.maximum(factor, 0.0) + damping)
  if method == "eigh":
    return eigh_inverse(factor, damping)[0]
  if method == "cholesky":
    return cholesky_inverse(factor, damping)
  raise ValueError(f"unknown solver {method!r}; use 'eigh' or 'cholesky'")


def mean_eigenvalue(factor: Array) -> Array:
  """``tr(F)/dim``, the scale used by π-damping; works for diagonals."""
  diag = factor if factor.ndim == 1 else jnp.diagonal(factor)
  return jnp.mean(diag)


def pi_damping(factor_x: Array, factor_y: Array, damping_x: Array,
               damping_y: Array) -> tuple[Array, Array]:
  """K-FAC's factored Tikhonov damping with π-balancing.

  .. math::
    π = \\sqrt{\\frac{\\operatorname{tr}(A)/m}{\\operatorname{tr}(G)/n}},\\quad
    γ_x' = π \\sqrt{γ_x γ_y},\\quad γ_y' = \\sqrt{γ_x γ_y} / π

  (Martens & Grosse 2015 §6.3; Kreis §2.5.4 with λ+η = γ_x γ_y). The product
  ``γ_x' γ_y' = γ_x γ_y`` is kept; π ≡ 1 gives the thesis's fixed damping.
  When a factor's trace is zero or not finite, π = 1.
  """
  scale_x, scale_y = mean_eigenvalue(factor_x), mean_eigenvalue(factor_y)
  ok = (scale_x > 0) & (scale_y > 0) & jnp.isfinite(scale_x / scale_y)
  pi = jnp.where(ok, jnp.sqrt(jnp.where(ok, scale_x / scale_y, 1.0)), 1.0)
  total = jnp.sqrt(damping_x * damping_y)
  return pi * total, total / pi


def precondition_kernel(kernel_grad: Array, inverse_x: Array, inverse_y: Array
                        ) -> Array:
  """``(A+γ_x I)^{-1} K (G+γ_y I)^{-1}`` for a kernel of shape (m, n).

  Convolution kernels (kh, kw, c_in, c_out) are treated as their
  (kh·kw·c_in, c_out) matrix. Diagonal (1-D) inverses scale elementwise.
  """
  shape = kernel_grad.shape
  k = kernel_grad.reshape(-1, shape[-1])
  if inverse_x.ndim == 1:
    k = inverse_x[:, None] * k
  else:
    k = inverse_x @ k
  if inverse_y.ndim == 1:
    k = k * inverse_y[None, :]
  else:
    k = k @ inverse_y
  return k.reshape(shape)
