"""The command line's errors and its one-line messages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nnopt import config as config_lib
from nnopt import reproduce
from nnopt.data import DatasetError
from nnopt.engine import (CheckpointError, NeedsError, NonFiniteLossError,
                          ResumeError)


class UsageError(Exception):
  """Bad command-line usage (argparse errors included)."""


class RunError(Exception):
  """A run stopped on a user-level problem (e.g. a non-finite loss)."""


#: Errors that are the user's (printed as one line, exit status 2).
USER_ERRORS = (UsageError, RunError, config_lib.ConfigError, DatasetError,
               reproduce.ReproduceError, NonFiniteLossError, ResumeError,
               CheckpointError, NeedsError, OSError)


def one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  return text or type(error).__name__


def info(message: str) -> None:
  print(f"nnopt: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
  print(f"nnopt: warning: {one_line(Exception(message))}", file=sys.stderr,
        flush=True)


def check_dir_arg(flag: str, directory: Path) -> None:
  """Fails (writing nothing) when ``directory`` cannot become an output
  directory: it, or the nearest existing directory above, is a file or not
  writable."""
  if directory.exists() and not directory.is_dir():
    raise UsageError(f"{flag} {directory} is a file, not a directory")
  parent = directory.absolute()
  while not parent.exists():
    parent = parent.parent
  if not parent.is_dir():
    raise UsageError(f"{flag} {directory}: {parent} is a file, not a "
                     "directory")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UsageError(f"{flag} {directory}: {parent} is not writable")


__all__ = ["USER_ERRORS", "RunError", "UsageError", "check_dir_arg", "info",
           "one_line", "warn"]
