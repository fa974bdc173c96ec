"""Damping and inversion: the damped inverse factors of every layer.

Fixed Tikhonov damping on each side (Kreis (5.10), (5.14)) or K-FAC's
π-balanced factored damping (Martens & Grosse 2015 §6.3):

.. math::
  R_X = (A + γ_x I)^{-1}, \\qquad R_Y^{-1} = (G + γ_y I)^{-1}, \\qquad
  \\text{π-damping: } γ_x' = π \\sqrt{γ_x γ_y},\\ γ_y' = \\sqrt{γ_x γ_y} / π

with ``π² = (tr A / m) / (tr G / n)``; optionally an exponential moving
average of the inverses (Kreis §5.3.2, option 4),
``R_k = (1 − η_k) R_{k-1} + η_k (\\hat C_k + γ I)^{-1}``, with η as in
:mod:`nnopt.preconditioning.estimation`.

Damping and the scale of G: G is the second moment of per-example gradients
(:mod:`nnopt.stats.kronecker`). With true labels (``fisher='empirical'``) it
is B times the G of kfac-jax's ``fisher_empirical`` registration (kfac-jax
divides its VJP vector by √B), while the Fisher from sampled targets has
kfac-jax's ``fisher_exact`` scale; see
:func:`nnopt.preconditioning.scale_by_kfac` for the conversion.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from nnopt.preconditioning import diagnostics, distribution, solvers
from nnopt.preconditioning.estimation import mix, new_estimate_weight
from nnopt.preconditioning.layer_plan import (LayerPlan, check_choice,
                                              check_positive, check_range)

Array = jax.Array
Pairs = dict[str, tuple[Array, Array]]

SOLVERS = ("cholesky", "eigh")


class InverseState(NamedTuple):
  """State of an inverter; dicts are keyed by layer path.

  Attributes:
    inverses: ``((A+γ_x I)^{-1}, (G+γ_y I)^{-1})`` used by the update.
    spectra: eigenvalues of the undamped A and G at the last refresh (only
      with ``track_spectra``, else empty).
  """

  inverses: Pairs
  spectra: Pairs


class Inverter(NamedTuple):
  """Turns factors into damped inverses.

  Attributes:
    init: ``init(plan) -> InverseState`` (inverses of the damping alone).
    update: ``update(state, factors, index) -> InverseState``; ``index``
      counts the earlier refreshes (0 at the first), kept by the caller.
  """

  init: Callable[[Mapping[str, LayerPlan]], InverseState]
  update: Callable[..., InverseState]


def _identity(shape, dtype) -> Array:
  return jnp.ones(shape, dtype) if len(shape) == 1 else jnp.eye(shape[0],
                                                                dtype=dtype)


def damped_inverses(
    damping_x: float = 1e-2, damping_y: float = 1e-2, *,
    pi_damping: bool = False, solver: str = "cholesky",
    ema_weight: float | None = None, ema_debias: bool = False,
    track_spectra: bool = False, distribute: bool | str = False,
    mesh: Mesh | None = None, mesh_axis: str = "data",
) -> Inverter:
  """Damped inverses ``((A + γ_x I)^{-1}, (G + γ_y I)^{-1})`` per layer.

  .. math::
    R_X = (A + γ_x I)^{-1}, \\qquad R_Y^{-1} = (G + γ_y I)^{-1}

  Args:
    damping_x: γ_x > 0 on the input (activation) side, γ_2 of (5.15).
    damping_y: γ_y > 0 on the output (gradient) side, γ_1 of (5.15). The
      G side's scale depends on the Fisher: with true labels G is B times
      kfac-jax's ``fisher_empirical`` G (module docstring).
    pi_damping: K-FAC's π-adjusted factored Tikhonov damping (keeps
      ``γ_x γ_y``, :func:`nnopt.preconditioning.solvers.pi_damping`).
    solver: ``'cholesky'`` (falls back to eigh when the damped factor is
      numerically indefinite) or ``'eigh'`` (several times slower on CPUs;
      its eigenvalues give the spectra for free).
    ema_weight: β ∈ (0, 1] of an EMA of the inverses (option 4 of
      §5.3.2); None: no averaging.
    ema_debias: weight-normalized EMA (see
      :func:`nnopt.preconditioning.estimation.kronecker_factors`).
    track_spectra: store the eigenvalues of the undamped factors.
    distribute: compute every dense block (a layer's A or G) on one device
      of the mesh axis ``mesh_axis``, blocks assigned by cost ``n³``, and
      share the results (:mod:`nnopt.preconditioning.distribution`); same
      values as the replicated computation. ``'auto'``: when a mesh with
      that axis (size > 1) is given or ambient, else replicated. Default
      False: every device computes every block.
    mesh: the ``jax.sharding.Mesh`` of the step (None: the ambient mesh of
      ``jax.sharding.set_mesh``).
    mesh_axis: the mesh axis to spread the blocks over (``'data'``).

  Returns:
    An :class:`Inverter`.

  References:
    Kreis (5.10), (5.11), (5.14), §5.3.2, §2.5.4; Martens & Grosse (2015) §6.3.
  """
  check_positive("damping_x", damping_x)
  check_positive("damping_y", damping_y)
  check_choice("solver", solver, SOLVERS)
  check_choice("distribute", distribute, distribution.DISTRIBUTE)
  if ema_weight is not None:
    check_range("ema_weight", ema_weight, 0.0, 1.0)

  def init_fn(plan: Mapping[str, LayerPlan]) -> InverseState:
    inverses, spectra = {}, {}
    for name, lp in plan.items():
      shape_a, shape_g = lp.factor_shapes()
      inverses[name] = (
          _identity(shape_a, lp.dtype) / jnp.asarray(damping_x, lp.dtype),
          _identity(shape_g, lp.dtype) / jnp.asarray(damping_y, lp.dtype))
      if track_spectra:
        spectra[name] = (jnp.zeros(shape_a[:1], lp.dtype),
                         jnp.zeros(shape_g[:1], lp.dtype))
    return InverseState(inverses, spectra)

  def invert(factor: Array, damping: Array):
    """One damped inverse, and the undamped spectrum when tracked."""
    if solver == "eigh" and factor.ndim == 2:
      inverse, eig = solvers.eigh_inverse(factor, damping)
    else:
      inverse = solvers.damped_inverse(factor, damping, solver)
      eig = diagnostics.spectra(factor) if track_spectra else None
    return inverse, eig if track_spectra else None

  def update_fn(state: InverseState, factors: Pairs,
                index: Array | int = 0) -> InverseState:
    blocks = []
    for a, g in factors.values():
      dx, dy = jnp.asarray(damping_x, a.dtype), jnp.asarray(damping_y, a.dtype)
      if pi_damping:
        dx, dy = solvers.pi_damping(a, g, dx, dy)
      blocks += [(a, dx), (g, dy)]
    results = distribution.map_blocks(
        invert, blocks, axis=mesh_axis,
        mesh=distribution.resolve_mesh(distribute, mesh, mesh_axis))
    inverses, spectra = {}, {}
    for k, name in enumerate(factors):
      (inv_a, eig_a), (inv_g, eig_g) = results[2 * k], results[2 * k + 1]
      inverses[name] = (inv_a, inv_g)
      if track_spectra:
        spectra[name] = (eig_a, eig_g)
    if ema_weight is not None and inverses:
      dtype = jax.tree.leaves(inverses)[0].dtype
      eta = new_estimate_weight(index, ema_weight, ema_debias, dtype)
      inverses = mix(inverses, state.inverses, eta)
    return InverseState(inverses, spectra)

  return Inverter(init_fn, update_fn)


__all__ = ["InverseState", "Inverter", "SOLVERS", "damped_inverses"]
