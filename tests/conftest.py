"""Every test process sees 8 simulated CPU devices (set before JAX starts),
so that the engine's default mesh is really data parallel in the tests."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=wrong-import-position
import signal

import flax.linen as nn
import jax.numpy as jnp
import pytest

from nnopt.hooks import Hook


class SignalAt(Hook):
  """Sends ``signum`` (SIGINT by default) to this process after step ``at``:
  an interruption at a known step, as a user's Ctrl-C or a scheduler's
  SIGTERM."""

  def __init__(self, at: int, signum: int = signal.SIGINT):
    self.at, self.signum = at, int(signum)

  def on_step(self, run, metrics):
    del metrics
    if run.step == self.at:
      os.kill(os.getpid(), self.signum)


@pytest.fixture
def signal_at():
  """The :class:`SignalAt` hook class."""
  return SignalAt


class TinyResNet(nn.Module):
  """x_{j+1} = x_j + h tanh(x_j K_j): a depth hierarchy with stacked K_j."""

  layers: int
  h: float
  width: int = 4

  @nn.compact
  def __call__(self, x):
    x = jnp.tanh(nn.Dense(self.width, name="opening")(x))
    K = self.param("block", nn.initializers.normal(0.5),
                   (self.layers, self.width, self.width))
    for j in range(self.layers):
      x = x + self.h * jnp.tanh(x @ K[j])
    return nn.Dense(3, name="out")(x)


@pytest.fixture(scope="session")
def tiny_resnet():
  """:class:`TinyResNet`, a residual net whose depth hierarchy the MLSGD
  tests coarsen (models of 1, 2 and 4 layers with h = 1/layers)."""
  return TinyResNet
