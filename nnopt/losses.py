"""Losses with a per-example form and a model-predictive sampler.

A :class:`Loss` knows its per-example value and how to draw targets from the
model's predictive distribution (for Monte-Carlo Fisher estimates, Kreis
§5 / Balles ch. 7). Batch losses are (weighted) means over examples; weights
are the masks of padded batches.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


class Loss(NamedTuple):
  """A loss ``ℓ(outputs, targets)`` per example.

  Attributes:
    name: registry name.
    per_example: ``(outputs, targets) -> (B,)`` losses. For sequence
      outputs ``(B, T, …)`` an example's loss is the mean over its T
      positions (a character LM's per-token cross-entropy), so that the
      batch loss is the mean over all tokens.
    sample_targets: ``(key, outputs) -> targets`` drawn from the predictive
      distribution p(y | outputs) whose negative log-likelihood is the loss
      (up to constants).
    is_classification: whether accuracy is meaningful.
  """

  name: str
  per_example: Callable[[Array, Array], Array]
  sample_targets: Callable[[Array, Array], Array]
  is_classification: bool

  def __call__(self, outputs: Array, targets: Array,
               weights: Array | None = None) -> Array:
    """Batch loss: the mean (or ``weights``-weighted mean) over examples."""
    return weighted_mean(self.per_example(outputs, targets), weights)


def weighted_mean(values: Array, weights: Array | None) -> Array:
  if weights is None:
    return jnp.mean(values)
  weights = weights.astype(values.dtype)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _per_example_mean(values: Array) -> Array:
  """Reduces per-position values ``(B, T, …)`` to per-example ``(B,)``."""
  if values.ndim <= 1:
    return values
  return jnp.mean(values.reshape(values.shape[0], -1), axis=-1)


def _cross_entropy(logits: Array, targets: Array) -> Array:
  if targets.ndim == logits.ndim:
    values = optax.softmax_cross_entropy(logits, targets)
  else:
    values = optax.softmax_cross_entropy_with_integer_labels(
        logits, targets.astype(jnp.int32))
  return _per_example_mean(values)


def _sample_categorical(key: Array, logits: Array) -> Array:
  return jax.random.categorical(key, jax.lax.stop_gradient(logits), axis=-1)


def _squared_error(outputs: Array, targets: Array) -> Array:
  diff = (outputs - targets).reshape(outputs.shape[0], -1)
  return 0.5 * jnp.sum(diff * diff, axis=-1)


def _sample_gaussian(key: Array, outputs: Array) -> Array:
  mean = jax.lax.stop_gradient(outputs)
  return mean + jax.random.normal(key, mean.shape, mean.dtype)


softmax_cross_entropy = Loss(
    "softmax_cross_entropy", _cross_entropy, _sample_categorical, True)
"""``-log softmax(y)_label``; targets are integer labels or probabilities."""

squared_error = Loss("squared_error", _squared_error, _sample_gaussian, False)
"""``½‖y − t‖²`` per example; the predictive distribution is N(y, I)."""

LOSSES: dict[str, Loss] = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "cross_entropy": softmax_cross_entropy,
    "squared_error": squared_error,
    "mse": squared_error,
}


def get_loss(name: str) -> Loss:
  try:
    return LOSSES[name]
  except KeyError:
    raise ValueError(f"unknown loss {name!r}; known: "
                     f"{', '.join(sorted(LOSSES))}") from None


def accuracy(outputs: Array, targets: Array,
             weights: Array | None = None) -> Array:
  """Fraction of examples whose arg-max output equals the label (for
  sequences, the fraction of positions, averaged per example)."""
  labels = targets if targets.ndim < outputs.ndim else jnp.argmax(targets, -1)
  hits = (jnp.argmax(outputs, axis=-1) == labels).astype(jnp.float32)
  return weighted_mean(_per_example_mean(hits), weights)
