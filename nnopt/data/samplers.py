"""Host-side index samplers: reproducible, resumable epochs with dynamic batch size.

A sampler hands out *indices* into a host-side dataset, never data, so that the
training loop gathers (:func:`gather`) only the rows it needs and moves them to
the accelerator. Epoch ``e`` visits the permutation drawn from ``(seed, e)``:
the sequence of batches is a pure function of the seed and of the batch sizes
asked for, and a sampler restored from :meth:`EpochSampler.state_dict` goes on
with exactly the indices an uninterrupted one would produce.

Dynamic batch sizes (CABS, SensLI) compile once per *bucket*, never once per
size (DESIGN.md, One engine): with ``buckets`` every batch is padded to the
smallest bucket that holds it, the padding repeats a valid index, and the
returned ``mask`` is 1 on real examples and 0 on padding, so a masked mean over
the padded batch equals the mean over the real batch.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np


class Batch(NamedTuple):
  """Indices of one batch, padded to a fixed length, and its validity mask.

  Attributes:
    indices: int32 indices into the dataset, length L (padded).
    mask: float32 weights, 1 for a real example and 0 for padding, length L.
  """

  indices: np.ndarray
  mask: np.ndarray

  @property
  def size(self) -> int:
    """Number of real (unpadded) examples."""
    return int(self.mask.sum())


def default_buckets(max_batch: int, *, min_batch: int = 8, max_sizes: int = 8,
                    multiple_of: int = 1) -> tuple[int, ...]:
  """A small geometric set of batch-size buckets ending at ``max_batch``.

  Sizes are ``min_batch * r**j`` (r = 2, or 4, 8, ... if needed to stay within
  ``max_sizes`` sizes) below ``max_batch``, then ``max_batch`` itself; each is
  rounded up to a multiple of ``multiple_of`` (e.g. the number of devices the
  batch is sharded over). Padding wastes less than a factor r of compute.

  Args:
    max_batch: Largest batch size needed (e.g. the dataset size).
    min_batch: Smallest bucket.
    max_sizes: Maximum number of buckets (compilations).
    multiple_of: Every bucket is a multiple of this.

  Returns:
    Strictly increasing bucket sizes; the last one is >= ``max_batch``.
  """
  if min(max_batch, min_batch, max_sizes, multiple_of) < 1:
    raise ValueError("max_batch, min_batch, max_sizes and multiple_of must be "
                     ">= 1.")
  min_batch = min(min_batch, max_batch)
  ratio = 2
  sizes = [max_batch]
  while max_sizes > 1:
    sizes, size = [], min_batch
    while size < max_batch:
      sizes.append(size)
      size *= ratio
    sizes.append(max_batch)
    if len(sizes) <= max_sizes:
      break
    ratio *= 2
  rounded = (multiple_of * math.ceil(s / multiple_of) for s in sizes)
  return tuple(sorted(set(rounded)))


def bucket_for(batch_size: int, buckets: Sequence[int] | None) -> int:
  """The padded length for ``batch_size``: the smallest bucket holding it."""
  if not buckets:
    return batch_size
  for size in buckets:
    if size >= batch_size:
      return int(size)
  raise ValueError(f"Batch size {batch_size} exceeds the largest bucket "
                   f"{buckets[-1]}.")


def gather(arrays: Mapping[str, np.ndarray] | Sequence[np.ndarray],
           indices: np.ndarray | Batch,
           mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Selects the rows of a batch from host arrays.

  Args:
    arrays: ``{"x": ..., "y": ..., ...}`` (every entry is gathered), or a pair
      ``(x, y)``, e.g. ``(ds.x_train, ds.y_train)``.
    indices: Row indices, or a :class:`Batch` (then ``mask`` is taken from it).
    mask: Validity mask; default all ones.

  Returns:
    ``dict(x=..., y=..., mask=...)`` (plus any other keys of ``arrays``).
  """
  if isinstance(indices, Batch):
    indices, batch_mask = indices
    mask = batch_mask if mask is None else mask
  indices = np.asarray(indices)
  if mask is None:
    mask = np.ones(indices.shape, np.float32)
  if isinstance(arrays, Mapping):
    named = dict(arrays)
  else:
    if len(arrays) != 2:
      raise ValueError("arrays must be a mapping or an (x, y) pair.")
    named = {"x": arrays[0], "y": arrays[1]}
  out = {key: np.asarray(value)[indices] for key, value in named.items()}
  out["mask"] = np.asarray(mask, np.float32)
  return out


