"""Tagged parametric layers: the only layers whose statistics `capture` sees.

`Dense` and `Conv` behave like their flax counterparts and add two hooks:

* the layer input is *sown* into the ``layer_inputs`` collection (a no-op unless
  that collection is mutable), and
* the pre-activation output goes through ``self.perturb('preact', y)``, so the
  gradient with respect to the zero perturbation is the output cotangent.

While a :func:`nnopt.stats.capture.capture` call traces the model, each layer also
records its static description (:class:`LayerInfo`) so that the statistics can
be interpreted (e.g. which patches a convolution uses) without graph matching.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

INPUTS_COLLECTION = "layer_inputs"
PERTURBATIONS_COLLECTION = "perturbations"
_PREACT = "preact"
_INPUT = "inputs"


@dataclasses.dataclass(frozen=True)
class LayerInfo:
  """Static geometry of a tagged layer, keyed by its path ``'a/b'``.

  The one description of a Dense or Conv layer that the statistics layer
  reads (patches, Kronecker factors, per-example moments). Tagged layers
  record it while traced (:func:`nnopt.stats.capture.layer_info`);
  :func:`nnopt.stats.geometry.infer_layer_info` infers it from shapes.

  Attributes:
    kind: ``'dense'`` or ``'conv'``.
    use_bias: whether the layer has a bias.
    kernel_shape: ``(m, n)`` (Dense) or ``(kh, kw, c_in, c_out)`` (Conv, HWIO).
    strides: convolution strides (``()`` for Dense).
    padding: convolution padding, ``'SAME'``, ``'VALID'`` or explicit
      ``((lo, hi), (lo, hi))`` (None for Dense).
  """

  kind: str
  use_bias: bool
  kernel_shape: tuple[int, ...]
  strides: tuple[int, ...] = ()
  padding: Any = None

  @property
  def in_dim(self) -> int:
    """Rows of the kernel as a matrix: ``m``, or ``kh·kw·c_in``."""
    return math.prod(self.kernel_shape[:-1])

  @property
  def out_dim(self) -> int:
    """Columns of the kernel as a matrix: ``n``, or ``c_out``."""
    return self.kernel_shape[-1]


_RECORDER: contextvars.ContextVar[dict[str, LayerInfo] | None] = (
    contextvars.ContextVar("nnopt_layer_recorder", default=None))


@contextlib.contextmanager
def record_layers() -> Iterator[dict[str, LayerInfo]]:
  """Collects the :class:`LayerInfo` of every tagged layer called inside."""
  registry: dict[str, LayerInfo] = {}
  token = _RECORDER.set(registry)
  try:
    yield registry
  finally:
    _RECORDER.reset(token)


def layer_path(module: nn.Module) -> str:
  return "/".join(module.scope.path)


def _record(module: nn.Module, info: LayerInfo) -> None:
  registry = _RECORDER.get()
  if registry is not None:
    registry[layer_path(module)] = info


def pytorch_kernel_init(key, shape, dtype=jnp.float32):
  """PyTorch's default weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  fan_in = math.prod(shape[:-1])
  bound = 1.0 / math.sqrt(fan_in)
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _pytorch_bias_init(fan_in: int) -> Callable[..., Array]:
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def initializers(scheme: str, fan_in: int):
  """Returns ``(kernel_init, bias_init)`` for an init scheme name.

  Args:
    scheme: ``'lecun'`` (flax default: LeCun normal, zero bias), ``'pytorch'``
      (PyTorch default for Linear/Conv2d: both uniform in
      ±1/sqrt(fan_in)), ``'glorot'`` (Glorot uniform, zero bias) or ``'he'``
      (He normal, zero bias).
    fan_in: number of inputs of one output unit.
  """
  if scheme == "lecun":
    return nn.initializers.lecun_normal(), nn.initializers.zeros
  if scheme == "pytorch":
    return pytorch_kernel_init, _pytorch_bias_init(fan_in)
  if scheme == "glorot":
    return nn.initializers.glorot_uniform(), nn.initializers.zeros
  if scheme == "he":
    return nn.initializers.he_normal(), nn.initializers.zeros
  raise ValueError(
      f"unknown init scheme {scheme!r}; use one of 'lecun', 'pytorch', "
      "'glorot', 'he'")


INIT_SCHEMES = ("lecun", "pytorch", "glorot", "he")


class Dense(nn.Module):
  """Affine layer ``y = x W + b`` (flax layout: kernel is (in, out) = Wᵀ).

  Attributes:
    features: output width.
    use_bias: whether to add a bias.
    init_scheme: initialization scheme, see :func:`initializers`.
  """

  features: int
  use_bias: bool = True
  init_scheme: str = "lecun"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    fan_in = x.shape[-1]
    kernel_init, bias_init = initializers(self.init_scheme, fan_in)
    self.sow(INPUTS_COLLECTION, _INPUT, x, init_fn=lambda: None,
             reduce_fn=lambda _, new: new)
    kernel = self.param("kernel", kernel_init, (fan_in, self.features))
    y = jnp.dot(x, kernel)
    if self.use_bias:
      y = y + self.param("bias", bias_init, (self.features,))
    _record(self, LayerInfo("dense", self.use_bias, (fan_in, self.features)))
    return self.perturb(_PREACT, y)


class Conv(nn.Module):
  """2-D convolution in NHWC with HWIO kernels, padding 'SAME' by default.

  Attributes:
    features: output channels.
    kernel_size: spatial kernel size.
    strides: spatial strides.
    padding: 'SAME', 'VALID' or explicit ``((lo, hi), (lo, hi))``.
    use_bias: per-channel bias.
    init_scheme: initialization scheme, see :func:`initializers`.
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: Any = "SAME"
  use_bias: bool = True
  init_scheme: str = "lecun"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    in_channels = x.shape[-1]
    kernel_shape = (*self.kernel_size, in_channels, self.features)
    kernel_init, bias_init = initializers(self.init_scheme, math.prod(kernel_shape[:-1]))
    self.sow(INPUTS_COLLECTION, _INPUT, x, init_fn=lambda: None,
             reduce_fn=lambda _, new: new)
    kernel = self.param("kernel", kernel_init, kernel_shape)
    padding = self.padding
    if not isinstance(padding, str):
      padding = tuple(tuple(p) for p in padding)
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=tuple(self.strides), padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", bias_init, (self.features,))
    _record(self, LayerInfo("conv", self.use_bias, kernel_shape,
                            tuple(self.strides), padding))
    return self.perturb(_PREACT, y)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "identity": lambda x: x,
}


def activation(name: str) -> Callable[[Array], Array]:
  """Looks up an activation by name (names keep architectures hashable)."""
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"unknown activation {name!r}; known: "
                     f"{', '.join(sorted(ACTIVATIONS))}") from None
