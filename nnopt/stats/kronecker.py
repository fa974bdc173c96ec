"""Kronecker factors of one layer from the statistics that `capture` returns.

For a Dense layer with inputs ``a_n`` and per-example output gradients
``ĝ_n = ∇_{y} ℓ_n`` the two factors are the (uncentered) second moments

.. math::
  A = \\frac{1}{N} \\sum_n a_n a_n^T, \\qquad
  G = \\frac{1}{N} \\sum_n ĝ_n ĝ_n^T

(Kreis (5.8)–(5.14) without centering; K-FAC's factors). `capture` gives the
cotangents ``g_n`` of the batch *mean* loss, so ``ĝ_n = N g_n`` and
``G = N Σ_n g_n g_nᵀ``. With ``centered=True`` the means are subtracted,
``Cov = (1/N) Σ (a_n − ā)(a_n − ā)ᵀ`` (the thesis's biased 1/N estimator (2.4)).

Convolutions use the standard K-FAC treatment (Grosse & Martens 2016, KFC):
every output position t of example n contributes its input patch ``a_{n,t}``
and output gradient ``ĝ_{n,t}``; A averages over examples and positions and G
averages over examples and sums over positions, so that ``A ⊗ G`` has the
scale of the per-example gradient outer product under the usual
spatial-homogeneity assumptions. A Dense layer is the case T = 1.

Batch weights are masks: padded rows (weight 0) have a zero cotangent but a
non-zero input, so every input statistic is weighted and N = Σ w.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nnopt.stats.capture import conv_patches
from nnopt.models.layers import LayerInfo

Array = jax.Array


class FactorError(ValueError):
  """A layer's factors cannot be formed (shapes, size or missing statistics)."""


class LayerGeometry(NamedTuple):
  """What the factor math needs to know about a layer (static).

  Attributes:
    kind: ``'dense'`` or ``'conv'``.
    kernel_shape: ``(m, n)`` or ``(kh, kw, c_in, c_out)``.
    strides: convolution strides (``()`` for Dense).
    padding: convolution padding (None for Dense).
  """

  kind: str
  kernel_shape: tuple[int, ...]
  strides: tuple[int, ...] = ()
  padding: Any = None

  @property
  def in_dim(self) -> int:
    """Rows of the kernel matrix: ``m`` or ``kh·kw·c_in``."""
    return math.prod(self.kernel_shape[:-1])

  @property
  def out_dim(self) -> int:
    return self.kernel_shape[-1]

  def info(self) -> LayerInfo:
    return LayerInfo(self.kind, False, self.kernel_shape, self.strides,
                     self.padding)


