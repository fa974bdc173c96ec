"""The test problems of Balles ch. 4 (CABS) and ch. 5 (P1–P4), from nnopt's
tagged layers.

* :class:`ConvPoolNet` — conv → max-pool stacks, then fully connected layers,
  ReLU everywhere (spec §3.8, §4.7):

  ==================  =========================================================
  ``mnist_cabs``       conv5×5×32 → pool2/2 → conv5×5×64 → pool2/2 → FC1024 → 10
  ``svhn_cabs``        conv5×5×64 → pool3/2 → conv5×5×64 → pool3/2 → FC256 → FC128 → 10
  ``cifar10_cabs``     (24×24 input) as SVHN with FC384 → FC192 → 10
  ``cifar100_cabs``    three conv5×5×64 + pool3/2, FC512 → FC256 → 100
  ``p1_fmnist``        conv5×5×32 → pool3/2 → conv5×5×64 → pool3/2 → FC1024 → 10
  ``p2_cifar10_3c3d``  conv5×5×64 VALID → pool → conv3×3×96 VALID → pool →
                       conv3×3×128 SAME → pool → FC512 → FC256 → 10 (DeepOBS)
  ==================  =========================================================

* :class:`WideResNet` — P3, WRN-40-4 (Zagoruyko & Komodakis) with batch
  norm as in DeepOBS (``flax.linen.BatchNorm``, decay 0.9, ε = 1e-3): batch
  statistics in training, running averages (kept in the engine's
  ``TrainState.model_state['batch_stats']``) in evaluation. ``norm=
  'batch_stat'`` uses :class:`BatchStatNorm` instead (batch statistics in
  both modes). Per-example gradient variances are meaningless with batch
  norm (it couples the examples, spec §1.1); only the EMA estimators (M-SVAG,
  ADAM*) are used on P3, as in the thesis. Under data parallelism the batch
  statistics are those of the global batch (jit sees global arrays).
* :class:`CharLSTM` — P4, 2-layer LSTM with 128 units on a 128-d character
  embedding (DeepOBS ``tolstoi_char_rnn``), dropout with keep probability
  0.8 on the LSTM inputs and outputs in training; the output layer is a
  tagged Dense. Losses and accuracies are per character.

:data:`PRESETS` gives the option dicts; :data:`nnopt.models.MODELS` names
the networks ``'conv_pool_net'``, ``'wide_resnet'`` and ``'char_lstm'``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.models.layers import Conv, Dense, activation
from nnopt.models.pooling import max_pool

Array = jax.Array


class ConvPoolNet(nn.Module):
  """Conv/max-pool stacks and fully connected layers (ReLU, softmax head).

  Attributes:
    convs: ``(features, kernel, padding)`` per conv; each conv is followed by
      σ and a max-pool (:func:`nnopt.models.pooling.max_pool`: the values
      and derivatives of ``nn.max_pool``, at half the step time on CPU).
    pool: ``(window, stride)`` of the max-pools (padding SAME).
    fc: hidden widths of the fully connected part.
    n_classes: number of logits.
    activation: σ.
    init_scheme: initialization of the tagged layers.
  """

  convs: tuple[tuple[int, int, str], ...] = ((32, 5, "SAME"), (64, 5, "SAME"))
  pool: tuple[int, int] = (2, 2)
  fc: tuple[int, ...] = (1024,)
  n_classes: int = 10
  activation: str = "relu"
  init_scheme: str = "glorot"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    act = activation(self.activation)
    window, stride = self.pool
    for i, (features, kernel, padding) in enumerate(self.convs):
      x = act(Conv(features, (kernel, kernel), padding=padding,
                   init_scheme=self.init_scheme, name=f"conv_{i}")(x))
      x = max_pool(x, (window, window), strides=(stride, stride),
                   padding="SAME")
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.fc):
      x = act(Dense(width, init_scheme=self.init_scheme, name=f"fc_{i}")(x))
    return Dense(self.n_classes, init_scheme=self.init_scheme,
                 name=f"fc_{len(self.fc)}")(x)


class BatchStatNorm(nn.Module):
  """Normalization by the current batch's mean and variance per channel,
  then a learnable scale and shift (no running averages, see module doc)."""

  eps: float = 1e-5

  @nn.compact
  def __call__(self, x: Array) -> Array:
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes, keepdims=True)
    var = jnp.var(x, axes, keepdims=True)
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias


NORMS = ("batch_norm", "batch_stat")


class WideResNet(nn.Module):
  """Pre-activation wide ResNet WRN-depth-width (P3 is 40-4).

  Attributes:
    depth: 6n + 4 layers.
    width: widening factor k (channels 16k, 32k, 64k).
    n_classes: number of logits.
    norm: ``'batch_norm'`` (running averages for evaluation, DeepOBS) or
      ``'batch_stat'`` (batch statistics in both modes).
    bn_momentum: decay of batch norm's running averages.
  """

  depth: int = 40
  width: int = 4
  n_classes: int = 100
  norm: str = "batch_norm"
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    if (self.depth - 4) % 6:
      raise ValueError(f"WRN depth must be 6n+4, got {self.depth}")
    if self.norm not in NORMS:
      raise ValueError(f"WRN norm must be one of {NORMS}, got {self.norm!r}")

    def norm_layer(name):
      if self.norm == "batch_stat":
        return BatchStatNorm(name=name)
      return nn.BatchNorm(use_running_average=not train,
                          momentum=self.bn_momentum, epsilon=1e-3, name=name)

    n = (self.depth - 4) // 6
    x = Conv(16, (3, 3), use_bias=False, init_scheme="he", name="conv_in")(x)
    for stage, channels in enumerate((16 * self.width, 32 * self.width,
                                      64 * self.width)):
      for block in range(n):
        stride = 2 if stage > 0 and block == 0 else 1
        name = f"s{stage}_b{block}"
        h = jax.nn.relu(norm_layer(name=f"{name}_bn0")(x))
        shortcut = x
        if x.shape[-1] != channels or stride != 1:
          shortcut = Conv(channels, (1, 1), strides=(stride, stride),
                          use_bias=False, init_scheme="he",
                          name=f"{name}_proj")(h)
        h = Conv(channels, (3, 3), strides=(stride, stride), use_bias=False,
                 init_scheme="he", name=f"{name}_conv0")(h)
        h = jax.nn.relu(norm_layer(name=f"{name}_bn1")(h))
        h = Conv(channels, (3, 3), use_bias=False, init_scheme="he",
                 name=f"{name}_conv1")(h)
        x = shortcut + h
    x = jax.nn.relu(norm_layer(name="bn_out")(x))
    x = jnp.mean(x, axis=(1, 2))
    return Dense(self.n_classes, init_scheme="glorot", name="fc")(x)


class CharLSTM(nn.Module):
  """Character language model: embedding → LSTM layers → tagged Dense.

  Inputs are int token ids ``(B, T)``; outputs logits ``(B, T, vocab)``.

  Attributes:
    vocab: vocabulary size (83 for War and Peace).
    embed: embedding width.
    hidden: LSTM widths.
    dropout: drop probability on every LSTM's input and output in training
      (DeepOBS: keep-prob 0.8 in a DropoutWrapper around each cell).
  """

  vocab: int = 83
  embed: int = 128
  hidden: tuple[int, ...] = (128, 128)
  dropout: float = 0.2

  @nn.compact
  def __call__(self, tokens: Array, train: bool = False) -> Array:
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = nn.Embed(self.vocab, self.embed, name="embed")(tokens.astype(jnp.int32))
    for i, width in enumerate(self.hidden):
      # DeepOBS wraps every cell in a DropoutWrapper (input and output).
      x = drop(nn.RNN(nn.OptimizedLSTMCell(width), name=f"lstm_{i}")(drop(x)))
    return Dense(self.vocab, init_scheme="glorot", name="out")(x)


PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "mnist_cabs": ("conv_pool_net", dict(
        convs=((32, 5, "SAME"), (64, 5, "SAME")), pool=(2, 2), fc=(1024,),
        n_classes=10)),
    "svhn_cabs": ("conv_pool_net", dict(
        convs=((64, 5, "SAME"), (64, 5, "SAME")), pool=(3, 2), fc=(256, 128),
        n_classes=10)),
    "cifar10_cabs": ("conv_pool_net", dict(
        convs=((64, 5, "SAME"), (64, 5, "SAME")), pool=(3, 2), fc=(384, 192),
        n_classes=10)),
    "cifar100_cabs": ("conv_pool_net", dict(
        convs=((64, 5, "SAME"),) * 3, pool=(3, 2), fc=(512, 256),
        n_classes=100)),
    "p1_fmnist": ("conv_pool_net", dict(
        convs=((32, 5, "SAME"), (64, 5, "SAME")), pool=(3, 2), fc=(1024,),
        n_classes=10)),
    "p2_cifar10_3c3d": ("conv_pool_net", dict(
        convs=((64, 5, "VALID"), (96, 3, "VALID"), (128, 3, "SAME")),
        pool=(3, 2), fc=(512, 256), n_classes=10)),
    "p3_wrn404": ("wide_resnet", dict(depth=40, width=4, n_classes=100)),
    "p4_char_lstm": ("char_lstm", dict(vocab=83, embed=128, hidden=(128, 128),
                                      dropout=0.2)),
}

__all__ = ["BatchStatNorm", "CharLSTM", "ConvPoolNet", "PRESETS",
           "WideResNet"]
