"""Data parallelism with `jax.jit` over a device mesh.

Parameters and optimizer state are replicated; every batch array is sharded
along its leading axis over the mesh axis ``'data'``. Reductions over the batch
inside a jitted step are then reductions over the *global* batch (XLA inserts
the all-reduce), which is what every batch statistic in nnopt needs.

Several hosts: start every process with :func:`initialize_distributed` (a
thin wrapper over `jax.distributed.initialize`); all processes draw the same
global batch indices and each feeds only the rows that its local devices hold
(:func:`shard_batch` does the slicing and calls
`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None,
                           *, cpu_collectives: str | None = "gloo") -> None:
  """Joins a multi-process JAX run; call before any other JAX work.

  On clusters that JAX detects (SLURM, TPU pods, Kubernetes…) the arguments
  can be left out. On CPUs, cross-process collectives need
  ``jax_cpu_collectives_implementation='gloo'``, set here.
  """
  if cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)


def maybe_initialize_from_env() -> None:
  """Initializes multi-process JAX from ``NNOPT_COORDINATOR``,
  ``NNOPT_NUM_PROCESSES`` and ``NNOPT_PROCESS_ID`` when they are set."""
  address = os.environ.get("NNOPT_COORDINATOR")
  if address:
    initialize_distributed(address, int(os.environ["NNOPT_NUM_PROCESSES"]),
                           int(os.environ["NNOPT_PROCESS_ID"]))


def data_mesh(devices: Any = None) -> Mesh:
  """A 1-D mesh named ``'data'`` over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def padded_size(batch_size: int, mesh: Mesh) -> int:
  """Smallest multiple of the mesh size that holds ``batch_size`` rows."""
  n = mesh.devices.size
  return -(-batch_size // n) * n


def pad_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
  """Pads every array to ``size`` rows, repeating row 0 with weight 0.

  The batch must hold a ``'weights'`` entry (the mask); padded rows get 0.
  """
  n = len(batch["weights"])
  if n == size:
    return batch
  if n > size:
    raise ValueError(f"batch of {n} rows does not fit in {size}")
  out = {}
  for key, value in batch.items():
    filler = np.zeros_like(value[:1]) if key == "weights" else value[:1]
    out[key] = np.concatenate(
        [value, np.repeat(filler, size - n, axis=0)], axis=0)
  return out


def _local_rows(sharding: NamedSharding, global_rows: int) -> slice:
  """The contiguous block of global rows that this process's devices hold."""
  index_map = sharding.addressable_devices_indices_map((global_rows,))
  starts = [idx[0].start or 0 for idx in index_map.values()]
  stops = [global_rows if idx[0].stop is None else idx[0].stop
           for idx in index_map.values()]
  start, stop = min(starts), max(stops)
  if sum(b - a for a, b in zip(starts, stops)) != stop - start:
    raise ValueError("this process's devices do not hold a contiguous block "
                     "of the batch; order the mesh devices by process")
  return slice(start, stop)


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Puts a *global* host batch on the mesh, sharded along the batch axis.

  The batch is padded (weight 0) to a multiple of the device count. With
  several processes, each process passes the same global batch and
  contributes only its own rows. In a single process the host arrays are
  returned as they are: a jitted function with ``in_shardings`` transfers
  them itself, several times faster than `jax.device_put`.
  """
  size = padded_size(len(batch["weights"]), mesh)
  batch = pad_batch(batch, size)
  if jax.process_count() == 1:
    return batch
  sharding = batch_sharded(mesh)
  rows = _local_rows(sharding, size)
  return {
      key: jax.make_array_from_process_local_data(sharding, value[rows],
                                                  value.shape)
      for key, value in batch.items()
  }


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree (parameters, optimizer state) replicated on the mesh."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
          sharding, np.asarray(x), np.shape(x)), tree)
