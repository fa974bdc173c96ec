"""Orbax checkpoints of a run: the train state plus JSON metadata.

The metadata holds what the host loop needs to continue exactly where it
stopped: the sampler position, hook states (e.g. the grown architecture), the
metrics bookkeeping. A run resumed from step s ends with the same parameters
as an uninterrupted run.

Every checkpoint gets a manifest of its files (size and SHA-256,
:data:`CHECKSUM_FILE`) written beside orbax's files once orbax has committed
it, so a truncated or overwritten file (a full disk, a crash in mid-copy) is
found before a restore reads it: :meth:`Checkpointer.verify`. A checkpoint
without a manifest (an older nnopt, a multi-process run) is checked by
restoring it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

#: The manifest of a checkpoint's files, inside its step directory.
CHECKSUM_FILE = "nnopt_checksums.json"
#: Where corrupt checkpoints are moved (beside the checkpoint directory).
CORRUPT_DIR = "checkpoints.corrupt"


class CheckpointError(ValueError):
  """A checkpoint is corrupt, or does not fit the run that restores it."""


def _all_finite(tree: Any) -> bool:
  return all(bool(np.all(np.isfinite(np.asarray(x))))
             for x in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.floating))


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _files(directory: str) -> list[str]:
  out = []
  for root, _, names in os.walk(directory):
    for name in names:
      rel = os.path.relpath(os.path.join(root, name), directory)
      if rel != CHECKSUM_FILE:
        out.append(rel)
  return sorted(out)


def checkpoint_steps(directory: str) -> list[int]:
  """The steps of the checkpoints under ``directory``, newest first.

  Reads the directory only (orbax names each checkpoint by its step).
  """
  if not os.path.isdir(directory):
    return []
  return sorted((int(n) for n in os.listdir(directory)
                 if n.isdigit() and os.path.isdir(os.path.join(directory, n))),
                reverse=True)


class Checkpointer:
  """Saves and restores ``(state, meta)`` pairs under ``directory``.

  Args:
    directory: where checkpoints live (created at the first save).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._max_to_keep = max_to_keep
    self._manager_obj = None

  @property
  def _manager(self) -> ocp.CheckpointManager:
    # Created on first use, so that reading a checkpoint directory for a
    # resume check writes nothing.
    if self._manager_obj is None:
      options = ocp.CheckpointManagerOptions(
          max_to_keep=self._max_to_keep, enable_async_checkpointing=False,
          create=True)
      self._manager_obj = ocp.CheckpointManager(self.directory, options=options)
    return self._manager_obj

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def steps(self) -> list[int]:
    """Steps of the checkpoints on disk, newest first."""
    return checkpoint_steps(self.directory)

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[0] if steps else None

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> bool:
    """Saves unless the state holds non-finite values; returns whether saved.

    A state with NaN/inf is never written, so the last good checkpoint stays.
    Saving a step that is already on disk keeps the one on disk.
    """
    if not _all_finite(state):
      return False
    if step in self._manager.all_steps():
      return True
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        force=True)
    self._manager.wait_until_finished()
    if jax.process_count() == 1:
      self._write_manifest(step)
    return True

  def _write_manifest(self, step: int) -> None:
    directory = self.step_dir(step)
    manifest = {rel: {"size": os.path.getsize(os.path.join(directory, rel)),
                      "sha256": _sha256(os.path.join(directory, rel))}
                for rel in _files(directory)}
    tmp = os.path.join(directory, CHECKSUM_FILE + ".tmp")
    with open(tmp, "w") as f:
      json.dump({"step": step, "files": manifest}, f, indent=1)
    os.replace(tmp, os.path.join(directory, CHECKSUM_FILE))

  def verified(self, step: int) -> bool:
    """Whether checkpoint ``step`` has a manifest (so :meth:`verify` checks
    every byte)."""
    return os.path.isfile(os.path.join(self.step_dir(step), CHECKSUM_FILE))

  def verify(self, step: int) -> str | None:
    """Why checkpoint ``step`` is corrupt, or None if it looks intact.

    Checks every file against the manifest (when there is one) and that the
    metadata reads. Reads files only.
    """
    directory = self.step_dir(step)
    path = os.path.join(directory, CHECKSUM_FILE)
    if os.path.isfile(path):
      try:
        with open(path) as f:
          files = json.load(f)["files"]
      except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable {CHECKSUM_FILE}: {type(e).__name__}"
      for rel, want in sorted(files.items()):
        full = os.path.join(directory, rel)
        if not os.path.isfile(full):
          return f"{rel} is missing"
        size = os.path.getsize(full)
        if size != want["size"]:
          return f"{rel} has {size} bytes, {want['size']} were written"
        if _sha256(full) != want["sha256"]:
          return f"{rel} does not match its checksum"
    try:
      self.read_meta(step)
    except CheckpointError as e:
      return str(e)
    return None

  def read_meta(self, step: int) -> dict[str, Any]:
    """The JSON metadata of checkpoint ``step`` (read from disk directly)."""
    path = os.path.join(self.step_dir(step), "meta", "metadata")
    try:
      with open(path) as f:
        meta = json.load(f)
    except OSError:
      raise CheckpointError("meta/metadata is missing or unreadable") from None
    except ValueError:
      raise CheckpointError("meta/metadata is not valid JSON") from None
    if not isinstance(meta, dict) or not {"step", "sampler", "hooks"} <= set(
        meta) or meta["step"] != step:
      raise CheckpointError("meta/metadata does not hold this checkpoint's "
                            "step, sampler and hook states")
    return meta

  def restore_meta(self, step: int | None = None) -> dict[str, Any]:
    step = self.latest_step() if step is None else step
    return self.read_meta(step)

  def restore_state(self, target: Any, step: int | None = None) -> Any:
    """Restores the state into the structure (and shardings) of ``target``.

    Raises:
      CheckpointError: the files cannot be read, or they hold another
        model's or optimizer's state.
    """
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract))).state
    except Exception as err:  # pylint: disable=broad-except
      # orbax/tensorstore raise many types (ValueError, KeyError, XlaRuntimeError
      # from a truncated OCDBT file); one line of the message is enough.
      text = " ".join(str(err).split())[:300] or type(err).__name__
      raise CheckpointError(
          f"checkpoint {step} in {self.directory} cannot be restored into "
          f"this run's model/optimizer state: {text}") from None
    leaves = jax.tree.leaves(restored)
    treedef = jax.tree.structure(target)
    if len(leaves) != treedef.num_leaves:
      raise CheckpointError(f"checkpoint {step} in {self.directory} holds "
                            f"{len(leaves)} arrays, this run has "
                            f"{treedef.num_leaves}")
    return jax.tree.unflatten(treedef, leaves)

  def quarantine(self, step: int) -> str:
    """Moves checkpoint ``step`` out of the way (beside the checkpoint
    directory, in :data:`CORRUPT_DIR`); returns where it went."""
    target_root = os.path.join(os.path.dirname(self.directory), CORRUPT_DIR)
    os.makedirs(target_root, exist_ok=True)
    target, n = os.path.join(target_root, str(step)), 1
    while os.path.exists(target):
      target, n = os.path.join(target_root, f"{step}.{n}"), n + 1
    shutil.move(self.step_dir(step), target)
    if self._manager_obj is not None:
      self._manager_obj.reload()
    return target

  def close(self) -> None:
    if self._manager_obj is not None:
      self._manager_obj.close()
