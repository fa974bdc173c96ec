"""Every test process sees 8 simulated CPU devices (set before JAX starts),
so that the engine's default mesh is really data parallel in the tests."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=wrong-import-position
import signal

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
