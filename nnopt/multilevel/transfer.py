"""Transfer operators between two levels, as pure pytree maps.

A :class:`Transfer` holds three linear maps between a fine parameter space Θ
and a coarse one Θ_H (Kreis (2.41)/(2.42), MLSGD thesis §3.2.1):

* ``restrict_params`` R_p : Θ → Θ_H, applied to iterates,
* ``restrict_grad``   R_g : Θ → Θ_H, applied to gradients; first-order
  coherence needs it to be the adjoint of the prolongation up to a constant,
  ``(R_g θ, θ̄) = c (θ, P_p θ̄)`` (Assumption 3.17),
* ``prolong``         P_p : Θ_H → Θ, applied to coarse *steps*,

and ``restrict_inputs``, the map of a data batch to the coarse level (the
identity except for resolution hierarchies). Transfers compose over several
levels with :func:`compose`. This module has the flat-vector operators of the
quadratic theory (matrices, the eigenvector operators of Definition 3.6, the
pseudo-inverse restriction of Remark 2.37, the identity of Example 3.38) and
the checks every transfer should pass (:func:`adjoint_constant`,
:func:`check_transfer`); network hierarchies are in
:mod:`nnopt.multilevel.network_transfers`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu

from nnopt.stats.layer_keys import leaves_by_path

Array = jax.Array
PyTree = Any


class TransferError(ValueError):
  """A transfer does not fit the parameters or the hierarchy it is used on."""


def _identity(x):
  return x


class Transfer(NamedTuple):
  """Linear maps between a fine and a coarse level (all pure, jit-able).

  Attributes:
    restrict_params: R_p, fine parameters → coarse parameters.
    restrict_grad: R_g, fine gradients → coarse gradients.
    prolong: P_p, coarse steps → fine steps.
    restrict_inputs: fine data batch → coarse data batch.
  """

  restrict_params: Callable[[PyTree], PyTree]
  restrict_grad: Callable[[PyTree], PyTree]
  prolong: Callable[[PyTree], PyTree]
  restrict_inputs: Callable[[Array], Array] = _identity


def compose(*transfers: Transfer) -> Transfer:
  """The transfer from the first fine level to the last coarse one.

  ``compose(t_fine, t_mid)``: R = R_mid ∘ R_fine, R_g likewise and
  P = P_fine ∘ P_mid.
  """
  if not transfers:
    return identity_transfer()

  def chain(fns):
    def apply(x):
      for fn in fns:
        x = fn(x)
      return x
    return apply

  return Transfer(
      restrict_params=chain([t.restrict_params for t in transfers]),
      restrict_grad=chain([t.restrict_grad for t in transfers]),
      prolong=chain([t.prolong for t in reversed(transfers)]),
      restrict_inputs=chain([t.restrict_inputs for t in transfers]))


def identity_transfer() -> Transfer:
  """R_p = R_g = P_p = id (Kreis Ex. 3.37/3.38: variance or resolution levels)."""
  return Transfer(_identity, _identity, _identity, _identity)


def matrix_transfer(R: Array, P: Array | None = None,
                    R_g: Array | None = None) -> Transfer:
  """Operators on flat vectors (or pytrees of them) given by matrices.

  Args:
    R: parameter restriction R_p, shape (n_H, n).
    P: prolongation, shape (n, n_H); default ``R.T``.
    R_g: gradient restriction, shape (n_H, n); default ``R``.
  """
  R = jnp.asarray(R)
  P = R.T if P is None else jnp.asarray(P)
  R_g = R if R_g is None else jnp.asarray(R_g)
  n_coarse, n = R.shape
  if P.shape != (n, n_coarse) or R_g.shape != (n_coarse, n):
    raise TransferError(
        f"matrix_transfer: R is {R.shape}, so P must be {(n, n_coarse)} and "
        f"R_g {(n_coarse, n)}; got P {P.shape}, R_g {R_g.shape}")

  def apply(matrix, expected):
    def leaf(x):
      if x.shape[-1] != expected:
        raise TransferError(f"transfer expects vectors of length {expected}, "
                            f"got shape {x.shape}")
      return x @ matrix.T.astype(x.dtype)
    # A flat vector, or a pytree whose leaves are such vectors.
    return lambda tree: jax.tree.map(leaf, tree)

  return Transfer(apply(R, n), apply(R_g, n), apply(P, n_coarse))


def eigen_restriction(A: Array, n_coarse: int, which: str = "largest",
                      key: Array | None = None) -> Array:
  """Rows = orthonormal eigenvectors of a symmetric A (Kreis Def. 3.6, App. B.2).

  Args:
    A: symmetric (n, n) matrix.
    n_coarse: number of eigenvectors n_H.
    which: ``'largest'`` (Def. 3.6), ``'smallest'`` or ``'random'`` (B.2).
    key: PRNG key for ``'random'``.

  Returns:
    R of shape (n_H, n), rows sorted by ascending eigenvalue.
  """
  n = A.shape[0]
  if not 0 < n_coarse <= n:
    raise TransferError(f"n_coarse must be in 1..{n}, got {n_coarse}")
  _, vectors = jnp.linalg.eigh(A)  # ascending eigenvalues
  if which == "largest":
    index = jnp.arange(n - n_coarse, n)
  elif which == "smallest":
    index = jnp.arange(n_coarse)
  elif which == "random":
    if key is None:
      raise TransferError("which='random' needs a PRNG key")
    index = jnp.sort(jax.random.choice(key, n, (n_coarse,), replace=False))
  else:
    raise TransferError(f"which must be 'largest', 'smallest' or 'random', "
                        f"got {which!r}")
  return vectors[:, index].T


def eigen_transfer(A: Array, n_coarse: int, which: str = "largest",
                   key: Array | None = None) -> Transfer:
  """Definition 3.6: R_p = R_g = eigenvector rows, P_p = R_pᵀ (c = 1)."""
  return matrix_transfer(eigen_restriction(A, n_coarse, which, key))


def pinv_restriction(P: Array) -> Array:
  """R_p = (PᵀP)⁻¹Pᵀ, the left inverse of a full-rank P (Kreis Remark 2.37)."""
  P = jnp.asarray(P)
  gram = P.T @ P
  if np.linalg.matrix_rank(np.asarray(gram)) < P.shape[1]:
    raise TransferError(f"pinv_restriction: P {P.shape} is rank deficient")
  return jnp.linalg.solve(gram, P.T)


# -- checks ---------------------------------------------------------------------


def _random_like(key, tree):
  return otu.tree_random_like(key, tree, jax.random.normal)


def adjoint_constant(transfer: Transfer, fine_example: PyTree,
                     coarse_example: PyTree, key: Array,
                     num_probes: int = 4) -> tuple[Array, Array]:
  """Estimates c in ``(R_g x, y)_H = c (x, P_p y)`` from random probes.

  Returns:
    ``(c, spread)``: the mean ratio and its max deviation over the probes; a
    spread at rounding level means R_g = c P_pᵀ holds (Assumption 3.1/3.17).
  """
  ratios = []
  for k in jax.random.split(key, num_probes):
    kx, ky = jax.random.split(k)
    x = _random_like(kx, fine_example)
    y = _random_like(ky, coarse_example)
    ratios.append(otu.tree_vdot(transfer.restrict_grad(x), y)
                  / otu.tree_vdot(x, transfer.prolong(y)))
  ratios = jnp.stack(ratios)
  return jnp.mean(ratios), jnp.max(jnp.abs(ratios - jnp.mean(ratios)))


def prolong_transpose(transfer: Transfer, coarse_example: PyTree
                      ) -> Callable[[PyTree], PyTree]:
  """P_pᵀ as a function (by ``jax.linear_transpose``), for gradients."""
  transpose = jax.linear_transpose(transfer.prolong, coarse_example)
  return lambda fine: transpose(fine)[0]


def operator_norm(linear: Callable[[PyTree], PyTree], example: PyTree,
                  key: Array, iterations: int = 50) -> Array:
  """‖A‖ of a linear pytree map by power iteration on AᵀA (P² and ρ² of 3.17)."""
  transpose = jax.linear_transpose(linear, example)
  x = _random_like(key, example)
  for _ in range(iterations):
    x = transpose(linear(x))[0]
    x = otu.tree_scale(1.0 / otu.tree_norm(x), x)
  return otu.tree_norm(linear(x))


def check_transfer(transfer: Transfer, fine_params: PyTree,
                   coarse_params: PyTree) -> None:
  """Raises :class:`TransferError` unless the maps fit both parameter trees.

  Restriction must produce the coarse tree's structure and shapes, and
  prolongation the fine one's (checked abstractly, no FLOPs).
  """

  def compare(what, got, want):
    got_paths, want_paths = leaves_by_path(got), leaves_by_path(want)
    problems = []
    for name in sorted(set(got_paths) | set(want_paths)):
      if name not in got_paths:
        problems.append(f"{name}: missing in {what} output")
      elif name not in want_paths:
        problems.append(f"{name}: not in the target parameters")
      elif tuple(got_paths[name].shape) != tuple(want_paths[name].shape):
        problems.append(f"{name}: {what} gives {tuple(got_paths[name].shape)}, "
                        f"expected {tuple(want_paths[name].shape)}")
    if problems:
      raise TransferError(f"transfer does not match the models ({what}): "
                          + "; ".join(problems))

  def shapes(fn, tree):
    try:
      return jax.eval_shape(fn, tree)
    except TransferError:
      raise
    except (TypeError, ValueError) as err:
      raise TransferError(f"transfer cannot be applied: {err}") from err

  compare("restrict_params", shapes(transfer.restrict_params, fine_params),
          coarse_params)
  compare("restrict_grad", shapes(transfer.restrict_grad, fine_params),
          coarse_params)
  compare("prolong", shapes(transfer.prolong, coarse_params), fine_params)
