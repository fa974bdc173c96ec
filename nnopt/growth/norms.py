"""Norms of sensitivity gradients (Kreis (4.10), (4.17), App. B.3).

All norms are returned **squared**, as in (4.10) and (B.1). Kernels are
HWIO ``(h, w, c_in, c_out)``; dense kernels are flax's ``(in, out) = Wᵀ``
(every norm here is transpose invariant).

The operator norm of a convolution (B.1c) is the largest singular value of
the linear map ``x ↦ K ⊛ x`` on ``n × m`` images, computed as in
Sedghi, Gupta & Long (2019): for circular convolution the map is block
diagonalised by the 2-D DFT, so

.. math::  \\|K\\|_{2\\leftarrow 2} = \\max_{u,v} \\sigma_{\\max}\\big(
           \\hat K(u, v)\\big),\\qquad \\hat K = \\mathrm{FFT2}_{n\\times m}(K)
           \\in \\mathbb C^{n\\times m\\times c_{in}\\times c_{out}}.

It is exact for periodic boundaries and an approximation for zero padding
(spec pitfall P18). ``op_repo`` reproduces the authors' reference code, which
ran the FFT over the *channel* axes of a PyTorch-layout kernel at size 3×3
(pitfall P1); it is offered only for comparison.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def frobenius_sq(g: Array) -> Array:
  """``‖G‖_F²`` (B.1a; (4.17) for matrices)."""
  return jnp.sum(jnp.square(g))


def frobenius_sq_scaled(g: Array) -> Array:
  """``‖G‖_F² / numel`` (B.1b; for a square n×n matrix the ``1/n²`` of §4.3.2)."""
  return jnp.sum(jnp.square(g)) / g.size


def _wrapped_kernel(kernel: Array, size: Sequence[int]) -> Array:
  """The kernel's taps folded onto an ``n × m`` torus (zero-padded if larger).

  A circular convolution on an image smaller than the kernel adds the taps
  that land on the same pixel; ``fft2(..., s=)`` would crop them instead.
  """
  n, m = size
  kh, kw = kernel.shape[:2]
  out = jnp.zeros((n, m, *kernel.shape[2:]), kernel.dtype)
  for i in range(kh):
    for j in range(kw):
      out = out.at[i % n, j % m].add(kernel[i, j])
  return out


def conv_spectrum(kernel: Array, size: Sequence[int]) -> Array:
  """Singular values of every frequency block, ``(n, m, min(c_in, c_out))``."""
  transform = jnp.fft.fft2(_wrapped_kernel(kernel, size), axes=(0, 1))
  return jnp.linalg.svd(transform, compute_uv=False)


def conv_operator_sq(kernel: Array, size: Sequence[int]) -> Array:
  """``‖K‖²_{2←2}`` of the circular convolution on ``size`` images (B.1c)."""
  return jnp.max(conv_spectrum(kernel, size)) ** 2


def _per_output_norms(kernel: Array, size: Sequence[int], slice_mode: str) -> Array:
  """``‖·‖_{2←2}`` of each output channel's map, shape ``(c_out,)``.

  ``'sum_over_in'``: the single-channel kernel ``Σ_k K[:, :, k, ℓ]`` as printed
  in (B.1d/e); ``'full_in'``: the ``c_in → 1`` map of output channel ℓ (the
  prose of App. B.3 and the reference code's intent).
  """
  if slice_mode == "sum_over_in":
    kernel = jnp.sum(kernel, axis=2, keepdims=True)
  elif slice_mode != "full_in":
    raise ValueError(f"slice_mode must be 'sum_over_in' or 'full_in', got "
                     f"{slice_mode!r}")
  transform = jnp.fft.fft2(_wrapped_kernel(kernel, size), axes=(0, 1))
  # A c_in × 1 block has one singular value: its Euclidean norm.
  per_freq = jnp.sqrt(jnp.sum(jnp.abs(transform) ** 2, axis=2))  # (n, m, c_out)
  return jnp.max(per_freq, axis=(0, 1))


def conv_per_output_sum_sq(kernel: Array, size: Sequence[int], *,
                           slice_mode: str = "sum_over_in") -> Array:
  """``Σ_ℓ ‖K_ℓ‖²_{2←2}`` (B.1d)."""
  return jnp.sum(_per_output_norms(kernel, size, slice_mode) ** 2)


def conv_per_output_l1_sq(kernel: Array, size: Sequence[int], *,
                          slice_mode: str = "sum_over_in") -> Array:
  """``(Σ_ℓ ‖K_ℓ‖_{2←2})²`` (B.1e)."""
  return jnp.sum(_per_output_norms(kernel, size, slice_mode)) ** 2


def conv_operator_sq_repo(kernel: Array) -> Array:
  """The reference code's "operator norm" (spec pitfall P1), squared.

  ``np.fft.fft2(K_oihw, (3, 3), axes=[0, 1])`` then the SVD of each trailing
  ``(kh, kw)`` block: the FFT runs over the first 3×3 *channels*. Depends only
  on ``K[:, :, :3, :3]``. For compatibility studies only.
  """
  oihw = jnp.transpose(kernel, (3, 2, 0, 1))
  transform = jnp.fft.fft2(oihw, s=(3, 3), axes=(0, 1))
  return jnp.max(jnp.linalg.svd(transform, compute_uv=False)) ** 2


def matrix_operator_sq(g: Array) -> Array:
  """Squared spectral norm of a dense weight gradient."""
  return jnp.linalg.norm(g, ord=2) ** 2


NORMS = ("fro", "fro_scaled", "op", "op_per_out_sum", "op_per_out_l1", "op_repo")


def norm_fn(name: str, *, input_size: Sequence[int] | None = None,
            slice_mode: str = "sum_over_in") -> Callable[[Array], Array]:
  """The squared norm ``name`` for one weight gradient.

  Args:
    name: one of :data:`NORMS`. For dense matrices ``'op'`` is the spectral
      norm and the per-output/repo variants are not defined.
    input_size: spatial size ``(n, m)`` of a conv layer's input (needed by
      the conv operator norms).
    slice_mode: for ``op_per_out_*``, see :func:`conv_per_output_sum_sq`.
  """
  if name == "fro":
    return frobenius_sq
  if name == "fro_scaled":
    return frobenius_sq_scaled
  if name not in NORMS:
    raise ValueError(f"unknown sensitivity norm {name!r}; known: {NORMS}")

  def fn(g):
    if g.ndim == 2:
      if name != "op":
        raise ValueError(f"norm {name!r} is defined for conv kernels only")
      return matrix_operator_sq(g)
    if name == "op_repo":
      return conv_operator_sq_repo(g)
    if input_size is None:
      raise ValueError(f"norm {name!r} of a conv kernel needs the layer's "
                       "input size")
    if name == "op":
      return conv_operator_sq(g, input_size)
    if name == "op_per_out_sum":
      return conv_per_output_sum_sq(g, input_size, slice_mode=slice_mode)
    return conv_per_output_l1_sq(g, input_size, slice_mode=slice_mode)

  return fn
