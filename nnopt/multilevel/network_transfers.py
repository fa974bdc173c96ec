"""Transfers for network hierarchies: ResNet depth and image resolution.

**Depth** (Kreis Ex. 3.35/3.36, MLSGD thesis §4.2). Residual parameters are
stacked along a leading layer axis (one entry per residual layer), so a depth
transfer is a small matrix acting on that axis; every other leaf (opening,
connecting and output layers) is transferred by the identity.

* ``'constant'``: P repeats each coarse layer twice (n → 2n), R = ½Pᵀ, R P = I.
* ``'linear'``: w_f[2i] = w_c[i], w_f[2i+1] = ½(w_c[i] + w_c[i+1]), the last
  fine layer copies the last coarse one (n → 2n, MLSGD thesis §4.2.2).
* ``'linear_odd'``: the same without the last copy (n → 2n − 1, Kreis Ex. 3.36).

For both linear kinds ½Pᵀ is not a left inverse of P (its diagonal is ¾ in the
interior), so the parameter restriction defaults to injection ``w_c[i] =
w_f[2i]`` (R P = I), as spec-mlsgd §4.2 settles; ``restriction='half_adjoint'``
gives ½Pᵀ. Gradients are restricted with ``gradient='adjoint'`` (Pᵀ: exact
first-order coherence with the Euclidean inner product, c = 1 on every leaf)
or ``gradient='restriction'`` (R_g = R_p, Kreis's choice R = ½Pᵀ, c = ½ on the
residual leaves).

**Resolution** (MLSGD thesis §4.3.2): inputs are 2×2 average pooled; the fine
residual kernels are parametrized in the basis of §5.3 (``a`` plus-shaped unit
kernels, ``b`` the 2×2 sub-block kernels B_pq) and the coarse 2×2 kernel is
``b`` (P: a = 0, b = kernel; R: drop a; Pᵀ = R); the fully connected kernel,
reshaped to an image per class and channel, is average pooled (R) and
replicated (P, Pᵀ = 4R). Everything else is the identity.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnopt.models.kernels import avg_pool2, replicate2
from nnopt.multilevel.transfer import Transfer, TransferError
from nnopt.stats.layer_keys import SEPARATOR, key_str


def is_residual_path(path: str) -> bool:
  """Default test for stacked residual leaves: a path component ``block…``."""
  return any(part.startswith("block") for part in path.split(SEPARATOR))


# -- depth ----------------------------------------------------------------------

DEPTH_KINDS = ("constant", "linear", "linear_odd")


def depth_prolongation_matrix(n_coarse: int, kind: str = "constant") -> np.ndarray:
  """P as an (n_fine, n_coarse) matrix acting on the layer axis."""
  if kind not in DEPTH_KINDS:
    raise TransferError(f"depth kind must be one of {DEPTH_KINDS}, got {kind!r}")
  if n_coarse < 1:
    raise TransferError("a depth hierarchy needs at least one coarse layer")
  if kind == "constant":
    return np.repeat(np.eye(n_coarse), 2, axis=0)
  n_fine = 2 * n_coarse if kind == "linear" else 2 * n_coarse - 1
  P = np.zeros((n_fine, n_coarse))
  for i in range(n_coarse):
    P[2 * i, i] = 1.0
    if 2 * i + 1 < n_fine:
      if i + 1 < n_coarse:
        P[2 * i + 1, i] = P[2 * i + 1, i + 1] = 0.5
      else:
        P[2 * i + 1, i] = 1.0
  return P


def coarse_depth(n_fine: int, kind: str = "constant") -> int:
  """Number of coarse layers for ``n_fine`` fine ones; errors if impossible."""
  if kind == "linear_odd":
    if n_fine % 2 == 0 or n_fine < 1:
      raise TransferError(
          f"linear_odd depth coarsening needs an odd number of layers "
          f"(2n - 1), got {n_fine}")
    return (n_fine + 1) // 2
  if n_fine % 2 or n_fine < 2:
    raise TransferError(
        f"{kind} depth coarsening halves the residual layers and needs an "
        f"even number of them, got {n_fine}")
  return n_fine // 2


def depth_restriction_matrix(n_fine: int, kind: str = "constant",
                             restriction: str = "default") -> np.ndarray:
  """R_p as an (n_coarse, n_fine) matrix."""
  n_coarse = coarse_depth(n_fine, kind)
  P = depth_prolongation_matrix(n_coarse, kind)
  if restriction == "default":
    restriction = "half_adjoint" if kind == "constant" else "injection"
  if restriction == "half_adjoint":
    return 0.5 * P.T
  if restriction == "injection":
    R = np.zeros((n_coarse, n_fine))
    R[np.arange(n_coarse), 2 * np.arange(n_coarse)] = 1.0
    return R
  raise TransferError(f"restriction must be 'half_adjoint' or 'injection', "
                      f"got {restriction!r}")


def _layer_axis_map(matrix_of_n: Callable[[int], np.ndarray],
                    is_residual: Callable[[str], bool]):
  def leaf_map(path, leaf):
    if not is_residual(key_str(path)):
      return leaf
    if leaf.ndim < 1:
      raise TransferError(f"residual leaf {key_str(path)} has no layer axis")
    matrix = jnp.asarray(matrix_of_n(leaf.shape[0]), leaf.dtype)
    return jnp.tensordot(matrix, leaf, axes=(1, 0))

  return lambda tree: jax.tree_util.tree_map_with_path(leaf_map, tree)


def depth_transfer(kind: str = "constant", *, restriction: str = "default",
                   gradient: str = "adjoint",
                   is_residual: Callable[[str], bool] = is_residual_path
                   ) -> Transfer:
  """Depth transfer on residual parameters stacked along axis 0.

  Args:
    kind: ``'constant'``, ``'linear'`` or ``'linear_odd'`` (see module doc).
    restriction: ``'default'`` (½Pᵀ for constant, injection for linear),
      ``'half_adjoint'`` or ``'injection'``.
    gradient: ``'adjoint'`` (R_g = Pᵀ) or ``'restriction'`` (R_g = R_p).
    is_residual: which leaves (by layer key,
      :func:`nnopt.stats.layer_keys.key_str`) carry a layer axis.
  """
  if kind not in DEPTH_KINDS:
    raise TransferError(f"depth kind must be one of {DEPTH_KINDS}, got {kind!r}")
  if gradient not in ("adjoint", "restriction"):
    raise TransferError(f"gradient must be 'adjoint' or 'restriction', "
                        f"got {gradient!r}")
  restrict = _layer_axis_map(
      lambda n: depth_restriction_matrix(n, kind, restriction), is_residual)
  prolong = _layer_axis_map(lambda n: depth_prolongation_matrix(n, kind),
                            is_residual)
  adjoint = _layer_axis_map(
      lambda n: depth_prolongation_matrix(coarse_depth(n, kind), kind).T,
      is_residual)
  return Transfer(restrict, adjoint if gradient == "adjoint" else restrict,
                  prolong)


# -- resolution -------------------------------------------------------------------


def _fc_image(kernel, channels):
  rows, k = kernel.shape
  side2 = rows // channels
  side = int(round(side2 ** 0.5))
  if side * side * channels != rows:
    raise TransferError(f"fc kernel with {rows} inputs is not an HxHx{channels} "
                        "feature map")
  return kernel.reshape(side, side, channels, k)


def resolution_transfer(fc_channels: int, *, fc_name: str = "fc",
                        is_residual: Callable[[str], bool] = is_residual_path
                        ) -> Transfer:
  """Two-level image-resolution transfer (32×32 ↔ 16×16 in the thesis).

  Args:
    fc_channels: channels C of the feature map flattened (H, W, C) into the
      fully connected layer named ``fc_name``.
    fc_name: top-level name of the fully connected layer.
    is_residual: which dicts (by path) hold residual kernels.
  """

  def fc_map(fn):
    def apply(kernel):
      image = _fc_image(kernel, fc_channels)  # (H, W, C, k)
      out = jnp.moveaxis(fn(jnp.moveaxis(image, -1, 0)), 0, -1)
      return out.reshape(-1, kernel.shape[-1])
    return apply

  def walk(tree, path, fine_to_coarse, gradient):
    if not isinstance(tree, dict):
      return tree
    out = {}
    here = key_str(path)
    residual = bool(path) and is_residual(here)
    if residual and fine_to_coarse and {"a", "b"} <= set(tree):
      out["kernel"] = tree["b"]
      out.update({k: v for k, v in tree.items() if k not in ("a", "b")})
      return out
    if residual and not fine_to_coarse and "kernel" in tree:
      kernel = tree["kernel"]
      if kernel.shape[-4:-2] != (2, 2):
        raise TransferError(f"{here}: coarse residual kernels must be 2x2, got "
                            f"{kernel.shape[-4:-2]}")
      out["a"] = jnp.zeros(kernel.shape[:-4] + (5,) + kernel.shape[-2:],
                           kernel.dtype)
      out["b"] = kernel
      out.update({k: v for k, v in tree.items() if k != "kernel"})
      return out
    if residual and fine_to_coarse and "kernel" in tree:
      raise TransferError(f"{here}: fine residual layers must use the "
                          "'mlsgd_basis' parametrization (a, b)")
    for key, value in tree.items():
      if path == () and key == fc_name and isinstance(value, dict):
        if fine_to_coarse:
          pool = (lambda x: 4.0 * avg_pool2(x)) if gradient else avg_pool2
        else:
          pool = replicate2
        out[key] = {**value, "kernel": fc_map(pool)(value["kernel"])}
      else:
        out[key] = walk(value, path + (key,), fine_to_coarse, gradient)
    return out

  def as_dict(fn):
    return lambda tree: walk(dict(tree), (), *fn)

  return Transfer(restrict_params=as_dict((True, False)),
                  restrict_grad=as_dict((True, True)),
                  prolong=as_dict((False, False)),
                  restrict_inputs=avg_pool2)
