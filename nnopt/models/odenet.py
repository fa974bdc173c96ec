"""ODE-ResNet of the MLSGD thesis (§2.2, §4.1; Ruthotto–Haber style).

Input → opening 3×3 conv (bias) → norm → ReLU → residual block 1 → connecting
layer (1×1 conv, norm, ReLU, 2×2 average pool) → block 2 → connecting layer →
block 3 → flatten (H, W, C) → fully connected. Each residual block integrates
``X' = -Kᵀ σ(N(K X))`` with n explicit Euler steps of size h:

.. math::  x_{j+1} = x_j - h\\, K_j^\\top σ(N(K_j x_j)),

where K_j is a bias-free same-padded convolution (3×3, or 2×2 padded at the
bottom/right), K_jᵀ its exact adjoint (``jax.linear_transpose``), σ = ReLU and
N the pixel-wise total-variation normalization ``z / sqrt(Σ_c z_c² + ε)``
followed by a learnable per-channel scale and shift (2c parameters per layer,
spec-mlsgd §3.1). The residual parameters of a block are stacked along a
leading layer axis and the block runs as one ``lax.scan``, so depth transfers
are array ops on that axis.

Parameter counts (spec-mlsgd §8.1): channels (16, 32, 64) with 8/4/2 layers
per block give 433162 / 238730 / 141514; channels (32, 64, 112) with 3 layers
give 560570 (3×3 basis kernels, 32×32) and 241850 (2×2 kernels, 16×16).

Deviations, because nnopt's engine applies models as pure functions of
``params``: the opening/connecting normalization is batch normalization with
the current batch's statistics in training *and* evaluation (no running
averages), ``connect_norm='tv'`` makes it per-example; Glorot-*uniform* init
(same variance as the thesis's Glorot-normal). The stacked residual layers are
not tagged layers, so :func:`nnopt.stats.capture.capture` reports statistics for the
opening, connecting and output layers only.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.models.kernels import avg_pool2, basis_kernel
from nnopt.models.layers import Conv, Dense, activation

Array = jax.Array


def tv_normalize(z: Array, eps: float) -> Array:
  """Pixel-wise normalization over channels, ``z / sqrt(Σ_c z_c² + ε)``."""
  return z * jax.lax.rsqrt(jnp.sum(z * z, axis=-1, keepdims=True) + eps)


def same_conv(x: Array, kernel: Array) -> Array:
  """Stride-1 'SAME' convolution; even kernels pad at the bottom/right."""
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


class BatchNormNoState(nn.Module):
  """Batch normalization with the current batch's statistics (scale, bias)."""

  eps: float = 1e-5

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    mean = jnp.mean(x, axis=tuple(range(x.ndim - 1)))
    var = jnp.var(x, axis=tuple(range(x.ndim - 1)))
    y = (x - mean) * jax.lax.rsqrt(var + self.eps)
    return y * self.param("scale", nn.initializers.ones, (c,)) + self.param(
        "bias", nn.initializers.zeros, (c,))


class TVNorm(nn.Module):
  """Per-example TV normalization with scale and bias (the 'tv' connect norm)."""

  eps: float = 1e-3

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    return tv_normalize(x, self.eps) * self.param(
        "scale", nn.initializers.ones, (c,)) + self.param(
            "bias", nn.initializers.zeros, (c,))


class SymmetricResidualStack(nn.Module):
  """n symmetric residual layers with parameters stacked on axis 0.

  Attributes:
    n_layers: number of residual layers n.
    h: Euler step.
    kernel_size: 3 or 2.
    parametrization: ``'standard'`` (``kernel`` (n, k, k, c, c)) or
      ``'mlsgd_basis'`` (``a`` (n, 5, c, c), ``b`` (n, 2, 2, c, c), 3×3 only).
    tv_eps: ε of the TV normalization.
    activation: σ.
  """

  n_layers: int
  h: float = 1.0
  kernel_size: int = 3
  parametrization: str = "standard"
  tv_eps: float = 1e-3
  activation: str = "relu"

  def kernels(self, c: int) -> Array:
    n, k = self.n_layers, self.kernel_size
    std = math.sqrt(2.0 / (2 * k * k * c))  # Glorot normal, fan_in = fan_out
    if self.parametrization == "standard":
      return self.param("kernel", nn.initializers.normal(std), (n, k, k, c, c))
    if self.parametrization == "mlsgd_basis":
      if k != 3:
        raise ValueError("the 'mlsgd_basis' parametrization is for 3x3 kernels")
      a = self.param("a", nn.initializers.normal(std), (n, 5, c, c))
      # b enters K as b/4 on four entries: 2·std keeps K's entry scale.
      b = self.param("b", nn.initializers.normal(2 * std), (n, 2, 2, c, c))
      return basis_kernel(a, b)
    raise ValueError(f"parametrization must be 'standard' or 'mlsgd_basis', "
                     f"got {self.parametrization!r}")

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.n_layers < 1:
      raise ValueError("a residual block needs at least one layer")
    c = x.shape[-1]
    kernels = self.kernels(c)
    scale = self.param("scale", nn.initializers.ones, (self.n_layers, c))
    shift = self.param("shift", nn.initializers.zeros, (self.n_layers, c))
    sigma = activation(self.activation)

    def layer(x, layer_params):
      kernel, s, t = layer_params
      conv = lambda u: same_conv(u, kernel)  # noqa: E731
      z = sigma(tv_normalize(conv(x), self.tv_eps) * s + t)
      adjoint = jax.linear_transpose(conv, x)
      return x - self.h * adjoint(z)[0], None

    x, _ = jax.lax.scan(layer, x, (kernels, scale, shift))
    return x


