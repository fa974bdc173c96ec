"""Curvature work split across the devices of a mesh axis (kfac-jax style).

On a data-parallel mesh every device holds the same (replicated) Kronecker
factors, so by default every device computes every damped inverse. With
distribution the dense blocks (each layer's A and G) are assigned to the
devices of one mesh axis by cost, greedy largest-first bin packing on
``n³`` (LPT scheduling: each block goes to the least loaded device), so
that the most loaded device does at most

.. math::
  \\max_d \\sum_{b \\in d} n_b^3 \\le \\frac{1}{D} \\sum_b n_b^3 + \\max_b n_b^3 .

Inside ``jax.shard_map`` over that axis, ``lax.switch`` on the device's
``axis_index`` runs only the blocks of that device (the others are zeros of
the same shape), and a ``psum`` over the axis shares the results: every
block is nonzero on exactly one device, so the sum is exact. The other mesh
axes (a ``'runs'`` axis, say) stay automatic. Diagonal (1-D) blocks cost
O(n) and are computed everywhere.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from nnopt.stats.kronecker import FactorError

DISTRIBUTE = (False, True, "auto")


def block_cost(shape: Sequence[int]) -> int:
  """FLOP scale of inverting one block: ``n³`` (dense), 0 (diagonal)."""
  return int(shape[0]) ** 3 if len(shape) == 2 else 0


def assign_blocks(costs: Sequence[int], num_devices: int) -> tuple[int, ...]:
  """The device of every block, greedy largest-first (LPT) bin packing.

  Blocks are taken by decreasing cost (ties: lower index first) and each
  goes to the least loaded device (ties: lower device index). Zero-cost
  blocks get device -1 (computed everywhere).
  """
  loads = [0] * num_devices
  out = [-1] * len(costs)
  for i in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
    if costs[i] <= 0:
      continue
    device = min(range(num_devices), key=lambda d: (loads[d], d))
    out[i] = device
    loads[device] += costs[i]
  return tuple(out)


def device_loads(costs: Sequence[int], assignment: Sequence[int],
                 num_devices: int) -> list[int]:
  """Cost computed by every device (blocks with device -1 count everywhere)."""
  loads = [0] * num_devices
  for cost, device in zip(costs, assignment):
    for d in range(num_devices) if device < 0 else (device,):
      loads[d] += cost
  return loads


def resolve_mesh(distribute, mesh, axis: str):
  """The mesh to distribute over, or None for the replicated computation.

  Args:
    distribute: False, True or ``'auto'``.
    mesh: a ``jax.sharding.Mesh``, or None for the ambient mesh
      (``jax.sharding.set_mesh``).
    axis: the mesh axis name.

  Raises:
    FactorError: ``distribute=True`` without a mesh that has ``axis``.
  """
  if distribute not in DISTRIBUTE:
    raise FactorError(f"distribute_inverses must be one of {DISTRIBUTE}, "
                      f"got {distribute!r}")
  if distribute is False:
    return None
  if mesh is None:
    ambient = jax.sharding.get_abstract_mesh()
    mesh = None if ambient.empty else ambient
  if mesh is None or axis not in mesh.axis_names:
    if distribute == "auto":
      return None
    raise FactorError(
        f"distribute_inverses=True needs a mesh with axis {axis!r}: pass "
        "mesh=... (e.g. nnopt.engine.parallel.data_mesh()) or set one with "
        "jax.sharding.set_mesh")
  return mesh if mesh.shape[axis] > 1 else None


def map_blocks(fn: Callable[..., Any], blocks: Sequence[tuple], *, mesh,
               axis: str) -> list[Any]:
  """``[fn(*block) for block in blocks]``, dense blocks spread over ``axis``.

  Args:
    fn: computes one block's result (a pytree of arrays) from its arrays;
      the first is the square factor whose size gives the cost.
    blocks: tuples of replicated arrays.
    mesh: from :func:`resolve_mesh`; None computes every block here.
    axis: the mesh axis to spread the blocks over.
  """
  if mesh is None or not blocks:
    return [fn(*block) for block in blocks]
  num_devices = mesh.shape[axis]
  costs = [block_cost(block[0].shape) for block in blocks]
  assignment = assign_blocks(costs, num_devices)
  spread = [i for i, d in enumerate(assignment) if d >= 0]
  shapes = [jax.eval_shape(fn, *blocks[i]) for i in spread]

  def branch(device: int):
    def run(dense):
      return [fn(*block) if assignment[i] == device else
              jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shape)
              for i, block, shape in zip(spread, dense, shapes)]
    return run

  def per_device(dense):
    results = jax.lax.switch(jax.lax.axis_index(axis),
                             [branch(d) for d in range(num_devices)], dense)
    return jax.lax.psum(results, axis)

  shared = jax.shard_map(
      per_device, mesh=mesh, in_specs=PartitionSpec(),
      out_specs=PartitionSpec(), axis_names={axis}, check_vma=False)(
          [blocks[i] for i in spread])
  out = dict(zip(spread, shared))
  return [out[i] if i in out else fn(*block)
          for i, block in enumerate(blocks)]


__all__ = ["DISTRIBUTE", "assign_blocks", "block_cost", "device_loads",
           "map_blocks", "resolve_mesh"]
