"""Reproductions and how ``nnopt reproduce`` finds them.

A reproduce script defines one :class:`Reproduction`. Installed scripts are
found through the entry-point group :data:`ENTRY_POINT_GROUP` (nnopt's own,
``experiments/reproduce_*.py``, are declared in its ``pyproject.toml``)::

    [project.entry-points."nnopt.reproductions"]
    sensli_tables = "experiments.reproduce_sensli_tables:REPRODUCTION"

A directory of scripts of one's own (``nnopt reproduce --experiments DIR``)
is read like a config file: every ``reproduce_*.py`` in it is run from its
path. A script that fails to load is listed in :attr:`Registry.errors`
instead of breaking the others.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from nnopt.config.errors import did_you_mean
from nnopt.reproduce.claims import THESES, Claim, ReproduceError

#: The entry-point group whose entries are :class:`Reproduction` objects.
ENTRY_POINT_GROUP = "nnopt.reproductions"


@dataclasses.dataclass(frozen=True)
class Reproduction:
  """A registered reproduce script.

  Attributes:
    id: command-line id (``nnopt reproduce ID``), a valid directory name.
    thesis: the thesis whose items it reproduces.
    items: the thesis items covered, e.g. ``('Table 4.3', 'Table 4.4')``.
    run: ``run(out_dir: Path, quick: bool) -> list[Claim]``; writes figures
      (PNG) into ``out_dir``. ``quick`` must finish in about a minute on a
      laptop CPU.
    title: one line for ``--list`` and the report.
    cost: rough run time, e.g. ``'seconds'`` or ``'2 h GPU (quick: 1 min)'``.
    smoke: the stand-in problem of the quick mode, e.g. ``'scikit-learn
      digits 8×8, 150 steps'``: a quick run's claims are smoke records that
      name it (:func:`nnopt.reproduce.runner.run_reproduction`).
  """

  id: str
  thesis: str
  items: tuple[str, ...]
  run: Callable[[Path, bool], Sequence[Claim]]
  title: str = ""
  cost: str = ""
  smoke: str = ""

  def __post_init__(self):
    if self.thesis not in THESES:
      raise ReproduceError(f"reproduction {self.id!r}: thesis must be one of "
                           f"{THESES}, got {self.thesis!r}")
    if not self.id or any(c in self.id for c in "/\\ ") or self.id[0] == ".":
      raise ReproduceError(f"reproduction id {self.id!r} must be a plain "
                           "directory name")
    object.__setattr__(self, "items", tuple(self.items))



@dataclasses.dataclass
class Registry:
  """The reproductions found, and the scripts that failed to load."""

  reproductions: dict[str, Reproduction]
  errors: dict[str, str]

  def get(self, rid: str) -> Reproduction:
    if rid in self.reproductions:
      return self.reproductions[rid]
    broken = (f"; scripts that failed to load: {', '.join(self.errors)}"
              if self.errors else "")
    raise ReproduceError(
        f"unknown reproduction {rid!r}{did_you_mean(rid, self.reproductions)}; "
        f"known: {', '.join(sorted(self.reproductions)) or '(none)'}{broken}")


def _collect(candidates: Iterable[tuple[str, str | None, Callable[[], Any]]]
             ) -> Registry:
  """Loads ``(where, expected id or None, load)`` candidates into a Registry."""
  found: dict[str, Reproduction] = {}
  errors: dict[str, str] = {}
  for where, expected, load in candidates:
    try:
      rep = load()
    except Exception as e:  # pylint: disable=broad-except
      errors[where] = f"{type(e).__name__}: {e}"
      continue
    if not isinstance(rep, Reproduction):
      errors[where] = "defines no REPRODUCTION = Reproduction(...)"
    elif expected is not None and rep.id != expected:
      errors[where] = f"is registered as {expected!r} but has id {rep.id!r}"
    elif rep.id in found:
      errors[where] = f"duplicate reproduction id {rep.id!r}"
    else:
      found[rep.id] = rep
  return Registry(found, errors)


def _from_path(path: Path) -> Any:
  spec = importlib.util.spec_from_file_location(
      f"nnopt_reproduce_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return getattr(module, "REPRODUCTION", None)


def discover(directory: str | os.PathLike[str] | None = None) -> Registry:
  """The installed reproductions, or those of the scripts in ``directory``.

  Args:
    directory: None for the entry points of :data:`ENTRY_POINT_GROUP`, else a
      directory whose ``reproduce_*.py`` files each define ``REPRODUCTION``.

  Raises:
    ReproduceError: ``directory`` is not a directory.
  """
  if directory is None:
    entries = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return _collect((f"{e.name} ({e.value})", e.name, e.load)
                    for e in sorted(entries, key=lambda e: e.name))
  directory = Path(directory)
  if not directory.is_dir():
    raise ReproduceError(f"no directory of reproduce scripts at {directory}")
  return _collect((path.name, None, lambda path=path: _from_path(path))
                  for path in sorted(directory.glob("reproduce_*.py")))


__all__ = ["ENTRY_POINT_GROUP", "Registry", "Reproduction", "discover"]