class ODEResNet(nn.Module):
  """The MLSGD thesis's CIFAR network (Fig. 4.1); see the module doc.

  Attributes:
    channels: (c1, c2, c3).
    layers_per_block: residual layers per block n.
    h: Euler step of the residual layers.
    res_kernel: residual kernel size (3, or 2 on the coarse resolution level).
    res_param: ``'standard'`` or ``'mlsgd_basis'``.
    open_kernel: opening convolution size.
    n_classes: outputs.
    input_pool: number of 2×2 average poolings applied to the input first
      (1 makes the coarse resolution level a model of the fine data).
    connect_norm: ``'batch'`` or ``'tv'``.
    tv_eps: ε of the TV normalization.
    init_scheme: init of the opening/connecting/output layers.
  """

  channels: tuple[int, ...] = (16, 32, 64)
  layers_per_block: int = 8
  h: float = 1.0
  res_kernel: int = 3
  res_param: str = "standard"
  open_kernel: int = 3
  n_classes: int = 10
  input_pool: int = 0
  connect_norm: str = "batch"
  tv_eps: float = 1e-3
  init_scheme: str = "glorot"

  def _norm(self, name: str) -> nn.Module:
    if self.connect_norm == "batch":
      return BatchNormNoState(name=name)
    if self.connect_norm == "tv":
      return TVNorm(self.tv_eps, name=name)
    raise ValueError(f"connect_norm must be 'batch' or 'tv', got "
                     f"{self.connect_norm!r}")

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for _ in range(self.input_pool):
      x = avg_pool2(x)
    k = self.open_kernel
    x = Conv(self.channels[0], (k, k), init_scheme=self.init_scheme,
             name="open_conv")(x)
    x = nn.relu(self._norm("open_norm")(x))
    for i, c in enumerate(self.channels):
      if i > 0:
        x = Conv(c, (1, 1), init_scheme=self.init_scheme,
                 name=f"connect_{i}_conv")(x)
        x = avg_pool2(nn.relu(self._norm(f"connect_{i}_norm")(x)))
      x = SymmetricResidualStack(
          self.layers_per_block, self.h, self.res_kernel, self.res_param,
          self.tv_eps, name=f"block_{i}")(x)
    x = x.reshape(x.shape[0], -1)
    return Dense(self.n_classes, init_scheme=self.init_scheme, name="fc")(x)


def residual_kernels(params) -> dict[str, Array]:
  """Effective (n, k, k, c, c) residual kernels of each block."""
  out = {}
  for name, block in params.items():
    if name.startswith("block"):
      out[name] = (block["kernel"] if "kernel" in block
                   else basis_kernel(block["a"], block["b"]))
  return out


def odenet_regularizer(params, l2: float = 2e-3, smooth: float = 2e-3) -> Array:
  """ℓ2 on non-bias weights + smoothness in depth (spec-mlsgd §3.3 defaults).

  ``l2 Σ ‖W‖²`` over conv kernels (effective residual kernels) and the fc
  matrix, plus ``smooth Σ_i ‖K_{i+1} − K_i‖_F²`` over consecutive residual
  layers of a block.
  """
  total = jnp.zeros(())
  kernels = residual_kernels(params)
  for name, value in params.items():
    if name in kernels:
      K = kernels[name]
      total += l2 * jnp.sum(K * K)
      total += smooth * jnp.sum((K[1:] - K[:-1]) ** 2)
    elif "kernel" in value:
      total += l2 * jnp.sum(value["kernel"] ** 2)
  return total