class EpochSampler:
  """Reproducible, resumable epoch-wise sampler of batch indices.

  Each epoch is a permutation drawn from ``(seed, epoch)`` (or the identity
  without ``shuffle``) consumed front to back. When the rest of an epoch is
  smaller than the batch, ``drop_remainder`` skips it and the next epoch
  starts; otherwise a short batch is served, padded to the usual length L with
  mask 0. L is ``batch_size``, or, with ``buckets``, the smallest bucket
  >= ``batch_size``; so the batch shape depends only on the batch size.

  After a batch that ends an epoch, :attr:`epoch_done` is True and the sampler
  already points at the start of the next epoch (``position == 0``).

  Example::

    sampler = EpochSampler(ds.num_train, 128, seed=0)
    for step in range(num_steps):
      batch = gather(ds.train_arrays, sampler.next_batch())
      ...
      if sampler.epoch_done:
        evaluate(sampler.epoch)      # number of finished epochs
  """

  def __init__(self, num_examples: int, batch_size: int | None, *, seed: int = 0,
               shuffle: bool = True, drop_remainder: bool = True,
               buckets: Iterable[int] | None = None):
    """Creates the sampler at the start of epoch 0.

    Args:
      num_examples: Dataset size n (>= 1).
      batch_size: Examples per batch, or None for the full batch (n).
      seed: Non-negative seed of the epoch permutations.
      shuffle: Draw a permutation per epoch (else use 0..n-1 every epoch).
      drop_remainder: Skip an epoch's last partial batch.
      buckets: Optional allowed padded lengths (sorted, deduplicated here).
    """
    if int(num_examples) < 1:
      raise ValueError(f"num_examples must be >= 1, got {num_examples}.")
    if int(seed) < 0:
      raise ValueError(f"seed must be >= 0, got {seed}.")
    self._n = int(num_examples)
    self._seed = int(seed)
    self._shuffle = bool(shuffle)
    self._drop_remainder = bool(drop_remainder)
    self._buckets = None if buckets is None else tuple(
        sorted({int(b) for b in buckets}))
    if self._buckets is not None and (not self._buckets or self._buckets[0] < 1):
      raise ValueError(f"buckets must be positive sizes, got {buckets}.")
    self._batch_size: int | None = None
    self.set_batch_size(batch_size)
    self._epoch = 0
    self._position = 0
    self._examples_seen = 0
    self._steps = 0
    self._epoch_done = False
    self._perm_epoch = -1
    self._perm = np.empty((0,), np.int32)
    self._ones_cache = np.empty((0,), np.float32)

  # --- configuration -------------------------------------------------------

  def set_batch_size(self, batch_size: int | None) -> None:
    """Changes the batch size for the following batches (None: full batch).

    Raises:
      ValueError: If the size is < 1, exceeds the dataset, or exceeds the
        largest bucket.
    """
    size = self._n if batch_size is None else int(batch_size)
    if batch_size is not None and (size != batch_size or size < 1):
      raise ValueError(f"batch_size must be a positive integer or None, got "
                       f"{batch_size!r}.")
    if size > self._n:
      raise ValueError(f"batch_size {size} exceeds the dataset size {self._n}.")
    if self._buckets is not None and size > self._buckets[-1]:
      raise ValueError(f"batch_size {size} exceeds the largest bucket "
                       f"{self._buckets[-1]}.")
    self._batch_size = None if batch_size is None else size

  @property
  def num_examples(self) -> int:
    return self._n

  @property
  def batch_size(self) -> int:
    """Current number of examples per batch (n for the full batch)."""
    return self._n if self._batch_size is None else self._batch_size

  @property
  def buckets(self) -> tuple[int, ...] | None:
    return self._buckets

  @property
  def padded_size(self) -> int:
    """Length L of the arrays of the next batch."""
    return bucket_for(self.batch_size, self._buckets)

  @property
  def steps_per_epoch(self) -> int:
    """Batches per full epoch at the current batch size."""
    if self._drop_remainder:
      return self._n // self.batch_size
    return -(-self._n // self.batch_size)

  # --- progress ------------------------------------------------------------

  @property
  def epoch(self) -> int:
    """Index of the current epoch (= number of finished epochs)."""
    return self._epoch

  @property
  def position(self) -> int:
    """Examples consumed in the current epoch."""
    return self._position

  @property
  def examples_seen(self) -> int:
    """Real (unpadded) examples served since the start."""
    return self._examples_seen

  @property
  def steps(self) -> int:
    """Batches served since the start."""
    return self._steps

  @property
  def epoch_done(self) -> bool:
    """True iff the last batch served ended an epoch."""
    return self._epoch_done

  # --- sampling ------------------------------------------------------------

  def permutation(self, epoch: int) -> np.ndarray:
    """The int32 order in which epoch ``epoch`` visits the examples."""
    if not self._shuffle:
      return np.arange(self._n, dtype=np.int32)
    rng = np.random.default_rng([self._seed, int(epoch)])
    return rng.permutation(self._n).astype(np.int32)

  def _current_perm(self) -> np.ndarray:
    if self._perm_epoch != self._epoch:
      self._perm = self.permutation(self._epoch)
      self._perm_epoch = self._epoch
    return self._perm

  def _start_next_epoch(self) -> None:
    self._epoch += 1
    self._position = 0

  def next_batch(self) -> Batch:
    """Serves the next batch of indices and its mask, and advances."""
    size = self.batch_size
    if self._drop_remainder and self._n - self._position < size:
      self._start_next_epoch()  # Batch size grew since the last call.
    take = min(size, self._n - self._position)
    valid = self._current_perm()[self._position:self._position + take]
    self._position += take
    self._examples_seen += take
    self._steps += 1
    remaining = self._n - self._position
    self._epoch_done = remaining == 0 or (self._drop_remainder and
                                          remaining < size)
    if self._epoch_done:
      self._start_next_epoch()
    length = bucket_for(size, self._buckets)
    if take == length:  # No padding: a view of the permutation (hot path).
      return Batch(valid, self._ones(length))
    indices = np.full((length,), valid[0], dtype=np.int32)
    indices[:take] = valid
    mask = np.zeros((length,), dtype=np.float32)
    mask[:take] = 1.0
    return Batch(indices, mask)

  def _ones(self, length: int) -> np.ndarray:
    """A read-only all-ones mask, cached per length."""
    if self._ones_cache.shape != (length,):
      self._ones_cache = np.ones((length,), np.float32)
      self._ones_cache.flags.writeable = False
    return self._ones_cache

  def epoch_batches(self) -> Iterator[Batch]:
    """Yields batches until the current epoch ends (the rest of it, if started)."""
    while True:
      batch = self.next_batch()
      yield batch
      if self._epoch_done:
        return

  def __iter__(self) -> Iterator[Batch]:
    return self

  def __next__(self) -> Batch:
    return self.next_batch()

  # --- checkpointing -------------------------------------------------------

  def state_dict(self) -> dict[str, Any]:
    """A JSON-serializable snapshot of configuration and progress."""
    return {
        "num_examples": self._n,
        "seed": self._seed,
        "shuffle": self._shuffle,
        "drop_remainder": self._drop_remainder,
        "buckets": None if self._buckets is None else list(self._buckets),
        "batch_size": self._batch_size,
        "epoch": self._epoch,
        "position": self._position,
        "examples_seen": self._examples_seen,
        "steps": self._steps,
        "epoch_done": self._epoch_done,
    }

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Restores a :meth:`state_dict` snapshot (e.g. after a json round trip).

    Raises:
      ValueError: If the snapshot belongs to a sampler over a different
        dataset size, seed or shuffling mode (its indices would not match).
    """
    for key, mine in (("num_examples", self._n), ("seed", self._seed),
                      ("shuffle", self._shuffle)):
      if state[key] != mine:
        raise ValueError(f"Cannot load a sampler state with {key}="
                         f"{state[key]!r} into a sampler with {key}={mine!r}.")
    position = int(state["position"])
    if not 0 <= position < self._n:
      raise ValueError(f"position {position} out of range [0, {self._n}).")
    self._drop_remainder = bool(state["drop_remainder"])
    buckets = state["buckets"]
    self._buckets = None if buckets is None else tuple(int(b) for b in buckets)
    self.set_batch_size(state["batch_size"])
    self._epoch = int(state["epoch"])
    self._position = position
    self._examples_seen = int(state["examples_seen"])
    self._steps = int(state["steps"])
    self._epoch_done = bool(state["epoch_done"])

  def __repr__(self) -> str:
    return (f"EpochSampler(num_examples={self._n}, batch_size={self.batch_size}, "
            f"seed={self._seed}, epoch={self._epoch}, position={self._position}, "
            f"buckets={self._buckets})")
