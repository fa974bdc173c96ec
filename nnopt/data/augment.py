"""Host-side image augmentation: random crop with padding and horizontal flip.

This is the "standard data augmentation" of the CIFAR experiments,
``RandomCrop(32, padding=4)`` followed by ``RandomHorizontalFlip()``
(spec-sensli.md §1.6), written in numpy for NHWC batches and vectorized over
the batch. Randomness is explicit: either pass a ``numpy.random.Generator``, or
use :class:`CropFlip`, whose draw for a step is a pure function of
``(seed, step)``, so an interrupted run resumes with the same augmentations.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
  if isinstance(rng, np.random.Generator):
    return rng
  return np.random.default_rng(int(rng))


def random_crop_flip(
    images: np.ndarray,
    rng: np.random.Generator | int,
    *,
    padding: int = 4,
    flip: bool = True,
    pad_value: float | np.ndarray = 0.0,
) -> np.ndarray:
  """Pads each image by ``padding``, crops it back at a random offset, maybe flips.

  For every image independently: the image is padded with ``pad_value`` on all
  four sides, an ``H x W`` window is cut at a uniformly random offset in
  ``{0, ..., 2 * padding}^2``, and with probability 1/2 (if ``flip``) it is
  mirrored left-right.

  Args:
    images: NHWC batch, shape ``(B, H, W, C)``.
    rng: Generator (advanced in place) or integer seed.
    padding: Pixels of padding per side (0 disables cropping).
    flip: Apply random horizontal flips.
    pad_value: Fill value, a scalar or one value per channel. torchvision pads
      the raw [0, 1] image with 0; for images already normalized with
      ``(x - mean) / std`` pass ``-mean / std`` to match it.

  Returns:
    An augmented copy with the same shape and dtype as ``images``.
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be NHWC (4-D), got shape {images.shape}.")
  if padding < 0:
    raise ValueError(f"padding must be >= 0, got {padding}.")
  rng = _as_rng(rng)
  batch, height, width, channels = images.shape
  if padding > 0:
    padded = np.empty((batch, height + 2 * padding, width + 2 * padding,
                       channels), dtype=images.dtype)
    padded[...] = np.broadcast_to(np.asarray(pad_value, images.dtype),
                                  (channels,))
    padded[:, padding:padding + height, padding:padding + width] = images
    top = rng.integers(0, 2 * padding + 1, size=batch)
    left = rng.integers(0, 2 * padding + 1, size=batch)
    rows = top[:, None] + np.arange(height)  # (B, H)
    cols = left[:, None] + np.arange(width)  # (B, W)
    out = padded[np.arange(batch)[:, None, None], rows[:, :, None],
                 cols[:, None, :]]
  else:
    out = images.copy()
  if flip:
    mirrored = rng.random(batch) < 0.5
    out[mirrored] = out[mirrored, :, ::-1]
  return out


@dataclasses.dataclass(frozen=True)
class CropFlip:
  """Deterministic, resumable crop-and-flip augmentation.

  ``CropFlip(seed)(images, step)`` draws from a generator seeded by
  ``(seed, step)``: the same step always gets the same augmentation, with no
  state to checkpoint.

  Attributes:
    seed: Non-negative base seed.
    padding: Pixels of padding per side.
    flip: Apply random horizontal flips.
    pad_value: Fill value (scalar or per channel); see :func:`random_crop_flip`.
  """

  seed: int = 0
  padding: int = 4
  flip: bool = True
  pad_value: float | tuple[float, ...] = 0.0

  @classmethod
  def for_normalized(cls, mean, std, **kwargs) -> "CropFlip":
    """Pads with the value raw 0 takes after ``(x - mean) / std`` (torchvision)."""
    pad = -np.asarray(mean, np.float64) / np.asarray(std, np.float64)
    return cls(pad_value=tuple(float(v) for v in pad.reshape(-1)), **kwargs)

  def rng(self, step: int) -> np.random.Generator:
    """The generator used at ``step``."""
    return np.random.default_rng([int(self.seed), int(step)])

  def __call__(self, images: np.ndarray, step: int) -> np.ndarray:
    """Augments the NHWC batch ``images`` of training step ``step``."""
    return random_crop_flip(images, self.rng(step), padding=self.padding,
                            flip=self.flip, pad_value=np.asarray(self.pad_value))
