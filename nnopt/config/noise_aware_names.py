"""Registers the noise-aware family with nnopt's config registries.

:func:`register` (idempotent) makes these names available to configs:

* optimizers: ``msgd``, ``sign_sgd``, ``msign_sgd``, ``svag``, ``msvag``,
  ``msvag_mb``, ``adam_star``, ``l1_sign_gd``, ``block_normalized_gd``,
  ``coordinate_descent``, ``diag_ef``, ``cabs_sgd``;
* hooks: ``cabs`` (:class:`nnopt.noise_aware.cabs.CABS`), ``competitor``
  (:class:`nnopt.noise_aware.cabs.Competitor`);
* models: ``conv_pool_net``, ``wide_resnet``, ``char_lstm``
  (:mod:`nnopt.models.deepobs`).

The P4 datasets ``tolstoi`` and ``embedded_text`` are built into
:mod:`nnopt.data` (:mod:`nnopt.data.text`).
"""

from __future__ import annotations

def register() -> None:
  """Adds the names above to the registries (no-op for names already there)."""
  # pylint: disable=import-outside-toplevel
  from nnopt import config
  from nnopt.noise_aware import cabs
  from nnopt.config import optimizers
  from nnopt.models import MODELS, register_model
  from nnopt.models import deepobs
  from nnopt.noise_aware import batch_variance
  from nnopt.noise_aware import adaptation as noise_aware
  from nnopt.noise_aware import steepest_descent

  factories = {
      "msgd": noise_aware.msgd, "sign_sgd": noise_aware.sign_sgd,
      "msign_sgd": noise_aware.msign_sgd, "svag": noise_aware.svag,
      "msvag": noise_aware.msvag, "msvag_mb": noise_aware.msvag_mb,
      "adam_star": noise_aware.adam_star,
      "l1_sign_gd": steepest_descent.l1_sign_gd,
      "block_normalized_gd": steepest_descent.block_normalized_gd,
      "coordinate_descent": steepest_descent.coordinate_descent,
      "diag_ef": steepest_descent.diag_ef,
      "cabs_sgd": batch_variance.cabs_sgd,
  }
  for name, factory in factories.items():
    if name not in optimizers.OPTIMIZERS:
      optimizers.register_optimizer(name, factory)
  for name, hook in (("cabs", cabs.CABS), ("competitor", cabs.Competitor)):
    if name not in config.HOOKS:
      config.register_hook(name, hook)
  for name, cls in deepobs.MODEL_CLASSES.items():
    if name not in MODELS:
      register_model(name, cls)


__all__ = ["register"]
