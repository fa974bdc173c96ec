"""Two-weight residual network of SensLI (Kreis (2.10), spec-sensli §1.2)."""

from __future__ import annotations

import flax.linen as nn
import jax

from nnopt.models.layers import Dense, activation


class ResBlock(nn.Module):
  """``x + h · W2 σ(W1 x + b)``; ``W2`` carries no bias.

  Attributes:
    width: constant width of the residual stream.
    activation: σ.
    h: step size (absorbed into ``W2`` by the thesis; 1.0 there).
    init_scheme: initialization scheme.
  """

  width: int
  activation: str = "tanh"
  h: float = 1.0
  init_scheme: str = "lecun"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    inner = Dense(self.width, use_bias=True, init_scheme=self.init_scheme, name="inner")(x)
    outer = Dense(self.width, use_bias=False, init_scheme=self.init_scheme,
                  name="outer")(activation(self.activation)(inner))
    return x + self.h * outer


class ResNet(nn.Module):
  """Two-weight ResNet ``x_1 = W_1 x_0``, residual blocks, ``x_{L+1} = W_{L+1} x_L``.

  Attributes:
    width: residual-stream width.
    n_blocks: number of residual blocks (L - 1 in the thesis).
    n_outputs: output dimension.
    activation: σ inside the blocks (tanh in every SensLI ResNet run).
    form: ``'thesis'`` (first and last layer without bias, no activation
      after the first layer, eq. (2.10)) or ``'reference'`` (the authors'
      `two_weight_resnet`: bias and activation after the first layer, bias on
      the last); see spec-sensli pitfall P4.
    h: block step size.
    init_scheme: initialization scheme.
    block_names: stable names of the blocks (default ``block_0…``).
  """

  width: int
  n_blocks: int
  n_outputs: int
  activation: str = "tanh"
  form: str = "thesis"
  h: float = 1.0
  init_scheme: str = "lecun"
  block_names: tuple[str, ...] | None = None

  def names(self) -> tuple[str, ...]:
    if self.block_names is None:
      return tuple(f"block_{i}" for i in range(self.n_blocks))
    if len(self.block_names) != self.n_blocks:
      raise ValueError(f"ResNet has {self.n_blocks} blocks but "
                       f"{len(self.block_names)} block names")
    return tuple(self.block_names)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.form not in ("thesis", "reference"):
      raise ValueError(f"ResNet form must be 'thesis' or 'reference', "
                       f"got {self.form!r}")
    reference = self.form == "reference"
    x = x.reshape(x.shape[0], -1)
    x = Dense(self.width, use_bias=reference, init_scheme=self.init_scheme, name="first")(x)
    if reference:
      x = activation(self.activation)(x)
    for name in self.names():
      x = ResBlock(self.width, self.activation, self.h, self.init_scheme, name=name)(x)
    return Dense(self.n_outputs, use_bias=reference, init_scheme=self.init_scheme,
                 name="last")(x)
