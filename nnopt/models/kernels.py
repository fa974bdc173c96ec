"""Image pooling, interpolation and the MLSGD 3×3 kernel basis (pure array maps).

The ODE-ResNet of :mod:`nnopt.models.odenet` pools its inputs and assembles
its residual kernels from the basis; the multilevel transfers of
:mod:`nnopt.multilevel.network_transfers` restrict and prolong with the same
maps, so they live here, below both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def avg_pool2(x: Array) -> Array:
  """2×2 average pooling with stride 2 over axes (-4, -3) of (..., H, W, C)."""
  *lead, H, W, C = x.shape
  if H % 2 or W % 2:
    raise ValueError(f"2x2 pooling needs even spatial sizes, got {H}x{W}")
  return x.reshape(*lead, H // 2, 2, W // 2, 2, C).mean(axis=(-4, -2))


def replicate2(x: Array) -> Array:
  """Constant interpolation: every pixel becomes a 2×2 block (P, with R P = I)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=-3), 2, axis=-2)


# The plus-shaped unit kernels completing the B_pq basis (0-based (row, col)).
PLUS_INDEX = ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1))


def basis_kernel(a: Array, b: Array) -> Array:
  """3×3 kernel K = Σ_I a_ij E_ij + Σ_pq b_pq B_pq (MLSGD thesis §4.3.2).

  Args:
    a: (..., 5, C_in, C_out) coefficients of the unit kernels at PLUS_INDEX.
    b: (..., 2, 2, C_in, C_out) coefficients of B_pq = ¼ (2×2 ones at (p, q)).

  Returns:
    (..., 3, 3, C_in, C_out) HWIO kernels.
  """
  lead = b.shape[:-4]
  pad = [(0, 0)] * len(lead) + [(1, 1), (1, 1), (0, 0), (0, 0)]
  bp = jnp.pad(b, pad)
  kernel = 0.25 * (bp[..., :3, :3, :, :] + bp[..., 1:, :3, :, :]
                   + bp[..., :3, 1:, :, :] + bp[..., 1:, 1:, :, :])
  rows = jnp.array([i for i, _ in PLUS_INDEX])
  cols = jnp.array([j for _, j in PLUS_INDEX])
  return kernel.at[..., rows, cols, :, :].add(a)


def kernel_to_basis(kernel: Array) -> tuple[Array, Array]:
  """Inverse of :func:`basis_kernel` (spec-mlsgd §5.3 conversion formulas)."""
  K = kernel
  b = 4.0 * jnp.stack([jnp.stack([K[..., 0, 0, :, :], K[..., 0, 2, :, :]], -3),
                       jnp.stack([K[..., 2, 0, :, :], K[..., 2, 2, :, :]], -3)],
                      -4)
  c = lambda i, j: K[..., i, j, :, :]  # noqa: E731
  a = jnp.stack([c(0, 1) - c(0, 0) - c(0, 2), c(1, 0) - c(0, 0) - c(2, 0),
                 c(1, 1) - c(0, 0) - c(0, 2) - c(2, 0) - c(2, 2),
                 c(1, 2) - c(0, 2) - c(2, 2), c(2, 1) - c(2, 0) - c(2, 2)], -3)
  return a, b