def _conv_dim(size: int, out: int, k: int) -> tuple[int, str]:
  """(stride, padding) of one spatial axis, from input and output sizes."""
  candidates = []
  for stride in range(1, size + 1):
    if -(-size // stride) == out:
      candidates.append((stride, "SAME"))
    if size >= k and (size - k) // stride + 1 == out:
      candidates.append((stride, "VALID"))
  same = [c for c in candidates if c[1] == "SAME"]
  valid = [c for c in candidates if c[1] == "VALID"]
  if k == 1 and same:  # SAME and VALID coincide for 1×1 kernels
    return same[0]
  if len(same) == 1 and not valid:
    return same[0]
  if len(valid) == 1 and not same:
    return valid[0]
  if same and valid and same[0][0] == 1 and out == size:
    return same[0]
  raise FactorError(
      f"cannot infer stride/padding of a convolution from input size {size}, "
      f"output size {out} and kernel size {k}; pass layer_info="
      "nnopt.stats.capture.layer_info(model, params, x)")


def layer_geometry(kernel_shape: tuple[int, ...], inputs_shape=None,
                   outputs_shape=None, info: LayerInfo | None = None
                   ) -> LayerGeometry:
  """The geometry of a layer from its kernel and statistics shapes.

  A 2-D kernel is Dense. A 4-D (HWIO) kernel is a convolution whose strides
  and padding come from ``info`` when given, else are inferred from the input
  and output spatial sizes ('SAME' or 'VALID'; ambiguous cases raise).
  """
  kernel_shape = tuple(int(s) for s in kernel_shape)
  if len(kernel_shape) == 2:
    return LayerGeometry("dense", kernel_shape)
  if len(kernel_shape) != 4:
    raise FactorError(f"kernel of shape {kernel_shape} is neither Dense (2-D) "
                      "nor a 2-D convolution (4-D HWIO)")
  if info is not None:
    return LayerGeometry("conv", kernel_shape, tuple(info.strides), info.padding)
  if inputs_shape is None or outputs_shape is None:
    raise FactorError("a convolution's geometry needs its statistics or "
                      "layer_info")
  dims = [_conv_dim(inputs_shape[1 + i], outputs_shape[1 + i], kernel_shape[i])
          for i in range(2)]
  strides = tuple(d[0] for d in dims)
  paddings = {d[1] for d in dims}
  if len(paddings) != 1:
    raise FactorError("mixed SAME/VALID padding inferred; pass layer_info")
  return LayerGeometry("conv", kernel_shape, strides, paddings.pop())


def input_rows(inputs: Array, geometry: LayerGeometry,
               homogeneous: bool = False) -> Array:
  """Layer inputs as ``(B, T, m)`` rows (patches for a convolution).

  With ``homogeneous`` a constant 1 is appended to every row, the K-FAC
  treatment of a bias (``x̃ = [x; 1]``).
  """
  if geometry.kind == "conv":
    rows = conv_patches(inputs, geometry.info())
  else:
    rows = inputs
  rows = rows.reshape(rows.shape[0], -1, rows.shape[-1])
  if homogeneous:
    rows = jnp.concatenate([rows, jnp.ones_like(rows[..., :1])], axis=-1)
  return rows


def _batch_weights(weights: Array | None, batch: int, dtype) -> Array:
  if weights is None:
    return jnp.ones((batch,), dtype)
  return weights.astype(dtype).reshape(batch)


def input_factor(inputs: Array, geometry: LayerGeometry,
                 weights: Array | None = None, *, centered: bool = False,
                 homogeneous: bool = False, diagonal: bool = False) -> Array:
  """``A = (1/(N T)) Σ_{n,t} w_n a_{n,t} a_{n,t}ᵀ`` (centered: minus ``ā āᵀ``).

  Args:
    inputs: the layer's captured inputs, ``(B, m)`` or ``(B, H, W, C_in)``.
    geometry: see :func:`layer_geometry`.
    weights: per-example masks ``(B,)``; None means all ones.
    centered: subtract the weighted mean (Kreis (5.8)–(5.9)).
    homogeneous: append the constant 1 coordinate (K-FAC bias handling).
    diagonal: return only the diagonal, ``(m,)``.

  Returns:
    ``(m, m)`` (or ``(m,)``) factor in the dtype of ``inputs``.
  """
  rows = input_rows(inputs, geometry, homogeneous)
  w = _batch_weights(weights, rows.shape[0], rows.dtype)
  count = jnp.maximum(jnp.sum(w), 1.0) * rows.shape[1]
  weighted = rows * w[:, None, None]
  if diagonal:
    factor = jnp.einsum("bti,bti->i", weighted, rows) / count
  else:
    factor = jnp.einsum("bti,btj->ij", weighted, rows) / count
  if centered:
    mean = jnp.sum(weighted, axis=(0, 1)) / count
    factor = factor - (mean * mean if diagonal else jnp.outer(mean, mean))
  return factor


def output_factor(cotangents: Array, weights: Array | None = None, *,
                  sampled: bool = False, centered: bool = False,
                  scale: float = 1.0, diagonal: bool = False) -> Array:
  """``G = (N/S) Σ_{s,n,t} g g ᵀ · scale``: second moment of per-example gradients.

  Args:
    cotangents: cotangents of the batch mean loss w.r.t. the pre-activation,
      ``(B, …, n)``; with ``sampled`` a leading axis of S Monte-Carlo samples.
    weights: per-example masks ``(B,)``; N = Σ w (None: N = B).
    sampled: ``cotangents`` carries the leading sample axis.
    centered: subtract the per-sample mean gradient (Kreis (5.12)–(5.13)).
    scale: extra factor on G, e.g. the output dimension D for BackPACK's
      convention with a torch-style mean squared error (spec P11).
    diagonal: return only the diagonal.

  Returns:
    ``(n, n)`` (or ``(n,)``) factor.
  """
  g = cotangents if sampled else cotangents[None]
  samples, batch = g.shape[0], g.shape[1]
  g = g.reshape(samples, batch, -1, g.shape[-1])
  positions = g.shape[2]
  n_eff = jnp.maximum(jnp.sum(_batch_weights(weights, batch, g.dtype)), 1.0)
  coef = n_eff * scale / samples
  if diagonal:
    factor = coef * jnp.einsum("sbti,sbti->i", g, g)
  else:
    factor = coef * jnp.einsum("sbti,sbtj->ij", g, g)
  if centered:
    total = jnp.sum(g, axis=(1, 2))  # (S, n) = T·μ_s/N per sample
    if diagonal:
      mean_term = jnp.einsum("si,si->i", total, total)
    else:
      mean_term = jnp.einsum("si,sj->ij", total, total)
    # Σ_s T μ_s μ_sᵀ with μ_s = total_s / T, averaged over samples.
    factor = factor - (scale / samples / positions) * mean_term
  return factor


def cotangents_for(stats, fisher: str):
  """The cotangents that define G: model-sampled (Fisher) or true labels.

  Returns ``(cotangents, sampled)``; raises :class:`FactorError` when the
  Fisher is asked for but ``capture`` drew no samples.
  """
  if fisher == "empirical":
    return stats.cotangents, False
  if stats.sampled_cotangents is None:
    raise FactorError(
        "fisher='sampled' needs model-sampled cotangents: call capture(..., "
        "fisher_samples=1, rng=key) or use CaptureSpec(stats=True, "
        "fisher_samples=1); or choose fisher='empirical' (true labels)")
  return stats.sampled_cotangents, True
