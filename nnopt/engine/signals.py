"""Stopping a run on SIGINT / SIGTERM at a step boundary.

While :meth:`nnopt.engine.trainer.Trainer.fit` runs (in the main thread of a
single-process run), the first SIGINT or SIGTERM only sets a flag: the loop
finishes the current step, saves a checkpoint at that step when checkpointing
is on, and raises :class:`Interrupted`. A second signal stops at once. A
scheduler's SIGTERM (preemption) or a Ctrl-C so costs no more than the step in
flight.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
  """A run stopped on a signal.

  Attributes:
    signum: the signal number.
    step: the step at which the run stopped (None if it had not started).
    checkpoint_step: the step of the checkpoint saved on the way out (None:
      checkpointing is off, or the state was not finite).
    checkpoint_dir: where that checkpoint is.
  """

  def __init__(self, signum: int, step: int | None = None,
               checkpoint_step: int | None = None,
               checkpoint_dir: str | None = None):
    super().__init__(signum)
    self.signum, self.step = signum, step
    self.checkpoint_step, self.checkpoint_dir = checkpoint_step, checkpoint_dir

  @property
  def signal_name(self) -> str:
    try:
      return signal.Signals(self.signum).name
    except ValueError:
      return f"signal {self.signum}"

  @property
  def exit_status(self) -> int:
    """The shell's status of a process killed by the signal (130, 143)."""
    return 128 + self.signum

  def __str__(self) -> str:
    text = f"interrupted by {self.signal_name}"
    if self.step is not None:
      text += f" at step {self.step}"
    if self.checkpoint_step is not None:
      text += (f"; saved checkpoint {self.checkpoint_step} in "
               f"{self.checkpoint_dir}; continue with --resume")
    elif self.step is not None and self.checkpoint_dir is None:
      text += "; no checkpoint saved (checkpointing is off)"
    elif self.step is not None:
      text += "; no checkpoint saved (nothing to save yet, or a non-finite state)"
    return text


class _Flag:
  signum: int | None = None


@contextlib.contextmanager
def deferred_signals(enabled: bool = True) -> Iterator[_Flag]:
  """Within the block, the first SIGINT/SIGTERM sets ``flag.signum``; the
  second raises :class:`Interrupted` at once. Outside the main thread (or
  with ``enabled=False``) signals keep their handlers."""
  flag = _Flag()
  if not enabled or threading.current_thread() is not threading.main_thread():
    yield flag
    return

  def handler(signum, frame):
    del frame
    if flag.signum is not None:
      raise Interrupted(signum)
    flag.signum = signum

  previous = {s: signal.signal(s, handler) for s in CAUGHT}
  try:
    yield flag
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


__all__ = ["CAUGHT", "Interrupted", "deferred_signals"]
