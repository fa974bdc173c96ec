"""One forward pass and one VJP returning loss, gradients and layer statistics.

For every tagged layer (:class:`nnopt.models.Dense`, :class:`nnopt.models.Conv`)
`capture` returns the layer's input ``a`` and the cotangent ``g`` of the batch
loss with respect to the layer's pre-activation output. For a Dense layer the
weight gradient is then

.. math::  \\nabla_W \\hat f = \\sum_n a_n \\otimes g_n   (Kreis (2.28)),

and for a convolution the same with ``a_n`` replaced by the patches of the
input at every output location. Because ``g`` is the cotangent of the *mean*
loss, ``B · g_n`` is the gradient of example n's own loss (for a weighted mean
with weights w: ``(Σw / w_n) · g_n``).

With ``fisher_samples = S > 0`` the same VJP is pulled back S more times with
targets sampled from the model's predictive distribution, giving the
cotangents of a Monte-Carlo Fisher estimate (true labels give the empirical
Fisher). All of this is explicit: no jaxpr graph matching.

:func:`layer_info` returns the geometry that every tagged layer records
(:class:`~nnopt.models.layers.LayerInfo`); :mod:`nnopt.stats.geometry` turns
it into conv patches (or infers it from the statistics' shapes), and
:func:`layer_gradients` rebuilds a layer's gradient from its statistics.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.losses import Loss
from nnopt.models.apply import apply_model
from nnopt.models.layers import (INPUTS_COLLECTION, PERTURBATIONS_COLLECTION,
                                 LayerInfo, record_layers)
from nnopt.stats.geometry import conv_patches
from nnopt.stats.layer_keys import by_layer

Array = jax.Array


class LayerStats(NamedTuple):
  """Statistics of one tagged layer for one batch.

  Attributes:
    inputs: layer inputs, ``(B, d_in)`` for Dense, ``(B, H, W, C_in)`` for Conv.
    cotangents: cotangents of the batch loss w.r.t. the pre-activation output,
      ``(B, d_out)`` or ``(B, H', W', C_out)``.
    sampled_cotangents: ``(S, B, …)`` cotangents with targets sampled from the
      model (Fisher), or None.
  """

  inputs: Array
  cotangents: Array
  sampled_cotangents: Array | None = None


class Captured(NamedTuple):
  """What :func:`capture` returns.

  Attributes:
    loss: batch loss (weighted mean over examples).
    grads: gradient of ``loss`` w.r.t. the parameters.
    stats: ``{layer path: LayerStats}``; paths are ``'/'``-joined parameter
      keys, e.g. ``'dense_0'`` or ``'block_1/inner'``.
    outputs: model outputs (logits, predictions).
    model_state: the model's non-parameter collections after this pass
      (batch norm's running averages updated in training mode), or ``{}``.
  """

  loss: Array
  grads: Any
  stats: dict[str, LayerStats]
  outputs: Array
  model_state: Any = None


def _zero_perturbations(model: nn.Module, params, inputs, **apply_kwargs):
  def shapes(p, x):
    return apply_model(model, p, x, mutable=[PERTURBATIONS_COLLECTION],
                       **apply_kwargs)[2][PERTURBATIONS_COLLECTION]

  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                      jax.eval_shape(shapes, params, inputs))


def _by_layer(tree) -> dict[str, Array]:
  """``{layer path: value}`` of a collection with one value per layer."""
  return {name: next(iter(leaves.values()))
          for name, leaves in by_layer(tree).items()}


def capture(model: nn.Module, params, inputs: Array, targets: Array,
            loss: Loss, *, weights: Array | None = None,
            fisher_samples: int = 0, rng: Array | None = None,
            with_stats: bool = True, model_state: dict[str, Any] | None = None,
            train: bool = False, dropout_rng: Array | None = None
            ) -> Captured:
  """Loss, gradients and per-layer statistics from one forward and one VJP.

  Args:
    model: a flax module whose parametric layers are nnopt's Dense/Conv.
    params: its ``'params'`` collection.
    inputs: a batch of inputs.
    targets: the batch's targets (labels, or regression targets).
    loss: an :class:`nnopt.losses.Loss`.
    weights: optional per-example weights (mask of a padded batch).
    fisher_samples: number S of target samples drawn from the model's
      predictive distribution; their cotangents land in
      ``LayerStats.sampled_cotangents``.
    rng: PRNG key, needed when ``fisher_samples > 0``.
    with_stats: if False, only loss and gradients (a plain value_and_grad).
    model_state: the model's non-parameter collections (batch norm).
    train: run the model in training mode (models with a ``train`` argument:
      batch statistics, dropout); see :func:`nnopt.models.apply_model`.
    dropout_rng: key of the ``'dropout'`` stream in training mode.

  Returns:
    A :class:`Captured` ``(loss, grads, stats, outputs)``.
  """
  if fisher_samples and rng is None:
    raise ValueError("capture: fisher_samples > 0 needs an rng key")

  def batch_loss(outputs, t):
    return loss(outputs, t, weights)

  apply_kwargs = dict(model_state=model_state, train=train, rng=dropout_rng)
  if not with_stats:
    def loss_of_params(p):
      outputs, new_state, _ = apply_model(model, p, inputs, **apply_kwargs)
      return batch_loss(outputs, targets), (outputs, new_state)

    (value, (outputs, new_state)), grads = jax.value_and_grad(
        loss_of_params, has_aux=True)(params)
    return Captured(value, grads, {}, outputs, new_state)

  perturbations = _zero_perturbations(model, params, inputs, **apply_kwargs)

  def forward(p, eps):
    outputs, new_state, collected = apply_model(
        model, p, inputs, extra_variables={PERTURBATIONS_COLLECTION: eps},
        mutable=[INPUTS_COLLECTION], **apply_kwargs)
    return outputs, (collected[INPUTS_COLLECTION], new_state)

  outputs, pullback, (layer_inputs, new_state) = jax.vjp(
      forward, params, perturbations, has_aux=True)
  value, output_cotangent = jax.value_and_grad(batch_loss)(outputs, targets)
  grads, cotangents = pullback(output_cotangent)

  sampled = None
  if fisher_samples:
    keys = jax.random.split(rng, fisher_samples)
    sampled_targets = jax.vmap(loss.sample_targets, (0, None))(keys, outputs)
    sampled_output_cots = jax.vmap(jax.grad(batch_loss), (None, 0))(
        outputs, sampled_targets)
    sampled = _by_layer(jax.vmap(lambda c: pullback(c)[1])(sampled_output_cots))

  inputs_by_layer = _by_layer(layer_inputs)
  cots_by_layer = _by_layer(cotangents)
  stats = {
      name: LayerStats(inputs_by_layer[name], cots_by_layer[name],
                       None if sampled is None else sampled[name])
      for name in cots_by_layer
  }
  return Captured(value, grads, stats, outputs, new_state)


def layer_info(model: nn.Module, params, inputs: Array,
               model_state: dict[str, Any] | None = None
               ) -> dict[str, LayerInfo]:
  """Static description of every tagged layer, keyed like ``Captured.stats``.

  Traces the model abstractly (no FLOPs), so it is cheap and works inside jit.
  Models with batch norm need their ``model_state``.
  """
  with record_layers() as registry:
    jax.eval_shape(
        lambda p, x: apply_model(model, p, x, model_state=model_state)[0],
        params, inputs)
  return dict(registry)


def layer_gradients(stats: LayerStats, info: LayerInfo) -> dict[str, Array]:
  """Kernel (and bias) gradient of one layer rebuilt from its statistics.

  ``Σ_n a_n ⊗ g_n`` (Dense) or ``Σ_{n,p} patch_{n,p} ⊗ g_{n,p}`` (Conv).
  """
  g = stats.cotangents
  if info.kind == "conv":
    a = conv_patches(stats.inputs, info)
    a = a.reshape(-1, a.shape[-1])
    g = g.reshape(-1, g.shape[-1])
    grads = {"kernel": (a.T @ g).reshape(info.kernel_shape)}
  else:
    a = stats.inputs.reshape(-1, stats.inputs.shape[-1])
    g = g.reshape(-1, g.shape[-1])
    grads = {"kernel": a.T @ g}
  if info.use_bias:
    grads["bias"] = jnp.sum(g, axis=0)
  return grads
