"""The config layer's errors and its one "did you mean" helper."""

from __future__ import annotations

import difflib
from typing import Iterable


class ConfigError(ValueError):
  """A config is invalid; the message names the key and the allowed values."""


class OptimizerError(ConfigError):
  """An optimizer or schedule cannot be built from the given name and options."""


def close_matches(name: str, known: Iterable[str], *, n: int = 3,
                  cutoff: float = 0.6) -> list[str]:
  """The up to ``n`` entries of ``known`` closest to ``name``."""
  return difflib.get_close_matches(str(name), list(known), n=n, cutoff=cutoff)


def suggest(candidates: Iterable[str]) -> str:
  """``" (did you mean 'a', 'b'?)"``, or ``""`` without candidates."""
  candidates = list(candidates)
  if not candidates:
    return ""
  return f" (did you mean {', '.join(map(repr, candidates))}?)"


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3,
                 cutoff: float = 0.6) -> str:
  """The hint for an unknown ``name``: :func:`suggest` of its close matches."""
  return suggest(close_matches(name, known, n=n, cutoff=cutoff))


__all__ = ["ConfigError", "OptimizerError", "close_matches", "did_you_mean",
           "suggest"]
