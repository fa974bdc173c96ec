"""Max pooling whose derivative is cheap on CPU, equal to ``flax.linen.max_pool``.

``nn.max_pool`` is ``lax.reduce_window``; its reverse-mode derivative is
XLA's ``select_and_scatter_add``, which on CPU costs more than the convolutions
around it (the 3×3/2 pools of Balles' P1 network made its training step 2×
slower). :func:`max_pool` has the same forward pass and a JVP written as
``k`` strided slices of the padded input (``k`` the window size): the tangent
of each output is the tangent of the FIRST maximal element of its window in
row-major window order, exactly the element that ``reduce_window``'s
gradient selects. JAX transposes that JVP into pads with interior padding and
adds, which XLA fuses. Outputs and gradients are bitwise those of
``nn.max_pool``, ties included (tests/models/test_models_pooling.py); JVPs are
too where a window has no tie (on ties in overlapping windows, XLA's CPU JVP
of ``reduce_window`` picks another element than its own gradient; here the
JVP is the gradient's transpose). Differentiable in both modes and to higher
order.
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Padding = str | Sequence[tuple[int, int]]


def _pads(shape, window, strides, padding) -> tuple[tuple[int, int], ...]:
  if isinstance(padding, str):
    return tuple(lax.padtype_to_pads(shape, window, strides, padding))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _reduce_max(x: Array, window, strides, pads) -> Array:
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1),
                           (1, *strides, 1), ((0, 0), *pads, (0, 0)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _max_pool(x: Array, window: tuple[int, ...], strides: tuple[int, ...],
              pads: tuple[tuple[int, int], ...]) -> Array:
  return _reduce_max(x, window, strides, pads)


@_max_pool.defjvp
def _max_pool_jvp(window, strides, pads, primals, tangents):
  (x,), (t,) = primals, tangents
  y = _reduce_max(x, window, strides, pads)
  config = ((0, 0), *pads, (0, 0))
  x_pad = jnp.pad(x, config, constant_values=-jnp.inf)
  t_pad = jnp.pad(t, config)
  taken = jnp.zeros(y.shape, bool)
  t_out = jnp.zeros(y.shape, t.dtype)
  zero = jnp.zeros((), t.dtype)
  # Window offsets in row-major order; an offset's slice holds, for every
  # output, the input at that offset of its window.
  for offset in itertools.product(*(range(w) for w in window)):
    start = (0, *offset, 0)
    limit = (x.shape[0], *(o + s * (n - 1) + 1 for o, s, n in
                           zip(offset, strides, y.shape[1:-1])), x.shape[-1])
    step = (1, *strides, 1)
    first = (lax.slice(x_pad, start, limit, step) == y) & ~taken
    taken = taken | first
    t_out = t_out + jnp.where(first, lax.slice(t_pad, start, limit, step),
                              zero)
  return y, t_out


def max_pool(inputs: Array, window_shape: Sequence[int],
             strides: Sequence[int] | None = None,
             padding: Padding = "VALID") -> Array:
  """Max pooling over the spatial axes of ``(N, *spatial, C)`` inputs.

  Same arguments and result as ``flax.linen.max_pool`` (padding counts as
  −∞), with the cheaper derivative described in the module doc.

  Args:
    inputs: floating-point array ``(N, *spatial, C)``.
    window_shape: window size per spatial axis.
    strides: stride per spatial axis (default 1).
    padding: ``'SAME'``, ``'VALID'`` or a ``(low, high)`` pair per spatial
      axis.

  Returns:
    The pooled array ``(N, *spatial_out, C)``.
  """
  window = tuple(int(w) for w in window_shape)
  strides = (1,) * len(window) if strides is None else tuple(
      int(s) for s in strides)
  if inputs.ndim != len(window) + 2 or len(strides) != len(window):
    raise ValueError(f"max_pool: inputs of shape {inputs.shape} need "
                     f"{inputs.ndim - 2} window sizes and strides, got "
                     f"{window} and {strides}")
  if not jnp.issubdtype(inputs.dtype, jnp.floating):
    raise ValueError(f"max_pool: needs floating-point inputs, got "
                     f"{inputs.dtype}")
  pads = _pads(inputs.shape[1:-1], window, strides, padding)
  return _max_pool(inputs, window, strides, pads)
