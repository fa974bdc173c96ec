"""Layer geometry: which input patches a tagged layer multiplies by its kernel.

A Dense layer multiplies its input rows with the kernel; a convolution
multiplies the input *patches* at every output position. The geometry of a
layer is one :class:`~nnopt.models.layers.LayerInfo` (kind, bias, kernel
shape, strides, padding). Tagged layers record it while traced
(:func:`nnopt.stats.capture.layer_info`); where only the statistics are at
hand, :func:`infer_layer_info` infers it from the shapes of a layer's inputs
and output cotangents. The patch helpers below turn a geometry and a batch of
inputs into the rows that the statistics layer works with: the feature order
of a patch is that of an HWIO kernel reshaped to ``(kh·kw·C_in, C_out)``.

Inference per spatial axis (input size ``h``, output size ``h'``, kernel
size ``k``): every stride s and padding p ∈ {SAME, VALID} with

.. math::  h' = \\lfloor (h + p_{lo} + p_{hi} - k) / s \\rfloor + 1

fits. Two fits are the same convolution when their explicit paddings agree
and (for ``h' > 1``) their strides agree; when the fits are more than one
convolution (7 → 3 by a 3-wide kernel is SAME/stride 3 and VALID/stride 2)
the geometry is ambiguous and :class:`GeometryError` asks for the recorded
one.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from nnopt.models.layers import LayerInfo

Array = jax.Array

PADDINGS = ("SAME", "VALID")


class GeometryError(ValueError):
  """A layer's geometry cannot be inferred from its shapes."""


def conv_padding(info: LayerInfo, spatial: Sequence[int]):
  """Explicit ``((lo, hi), (lo, hi))`` padding of a conv layer."""
  if isinstance(info.padding, str):
    return tuple(tuple(p) for p in jax.lax.padtype_to_pads(
        tuple(spatial), info.kernel_shape[:2], info.strides, info.padding))
  return tuple(tuple(p) for p in info.padding)


def conv_output_spatial(info: LayerInfo, spatial: Sequence[int]
                        ) -> tuple[int, int]:
  """``(H', W')`` of a conv layer's output for an input of size ``spatial``."""
  pads = conv_padding(info, spatial)
  return tuple((size + lo + hi - k) // s + 1 for size, (lo, hi), k, s in
               zip(spatial, pads, info.kernel_shape[:2], info.strides))


