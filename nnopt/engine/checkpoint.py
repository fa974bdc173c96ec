"""Orbax checkpoints of a run: the train state plus JSON metadata.

The metadata holds what the host loop needs to continue exactly where it
stopped: the sampler position, hook states (e.g. the grown architecture), the
metrics bookkeeping. A run resumed from step s ends with the same parameters
as an uninterrupted run.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _all_finite(tree: Any) -> bool:
  return all(bool(np.all(np.isfinite(np.asarray(x))))
             for x in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.floating))


class Checkpointer:
  """Saves and restores ``(state, meta)`` pairs under ``directory``.

  Args:
    directory: where checkpoints live (created if absent).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False,
        create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> bool:
    """Saves unless the state holds non-finite values; returns whether saved.

    A state with NaN/inf is never written, so the last good checkpoint stays.
    """
    if not _all_finite(state):
      return False
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        force=True)
    self._manager.wait_until_finished()
    return True

  def restore_meta(self, step: int | None = None) -> dict[str, Any]:
    step = self.latest_step() if step is None else step
    return self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta

  def restore_state(self, target: Any, step: int | None = None) -> Any:
    """Restores the state into the structure (and shardings) of ``target``."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract))).state
    except (ValueError, KeyError) as err:
      raise ValueError(
          f"checkpoint {step} in {self.directory} does not match this run's "
          f"model/optimizer: {err}") from None
    leaves = jax.tree.leaves(restored)
    treedef = jax.tree.structure(target)
    if len(leaves) != treedef.num_leaves:
      raise ValueError(f"checkpoint {step} in {self.directory} holds "
                       f"{len(leaves)} arrays, this run has "
                       f"{treedef.num_leaves}")
    return jax.tree.unflatten(treedef, leaves)

  def close(self) -> None:
    self._manager.close()
