"""Makes every method family's optimizers, hooks, models and datasets known
to the config registries.

The families register themselves when imported; configs name them as strings
(``optimizer.name = 'msvag'``, ``hooks = [{'name': 'sensli'}]``), so the
config layer calls :func:`register_all` before it resolves a config. The
imports are deferred to that call to keep ``import nnopt`` light and free of
cycles.
"""

from __future__ import annotations

import importlib

_FAMILIES = (
    # (module, name of its registration function or None if import registers)
    ("nnopt.growth", None),
    ("nnopt.multilevel", None),
    ("nnopt.config.noise_aware_names", "register"),
    ("nnopt.config.frobenius_names", "register"),
)

_done = False


def register_all() -> None:
  """Imports and registers every family (idempotent, cheap after the first)."""
  global _done
  if _done:
    return
  _done = True
  for module_name, function in _FAMILIES:
    module = importlib.import_module(module_name)
    if function is not None:
      getattr(module, function)()