def conv_taps(inputs: Array, info: LayerInfo,
              out_spatial: Sequence[int]) -> list[Array]:
  """The ``kh·kw`` shifted, strided views of the padded input, tap-major.

  View ``t = i·kw + j`` is ``(B, H', W', C_in)`` with
  ``view[n, h, w] = padded[n, i + s_h·h, j + s_w·w]``; concatenated along
  the channels in this order they are the conv patches in the feature order
  of an HWIO kernel reshaped to ``(kh·kw·C_in, C_out)``. Static slices only
  (a convolution with a one-hot kernel costs far more on CPU).
  """
  kh, kw = info.kernel_shape[:2]
  sh, sw = info.strides
  ho, wo = out_spatial
  pads = conv_padding(info, inputs.shape[1:3])
  padded = jax.lax.pad(inputs, jnp.zeros((), inputs.dtype),
                       ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
  return [padded[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw, :]
          for i in range(kh) for j in range(kw)]


def conv_patches(inputs: Array, info: LayerInfo) -> Array:
  """Input patches of a convolution, ``(B, H', W', kh·kw·C_in)``.

  The feature order matches an HWIO kernel reshaped to ``(kh·kw·C_in, C_out)``,
  so that ``patches @ kernel.reshape(-1, C_out)`` is the convolution. Memory:
  ``kh·kw`` times the input's.
  """
  out_spatial = conv_output_spatial(info, inputs.shape[1:3])
  return jnp.concatenate(conv_taps(inputs, info, out_spatial), axis=-1)


def _axis_fits(size: int, out: int, k: int
               ) -> dict[tuple[Any, int], list[tuple[int, str]]]:
  """``{(pads, stride or 1 when out == 1): [(stride, padding), ...]}``.

  Keys are distinct convolutions along one axis; the values list every
  (stride, padding name) that produces that convolution.
  """
  fits: dict[tuple[Any, int], list[tuple[int, str]]] = {}
  # Strides beyond max(size, k) give the same single output as that one.
  for padding in PADDINGS:
    for stride in range(1, max(size, k) + 1):
      ((lo, hi),) = jax.lax.padtype_to_pads((size,), (k,), (stride,), padding)
      if size + lo + hi < k or (size + lo + hi - k) // stride + 1 != out:
        continue
      key = ((lo, hi), stride if out > 1 else 1)
      fits.setdefault(key, []).append((stride, padding))
  return fits


def _describe(fits) -> str:
  return ", ".join(f"{p}/stride {s}" for options in fits.values()
                   for s, p in options[:1])


def infer_layer_info(kernel_shape: Sequence[int], inputs_shape=None,
                     outputs_shape=None, *, use_bias: bool = False
                     ) -> LayerInfo:
  """The geometry of a layer from its kernel and statistics shapes.

  A 2-D kernel is Dense. A 4-D (HWIO) kernel is a 2-D convolution whose
  strides and padding are inferred per axis from the input and output
  spatial sizes (module docstring): ``'SAME'`` or ``'VALID'`` where one name
  fits both axes (``'SAME'`` preferred where both do, e.g. 1×1 kernels),
  else the explicit padding.

  Args:
    kernel_shape: ``(m, n)`` or ``(kh, kw, c_in, c_out)``.
    inputs_shape: the layer inputs' shape, ``(B, H, W, C_in)`` for a conv.
    outputs_shape: the output (cotangent) shape, ``(B, H', W', C_out)``.
    use_bias: recorded in the result.

  Returns:
    A :class:`~nnopt.models.layers.LayerInfo`.

  Raises:
    GeometryError: a kernel that is neither 2-D nor 4-D, missing shapes for
      a conv, or an axis that no, or more than one, convolution fits.
  """
  kernel_shape = tuple(int(s) for s in kernel_shape)
  if len(kernel_shape) == 2:
    return LayerInfo("dense", bool(use_bias), kernel_shape)
  if len(kernel_shape) != 4:
    raise GeometryError(f"kernel of shape {kernel_shape} is neither Dense "
                        "(2-D) nor a 2-D convolution (4-D HWIO)")
  if inputs_shape is None or outputs_shape is None:
    raise GeometryError("a convolution's geometry needs the shapes of its "
                        "inputs and outputs, or its recorded layer_info")
  axes = []
  for i in range(2):
    size, out, k = int(inputs_shape[1 + i]), int(outputs_shape[1 + i]), \
        kernel_shape[i]
    fits = _axis_fits(size, out, k)
    if len(fits) != 1:
      found = (f"{_describe(fits)} all fit" if fits else "nothing fits")
      raise GeometryError(
          f"cannot infer the stride/padding of a convolution from input size "
          f"{size}, output size {out} and kernel size {k} ({found}); the "
          "recorded geometry is nnopt.stats.capture.layer_info(model, params, "
          "x)")
    axes.append(next(iter(fits.items())))
  names = [{p for _, p in options} for _, options in axes]
  common = [p for p in PADDINGS if all(p in n for n in names)]
  if common:
    padding = common[0]
    strides = tuple(min(s for s, p in options if p == padding)
                    for _, options in axes)
  else:
    padding = tuple(pads for (pads, _), _ in axes)
    strides = tuple(min(s for s, _ in options) for _, options in axes)
  return LayerInfo("conv", bool(use_bias), kernel_shape, strides, padding)


__all__ = ["GeometryError", "PADDINGS", "conv_output_spatial", "conv_padding",
           "conv_patches", "conv_taps", "infer_layer_info"]
