"""Layer-wise preconditioning from user-given inner products (Kreis §2.5.1, §5.1).

A layer ``S_i : X_{i-1} → Y_i`` with SPD Gram matrices ``R_X`` (input space)
and ``R_Y`` (output space) has, in the Frobenius-type inner product
``(M_1, M_2)_{X→Y} = tr(R_X^{-1} M_1^T R_Y M_2)``, the gradient

.. math::  P = R_Y^{-1} E R_X  \\qquad (\\text{Lemma 5.2, eq. (5.4)})

with E the Euclidean weight gradient; the bias gets ``R_Y^{-1} ∇_b``
(Remark 5.3). In flax layout (kernel = Wᵀ, shape (m, n)) this is
``P_K = R_X K R_Y^{-1}``: R_X acts on the input axis, R_Y^{-1} on the output
axis. The negative of P minimizes ``⟨∇f, δW⟩ + ½ (δW, δW)_{X→Y}``. Identity
inner products give plain SGD.

Predefined inner products (:func:`euclidean`, :func:`scaled_identity`,
:func:`fixed_spd`, :func:`sobolev_grid`) are fixed during training (Example
5.4); the data-driven covariance inner products are
:func:`nnopt.preconditioning.frobenius.scale_by_frobenius`.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.preconditioning.layer_plan import compute_dtype, match_layer
from nnopt.stats.layer_keys import by_layer, from_layers

Array = jax.Array


class InnerProductError(ValueError):
  """An inner product is not SPD or does not fit its layer."""


class InnerProduct(NamedTuple):
  """An SPD inner product ``(u, v) = uᵀ R v`` on one layer space.

  Attributes:
    gram: the Gram matrix R, or None for ``scale · I``.
    cholesky: lower Cholesky factor of R (None for a scaled identity).
    scale: the multiple of the identity when ``gram`` is None.
  """

  gram: Array | None
  cholesky: Array | None
  scale: float = 1.0

  @property
  def dim(self) -> int | None:
    return None if self.gram is None else self.gram.shape[0]

  def apply(self, v: Array) -> Array:
    """``R v`` along axis 0 of ``v`` (the Riesz map)."""
    if self.gram is None:
      return self.scale * v
    return self.gram.astype(v.dtype) @ v

  def solve(self, v: Array) -> Array:
    """``R^{-1} v`` along axis 0 of ``v`` (the inverse Riesz map (2.47))."""
    if self.gram is None:
      return v / self.scale
    return jax.scipy.linalg.cho_solve((self.cholesky.astype(v.dtype), True), v)


def euclidean() -> InnerProduct:
  """The Euclidean inner product ``uᵀv``."""
  return InnerProduct(None, None, 1.0)


def scaled_identity(scale: float) -> InnerProduct:
  """``s · uᵀv`` with s > 0."""
  if not float(scale) > 0:
    raise InnerProductError(f"scaled_identity needs a scale > 0, got {scale!r}")
  return InnerProduct(None, None, float(scale))


def fixed_spd(gram) -> InnerProduct:
  """A fixed SPD Gram matrix R; checked for symmetry and definiteness."""
  gram_np = np.asarray(gram, dtype=np.float64)
  if gram_np.ndim != 2 or gram_np.shape[0] != gram_np.shape[1]:
    raise InnerProductError(f"a Gram matrix must be square, got {gram_np.shape}")
  if not np.allclose(gram_np, gram_np.T, rtol=1e-6,
                     atol=1e-8 * np.abs(gram_np).max()):
    raise InnerProductError("the Gram matrix is not symmetric")
  try:
    chol = np.linalg.cholesky(gram_np)
  except np.linalg.LinAlgError:
    raise InnerProductError("the Gram matrix is not positive definite") from None
  dtype = jnp.asarray(gram).dtype
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.float32
  return InnerProduct(jnp.asarray(gram_np, dtype), jnp.asarray(chol, dtype))


def grid_laplacian(height: int, width: int) -> np.ndarray:
  """Graph Laplacian of the 4-neighbour grid (Neumann boundary), row-major."""
  def path(n):
    lap = np.zeros((n, n))
    for i in range(n - 1):
      lap[i, i] += 1
      lap[i + 1, i + 1] += 1
      lap[i, i + 1] -= 1
      lap[i + 1, i] -= 1
    return lap

  return (np.kron(path(height), np.eye(width))
          + np.kron(np.eye(height), path(width)))


def sobolev_grid(height: int, width: int, *, channels: int = 1,
                 mass: float = 1.0, stiffness: float = 1.0) -> InnerProduct:
  """Discrete H¹ inner product on an image grid (Example 5.4).

  .. math::  (u, v)_{H^1} = m \\sum_p u_p v_p + k \\sum_{p \\sim q} (u_p - u_q)(v_p - v_q)

  i.e. ``R = m I + k L`` with L the grid graph Laplacian, for vectors
  flattened in (row, column, channel) order (NHWC, as FNN flattens images).
  """
  if not (mass > 0 and stiffness >= 0):
    raise InnerProductError("sobolev_grid needs mass > 0 and stiffness >= 0")
  gram = mass * np.eye(height * width) + stiffness * grid_laplacian(height, width)
  gram = np.kron(gram, np.eye(channels))
  return fixed_spd(gram.astype(np.float32))


def scale_by_inner_products(
    inner_products: Mapping[str, tuple[InnerProduct, InnerProduct]],
) -> optax.GradientTransformationExtraArgs:
  """Gradient in user-given Frobenius-type inner products, layer by layer.

  .. math::
    P_{K_i} = R_{X_{i-1}} K_i R_{Y_i}^{-1}, \\qquad p_{b_i} = R_{Y_i}^{-1} ∇_{b_i}

  Args:
    inner_products: ``{layer path or glob: (ip_x, ip_y)}``; ``ip_x`` on the
      layer's input space (dimension m, or kh·kw·c_in for a convolution),
      ``ip_y`` on its output space. Layers not listed pass through.

  Returns:
    A stateless ``optax.GradientTransformationExtraArgs``.

  References:
    Kreis Lemma 5.2 (5.4), Remark 5.3, Example 5.4.
  """
  table = dict(inner_products)

  def init_fn(params):
    for name, leaves in by_layer(params).items():
      pair = match_layer(name, table)
      if pair is None:
        continue
      kernel = leaves.get("kernel")
      if kernel is None:
        raise InnerProductError(f"layer {name!r} has no 'kernel'")
      m, n = int(np.prod(kernel.shape[:-1])), kernel.shape[-1]
      for ip, dim, side in ((pair[0], m, "input"), (pair[1], n, "output")):
        if ip.dim is not None and ip.dim != dim:
          raise InnerProductError(
              f"layer {name!r}: {side} inner product has dimension {ip.dim}, "
              f"the layer's {side} space has dimension {dim}")
    return optax.EmptyState()

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    layers = by_layer(updates)
    for name, leaves in layers.items():
      pair = match_layer(name, table)
      if pair is None:
        continue
      ip_x, ip_y = pair
      kernel = leaves["kernel"]
      # Solves in at least float32 (bfloat16 triangular solves lose digits).
      dtype = compute_dtype(kernel.dtype)
      k = ip_x.apply(kernel.reshape(-1, kernel.shape[-1]).astype(dtype))
      k = ip_y.solve(k.T).T
      leaves = dict(leaves, kernel=k.reshape(kernel.shape).astype(kernel.dtype))
      if "bias" in leaves:
        b = leaves["bias"]
        leaves["bias"] = ip_y.solve(b.astype(dtype)).astype(b.dtype)
      layers[name] = leaves
    return (jax.tree.unflatten(jax.tree.structure(updates),
                               jax.tree.leaves(from_layers(layers))), state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def inner_product_sgd(
    learning_rate: optax.ScalarOrSchedule, *,
    inner_products: Mapping[str, tuple[InnerProduct, InnerProduct]] | None
    = None,
) -> optax.GradientTransformationExtraArgs:
  """SGD in fixed layer-wise inner products (Euclidean where none is given).

  .. math::
    W_i ← W_i − α R_{Y_i}^{-1} ∇_{W_i} \\hat f R_{X_{i-1}}

  Args:
    learning_rate: α, a float or an optax schedule.
    inner_products: see :func:`scale_by_inner_products`; None: plain SGD.

  References:
    Kreis Lemma 5.2 (5.4), Example 5.4.
  """
  return optax.chain(scale_by_inner_products(dict(inner_products or {})),
                     optax.scale_by_learning_rate(learning_rate))
