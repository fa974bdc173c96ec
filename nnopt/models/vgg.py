"""VGG-style CNN of SensLI (Kreis (2.11), spec-sensli §1.3)."""

from __future__ import annotations

import flax.linen as nn
import jax

from nnopt.models.layers import Conv, Dense, activation


class VGG(nn.Module):
  """Conv stages (3×3 convs, padding 1, each followed by σ) with 2×2 max-pool
  after every stage, then fully connected layers; the last has no bias.

  The reference CIFAR-10 net is ``VGG(stages=((64,), (128,), (256,)),
  fc=(500, 500), n_classes=10)``: 2 674 816 parameters (Table 4.3). The
  thesis says the FC widths halve; the reference code does not (pitfall P15):
  give ``fc`` explicitly for either.

  Attributes:
    stages: output channels of the convs of each stage; inserting a layer
      appends a channel count to a stage.
    fc: hidden widths of the fully connected part.
    n_classes: number of logits.
    activation: σ.
    init_scheme: initialization scheme.
    conv_names: stable names per stage (default ``conv_{stage}_{j}``).
  """

  stages: tuple[tuple[int, ...], ...] = ((64,), (128,), (256,))
  fc: tuple[int, ...] = (500, 500)
  n_classes: int = 10
  activation: str = "relu"
  init_scheme: str = "lecun"
  conv_names: tuple[tuple[str, ...], ...] | None = None

  def names(self) -> tuple[tuple[str, ...], ...]:
    if self.conv_names is None:
      return tuple(tuple(f"conv_{s}_{j}" for j in range(len(stage)))
                   for s, stage in enumerate(self.stages))
    if tuple(map(len, self.conv_names)) != tuple(map(len, self.stages)):
      raise ValueError("VGG conv_names must have the shape of stages")
    return tuple(tuple(n) for n in self.conv_names)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = activation(self.activation)
    for stage, names in zip(self.stages, self.names()):
      for channels, name in zip(stage, names):
        x = act(Conv(channels, init_scheme=self.init_scheme, name=name)(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.fc):
      x = act(Dense(width, init_scheme=self.init_scheme, name=f"fc_{i}")(x))
    return Dense(self.n_classes, use_bias=False, init_scheme=self.init_scheme,
                 name=f"fc_{len(self.fc)}")(x)
