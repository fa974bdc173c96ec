"""Second moments of per-example gradients of one layer, from its statistics.

For a tagged layer with inputs ``a`` and cotangents ``c`` of the weighted MEAN
loss (:func:`nnopt.stats.capture.capture`), example n's gradient is
``G_n = r_n Σ_p a_{n,p} ⊗ c_{n,p}`` with ``r_n = m / w_n`` and p running over
the positions that share the weights (one position for a Dense layer on
vectors, the output pixels of a convolution, the tokens of a sequence; for a
convolution ``a_{n,p}`` is the input patch at p). Two quantities are needed:

* :func:`layer_sq_sum` — ``Q = Σ_n w_n G_n²`` elementwise (per-coordinate
  variances, M-SVAG, :class:`nnopt.stats.moments.BatchMoments`);
* :func:`layer_sq_norm_sum` — ``Σ_n w_n ‖G_n‖²``, a scalar (the trace of the
  variance, CABS).

Paths (all exact, all in-graph, float32):

* Dense on vectors: ``Q = (a²)ᵀ diag(w r²) c²`` and
  ``‖G_n‖² = r_n² ‖a_n‖² ‖c_n‖²`` — nothing per example is materialized.
* ``'patches'`` (shared weights): each example's gradient
  ``G_n = A_nᵀ C_n`` from its ``(P, K)`` patch matrix (``K = kh·kw·C_in``;
  for a convolution stacked tap-major from ``kh·kw`` static slices of the
  padded input, :func:`conv_taps`, not from a convolution with a one-hot
  kernel) and its ``(P, C_out)`` cotangents, one batched matmul
  (:func:`per_example_products`). ``B·P·K·C_out`` multiply-adds (as many as
  the kernel gradient). Memory per chunk of examples: the patches
  (``P·K``), the per-example gradients (``K·C_out``) and the cotangents
  (``P·C_out``) per example; the batch goes in chunks (``lax.scan``) of
  :func:`auto_chunk` examples, about :data:`CHUNK_FLOATS` floats (8 MiB) in
  all, or ``chunk_size`` examples.
* ``'gram'`` (norms only): ``‖G_n‖² = Σ_{p,q} (a_p·a_q)(c_p·c_q)`` from the
  patch Gram (:func:`patch_gram`: from the patches, or for a convolution
  from the Gram of its input summed along the kernel taps when that is
  cheaper), applied to the cotangents, ``⟨(A Aᵀ) C, C⟩``.
  ``B·P²·(K + C_out)`` multiply-adds at most; memory ``P²`` floats per
  example (plus ``(H·W)²`` for the input Gram), chunked likewise. Cheaper
  than the patches when the number of positions P is small;
  :func:`norm_method` (``method='auto'``) picks the path with fewer
  multiply-adds per layer.

The weights ``w_n r_n²`` multiply each example's squares at the end; padded
rows (w = 0) contribute 0.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from nnopt.stats.capture import LayerStats
from nnopt.stats.geometry import (GeometryError, conv_padding, conv_taps,
                                  infer_layer_info)
from nnopt.models.layers import LayerInfo

Array = jax.Array

METHODS = ("auto", "patches", "gram")

# Work set (floats, 8 MiB) of one chunk of the per-example paths. Measured on
# CPU (VGG-like layers, B = 128 and 512): whole batches of 20+ MiB run up to
# 3× slower than chunks; much smaller chunks lose to the loop's overhead.
CHUNK_FLOATS = 1 << 21


class VarianceError(ValueError):
  """A variance cannot be estimated from the given input.

  Re-exported as :class:`nnopt.stats.moments.VarianceError`.
  """


def infer_conv_info(stats: LayerStats, kernel_shape: tuple[int, ...],
                    use_bias: bool) -> LayerInfo:
  """A conv layer's geometry from its statistics' shapes
  (:func:`nnopt.stats.geometry.infer_layer_info`).

  Raises:
    VarianceError: when no, or more than one, convolution fits; then pass
      the layer infos (:func:`nnopt.stats.capture.layer_info`).
  """
  try:
    return infer_layer_info(kernel_shape, stats.inputs.shape,
                            stats.cotangents.shape, use_bias=use_bias)
  except GeometryError as err:
    raise VarianceError(f"{err}; pass it as layers=") from None


def row_scale(weights: Array | None, batch: int) -> tuple[Array, Array, Array]:
  """``(count, r, w)`` with ``r_n = max(Σw, 1) / w_n`` (0 on padding).

  The mean loss divides by ``max(Σw, 1)`` (:func:`nnopt.losses.weighted_mean`),
  so ``G_n = r_n Σ_p a_{n,p} ⊗ c_{n,p}``.
  """
  if weights is None:
    w = jnp.ones((batch,), jnp.float32)
  else:
    w = weights.astype(jnp.float32)
  count = jnp.sum(w)
  norm = jnp.maximum(count, 1.0)
  return count, jnp.where(w > 0, norm / jnp.where(w > 0, w, 1.0), 0.0), w


def _gram_costs(a_shape, info: LayerInfo, out_spatial) -> tuple[int, int]:
  """Multiply-adds per example of the patch Gram: ``(from patches, from
  the input Gram)``."""
  positions = math.prod(out_spatial)
  k = math.prod(info.kernel_shape[:-1])
  if info.kind != "conv":
    return positions * positions * k, positions * positions * k
  in_positions = math.prod(a_shape[1:3])
  taps = math.prod(info.kernel_shape[:2])
  return (positions * positions * k,
          in_positions * in_positions * a_shape[3]
          + taps * positions * positions)


def patch_gram(a: Array, info: LayerInfo, out_spatial) -> Array:
  """``(B, P, P)`` Gram ``A_n A_nᵀ`` of each example's patches.

  For a convolution, either from the patches (``P²·kh·kw·C_in``
  multiply-adds per example) or from the Gram of the input itself,
  ``S = X Xᵀ`` over input positions, summed along the kernel taps,
  ``(A Aᵀ)_{pq} = Σ_t S̃_{p+t, q+t}`` with S̃ zero-padded like the input
  (``(H·W)²·C_in + kh·kw·P²``), whichever is cheaper.
  """
  batch = a.shape[0]
  if info.kind != "conv":
    a = a.reshape(batch, -1, a.shape[-1])
    return jnp.einsum("npk,nqk->npq", a, a)
  from_patches, from_input = _gram_costs(a.shape, info, out_spatial)
  if from_patches <= from_input:
    p = _patch_tensor(a, info, out_spatial)
    return jnp.einsum("ntpi,ntqi->npq", p, p)
  kh, kw = info.kernel_shape[:2]
  sh, sw = info.strides
  ho, wo = out_spatial
  (pt, pb), (pl, pr) = conv_padding(info, a.shape[1:3])
  s = jnp.einsum("nhwi,nxyi->nhwxy", a, a)
  s = jax.lax.pad(s, jnp.zeros((), s.dtype),
                  ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (pt, pb, 0),
                   (pl, pr, 0)))
  rows = lambda i: slice(i, i + (ho - 1) * sh + 1, sh)
  cols = lambda j: slice(j, j + (wo - 1) * sw + 1, sw)
  gram = sum(s[:, rows(i), cols(j), rows(i), cols(j)]
             for i in range(kh) for j in range(kw))
  return gram.reshape(batch, ho * wo, ho * wo)


def _patch_tensor(a: Array, info: LayerInfo, out_spatial) -> Array:
  """``(B, T, P, C_in)``: each example's patches, tap-major (T = kh·kw taps
  of a convolution; T = 1 and the inputs themselves for a Dense layer).

  Tap-major keeps each tap's slice contiguous (a concatenation along the
  channels would interleave them), and ``(T, C_in)`` flattens to the HWIO
  kernel's ``kh·kw·C_in`` order.
  """
  batch = a.shape[0]
  if info.kind != "conv":
    return a.reshape(batch, 1, -1, a.shape[-1])
  taps = conv_taps(a, info, out_spatial)
  return jnp.stack([t.reshape(batch, -1, t.shape[-1]) for t in taps], axis=1)


def _patches(a: Array, c: Array, info: LayerInfo) -> tuple[Array, Array]:
  """``(B, T, P, C_in)`` patches and ``(B, P, C_out)`` cotangents."""
  return (_patch_tensor(a, info, c.shape[1:-1]),
          c.reshape(c.shape[0], -1, c.shape[-1]))


def _sizes(stats: LayerStats, info: LayerInfo) -> tuple[int, int, int]:
  """``(P, K, C_out)``: positions, patch features, output features."""
  c = stats.cotangents
  positions = math.prod(c.shape[1:-1])
  return positions, math.prod(info.kernel_shape[:-1]), c.shape[-1]


def per_example_products(p: Array, c: Array) -> Array:
  """``G[n] = A[n]ᵀ C[n]``, ``(B, T·C_in, C_out)``: each example's kernel
  gradient (up to ``r_n``) from its tap-major patches ``(B, T, P, C_in)``
  and cotangents ``(B, P, C_out)``, one batched matmul."""
  g = jnp.einsum("ntpi,npo->ntio", p, c)
  return g.reshape(g.shape[0], -1, g.shape[-1])


def auto_chunk(batch: int, per_example: int, budget: int | None = None
               ) -> int:
  """Examples per chunk so that a chunk's work set is ``≲ budget`` floats
  (default :data:`CHUNK_FLOATS`).

  Prefers a divisor of ``batch`` (no padded copy) of at least half the
  budgeted size.
  """
  budget = CHUNK_FLOATS if budget is None else budget
  limit = max(1, min(batch, budget // max(per_example, 1)))
  for size in range(limit, max(limit // 2, 1) - 1, -1):
    if batch % size == 0:
      return size
  return limit


def _in_chunks(fn: Callable[..., tuple], arrays: tuple[Array, ...],
               chunk_size: int) -> tuple:
  """``Σ`` over batch chunks of ``fn(*chunks)`` (a tuple of arrays), with
  ``lax.scan``. Rows that fill the last chunk are zeros (zero weight).
  """
  batch = arrays[0].shape[0]
  if chunk_size >= batch:
    return fn(*arrays)
  chunks = -(-batch // chunk_size)
  pad = chunks * chunk_size - batch

  def split(x):
    if pad:
      x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)], 0)
    return x.reshape((chunks, chunk_size) + x.shape[1:])

  def body(acc, xs):
    return tuple(s + o for s, o in zip(acc, fn(*xs))), None

  out_shapes = jax.eval_shape(fn, *(x[:chunk_size] for x in arrays))
  init = tuple(jnp.zeros(s.shape, s.dtype) for s in out_shapes)
  total, _ = jax.lax.scan(body, init, tuple(split(x) for x in arrays))
  return total


def _square_scale(weights: Array | None, batch: int) -> Array:
  """``w_n r_n²``: ``Σ_n w_n G_n² = Σ_n w_n r_n² (Σ_p a_{n,p} ⊗ c_{n,p})²``."""
  _, r, w = row_scale(weights, batch)
  return w * r * r


def layer_sq_sum(stats: LayerStats, info: LayerInfo, weights: Array | None,
                 chunk_size: int | None = None) -> dict[str, Array]:
  """``Σ_n w_n G_n²`` of one layer's kernel (and bias), elementwise.

  Dense layers on vectors use one matmul; shared weights (conv, sequences)
  form the per-example gradients from patches, ``chunk_size`` examples at a
  time (default: :func:`auto_chunk`, a work set of about
  :data:`CHUNK_FLOATS` floats).
  """
  a, c = stats.inputs, stats.cotangents
  scale = _square_scale(weights, a.shape[0])
  if info.kind == "dense" and a.ndim == 2:
    # Σ_n w_n r_n² a_n² c_n² = (a²)ᵀ diag(w r²) c²: one matmul.
    weighted = scale[:, None] * c * c
    out = {"kernel": (a * a).T @ weighted}
    if info.use_bias:
      out["bias"] = jnp.sum(weighted, axis=0)
    return out
  positions, k, c_out = _sizes(stats, info)
  if chunk_size is None:
    chunk_size = auto_chunk(a.shape[0], positions * (k + c_out) + k * c_out)

  def chunk_sq_sum(a, c, scale):
    p, c = _patches(a, c, info)
    g = per_example_products(p, c)
    gb = jnp.sum(c, axis=1)
    return (jnp.einsum("n,nko->ko", scale, g * g),
            jnp.einsum("n,no->o", scale, gb * gb))

  kq, bq = _in_chunks(chunk_sq_sum, (a, c, scale), chunk_size)
  out = {"kernel": kq.reshape(info.kernel_shape)}
  if info.use_bias:
    out["bias"] = bq
  return out


def _gram_work(stats: LayerStats, info: LayerInfo) -> int:
  """Multiply-adds per example of the Gram path (patch Gram, applied to the
  cotangents, and the final inner product)."""
  positions, _, c_out = _sizes(stats, info)
  gram_a = min(_gram_costs(stats.inputs.shape, info,
                           stats.cotangents.shape[1:-1]))
  return gram_a + positions * positions * (c_out + 1)


def norm_method(stats: LayerStats, info: LayerInfo) -> str:
  """``'patches'`` or ``'gram'``: the exact per-example-norm path with fewer
  multiply-adds per example, ``P·K·C_out`` against ``P²·(K + C_out)`` (``P``
  positions, ``K = kh·kw·C_in``; for a convolution the patch Gram may come
  cheaper from the input Gram, :func:`patch_gram`). Dense layers on vectors
  have their own closed form and report ``'dense'``.
  """
  if info.kind == "dense" and stats.cotangents.ndim == 2:
    return "dense"
  positions, k, c_out = _sizes(stats, info)
  if _gram_work(stats, info) < positions * k * c_out:
    return "gram"
  return "patches"


def layer_sq_norm_sum(stats: LayerStats, info: LayerInfo,
                      weights: Array | None, chunk_size: int | None = None,
                      method: str = "auto") -> Array:
  """``Σ_n w_n ‖G_n‖²`` over one layer's kernel and bias (a scalar).

  Args:
    stats: the layer's capture statistics.
    info: its :class:`~nnopt.models.layers.LayerInfo`.
    weights: the batch mask (frequency weights).
    chunk_size: examples per chunk (memory bound) of the patches/Gram paths;
      default :func:`auto_chunk`.
    method: ``'auto'`` (fewer multiply-adds, :func:`norm_method`),
      ``'patches'`` or ``'gram'``; ignored for Dense layers on vectors.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  a, c = stats.inputs, stats.cotangents
  scale = _square_scale(weights, a.shape[0])
  if info.kind == "dense" and a.ndim == 2:
    # ‖a_n ⊗ c_n‖² = ‖a_n‖² ‖c_n‖²; the bias adds ‖c_n‖².
    c2 = jnp.sum(c * c, axis=1)
    a2 = jnp.sum(a * a, axis=1) + 1.0 if info.use_bias else jnp.sum(a * a, 1)
    return jnp.sum(scale * a2 * c2)
  if method == "auto":
    method = norm_method(stats, info)
  positions, k, c_out = _sizes(stats, info)

  def chunk_patches(a, c, scale):
    p, c = _patches(a, c, info)
    g = per_example_products(p, c)
    norms = jnp.sum(g * g, axis=(1, 2))
    if info.use_bias:
      norms = norms + jnp.sum(jnp.square(jnp.sum(c, axis=1)), axis=1)
    return (jnp.sum(scale * norms),)

  def chunk_gram(a, c, scale):
    gram_a = patch_gram(a, info, c.shape[1:-1])
    # The bias adds ‖Σ_p c_p‖² = Σ_{p,q} c_p·c_q: a Gram of ones.
    gram_a = gram_a + 1.0 if info.use_bias else gram_a
    c = c.reshape(c.shape[0], -1, c.shape[-1])
    # Σ_{p,q} (A Aᵀ)_{pq} (c_p·c_q) = ⟨(A Aᵀ) C, C⟩: no cotangent Gram kept.
    applied = jnp.einsum("npq,nqo->npo", gram_a, c)
    return (jnp.sum(scale * jnp.sum(applied * c, axis=(1, 2))),)

  if method == "patches":
    fn, work = chunk_patches, positions * (k + c_out) + k * c_out
  else:
    in_positions = math.prod(a.shape[1:-1])
    fn = chunk_gram
    work = (positions * (k + 2 * c_out) + positions * positions
            + in_positions * in_positions)
  if chunk_size is None:
    chunk_size = auto_chunk(a.shape[0], work)
  return _in_chunks(fn, (a, c, scale), chunk_size)[0]


__all__ = ["CHUNK_FLOATS", "METHODS", "VarianceError", "auto_chunk",
           "per_example_products",
           "conv_padding", "conv_taps", "infer_conv_info",
           "layer_sq_norm_sum", "layer_sq_sum", "norm_method", "patch_gram",
           "row_scale"]
