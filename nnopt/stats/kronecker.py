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

import jax
import jax.numpy as jnp

from nnopt.models.layers import LayerInfo
from nnopt.stats.geometry import conv_patches

Array = jax.Array


class FactorError(ValueError):
  """A layer's factors cannot be formed (shapes, size or missing statistics)."""


def input_rows(inputs: Array, info: LayerInfo,
               homogeneous: bool = False) -> Array:
  """Layer inputs as ``(B, T, m)`` rows (patches for a convolution).

  With ``homogeneous`` a constant 1 is appended to every row, the K-FAC
  treatment of a bias (``x̃ = [x; 1]``).
  """
  if info.kind == "conv":
    rows = conv_patches(inputs, info)
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


def input_factor(inputs: Array, info: LayerInfo,
                 weights: Array | None = None, *, centered: bool = False,
                 homogeneous: bool = False, diagonal: bool = False) -> Array:
  """``A = (1/(N T)) Σ_{n,t} w_n a_{n,t} a_{n,t}ᵀ`` (centered: minus ``ā āᵀ``).

  Args:
    inputs: the layer's captured inputs, ``(B, m)`` or ``(B, H, W, C_in)``.
    info: the layer's geometry (:func:`nnopt.stats.capture.layer_info` or
      :func:`nnopt.stats.geometry.infer_layer_info`).
    weights: per-example masks ``(B,)``; None means all ones.
    centered: subtract the weighted mean (Kreis (5.8)–(5.9)).
    homogeneous: append the constant 1 coordinate (K-FAC bias handling).
    diagonal: return only the diagonal, ``(m,)``.

  Returns:
    ``(m, m)`` (or ``(m,)``) factor in the dtype of ``inputs``.
  """
  rows = input_rows(inputs, info, homogeneous)
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
        "fisher_samples=needs.fisher_samples, rng=key) with needs = "
        "nnopt.required_needs(optimizer, params) (the engine does), or choose "
        "fisher='empirical' (true labels)")
  return stats.sampled_cotangents, True
