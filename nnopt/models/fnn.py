"""Fully connected feed-forward network (Kreis (2.5)-(2.6))."""

from __future__ import annotations

import flax.linen as nn
import jax

from nnopt.models.layers import Dense, activation


class FNN(nn.Module):
  """``y_i = W_i x_{i-1} + b_i``, ``x_i = σ(y_i)``; the last layer is affine.

  Inputs of any shape are flattened per example.

  Attributes:
    widths: output width of every layer, the last one included, e.g.
      ``(100, 100, 100, 10)`` for 784-100-100-100-10.
    activation: hidden activation name (``'relu'``, ``'tanh'``, ``'sigmoid'``…).
    use_bias: bias on the hidden layers.
    out_bias: bias on the output layer ("in some scenarios" omitted).
    init_scheme: initialization scheme (``'pytorch'`` for the SensLI reference code).
    names: stable layer names (default ``dense_0 … dense_{L-1}``); growing a
      network inserts new names and keeps the old ones.
    out_activation: optional activation on the output (e.g. ``'sigmoid'`` for
      an autoencoder whose targets lie in [0, 1]).
  """

  widths: tuple[int, ...]
  activation: str = "relu"
  use_bias: bool = True
  out_bias: bool = True
  init_scheme: str = "lecun"
  names: tuple[str, ...] | None = None
  out_activation: str = "identity"

  def layer_names(self) -> tuple[str, ...]:
    if self.names is None:
      return tuple(f"dense_{i}" for i in range(len(self.widths)))
    if len(self.names) != len(self.widths):
      raise ValueError(f"FNN has {len(self.widths)} widths but "
                       f"{len(self.names)} names")
    return tuple(self.names)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    act = activation(self.activation)
    names = self.layer_names()
    last = len(self.widths) - 1
    for i, (width, name) in enumerate(zip(self.widths, names)):
      bias = self.out_bias if i == last else self.use_bias
      x = Dense(width, use_bias=bias, init_scheme=self.init_scheme, name=name)(x)
      if i < last:
        x = act(x)
    return activation(self.out_activation)(x)
