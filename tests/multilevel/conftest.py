"""Shared fixture of the multilevel tests: cheap initial parameters.

On XLA:CPU, compiling jax's counter-based RNG for ``model.init`` of an
ODE-ResNet costs seconds (eager or jitted); these tests only need a generic
point of the right shapes, so they draw it with numpy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def numpy_init(model, x, seed: int = 0):
  """``model.init(...)['params']`` shapes, values N(0, 1/fan_in) from numpy
  (fan_in: the product of all but the last axis; 0.1·N(0, 1) for vectors)."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]
  rng = np.random.default_rng(seed)

  def leaf(s):
    scale = 0.1 if len(s.shape) < 2 else 1 / np.sqrt(np.prod(s.shape[:-1]))
    return jnp.asarray(scale * rng.normal(size=s.shape), s.dtype)

  return jax.tree.map(leaf, shapes)


@pytest.fixture(scope="session")
def numpy_params():
  """:func:`numpy_init` as a fixture."""
  return numpy_init
