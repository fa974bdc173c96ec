"""Names and settings for running Kreis ch. 5 from configs.

:func:`register` makes ``frobenius_sgd``, ``kfac`` and ``inner_product_sgd``
available as ``optimizer.name`` and the autoencoder datasets
``digits_autoencoder`` / ``mnist_autoencoder`` (targets = inputs) available as
``dataset.name``; it is idempotent. The learning-rate grids of §5.3.3 and
App. B.4 (spec §4) are constants here so that configs and the reproduce script
share them.

The thesis's autoencoder loss is PyTorch's ``MSELoss`` (mean over N·D, no ½)
with BackPACK's G scaling (spec P11). nnopt's ``squared_error`` is
``½‖·‖²`` per example with model samples from N(ŷ, I); the two runs are the
same when the learning rate is multiplied by ``2/D`` and G by ``2/D``
(``cotangent_scale``), see :func:`torch_mse_equivalent`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnopt.preconditioning.frobenius import frobenius_sgd
from nnopt.preconditioning.kfac_preset import kfac

EXP1_GRID = tuple(float(v) for v in np.logspace(0, -5, num=30))
EXP2_SGD_GRID = tuple(sorted(set(float(v) for v in np.logspace(0, -5, 50))
                             | {0.1}, reverse=True))  # P8: 0.1 added
EXP2_PRECOND_GRID = tuple(round(0.2 - 0.01 * i, 2) for i in range(16))
EXP3_GRID = tuple(float(v) for v in np.logspace(-5, 0, num=100))
EXP3_SGD_EXTENDED = tuple(float(v) for v in np.logspace(0, 1, num=11)[1:])  # P8

CHAMPIONS = {  # (SGD, preconditioned), spec §4 with P4 resolved
    "exp1": (EXP1_GRID[3], EXP1_GRID[19]),
    "exp2": (0.1, 0.1),
    "exp3": (1.0, EXP3_GRID[67]),
}
DAMPING = {"exp1": 1e-2, "exp2": 1e-3, "exp3": 1e-3}


def torch_mse_equivalent(learning_rate: float, output_dim: int
                         ) -> tuple[float, float]:
  """``(lr, cotangent_scale)`` for ``squared_error`` matching torch-mean MSE."""
  return learning_rate * 2.0 / output_dim, 2.0 / output_dim


def inner_product_sgd(learning_rate, inner_products: Any = None):
  """SGD in fixed inner products (Euclidean where none is given)."""
  import optax  # pylint: disable=g-import-not-at-top
  from nnopt.preconditioning.inner_products import scale_by_inner_products  # pylint: disable=g-import-not-at-top
  return optax.chain(scale_by_inner_products(dict(inner_products or {})),
                     optax.scale_by_learning_rate(learning_rate))


def _autoencoder(base: str):
  def load(*, data_dir=None, seed=0, **options):
    from nnopt.data import Dataset, load_dataset  # pylint: disable=g-import-not-at-top
    data = load_dataset(base, data_dir=data_dir, seed=seed, flatten=True,
                        **options) if base == "digits" else load_dataset(
                            base, data_dir=data_dir, seed=seed, **options)
    x_train = data.x_train.reshape(len(data.x_train), -1)
    x_test = data.x_test.reshape(len(data.x_test), -1)
    return Dataset(x_train, x_train, x_test, x_test, f"{base}_autoencoder",
                   None, "regression", dict(data.meta, autoencoder=True))
  return load


def register() -> None:
  """Registers the optimizers and datasets above (idempotent)."""
  from nnopt.data import registry  # pylint: disable=g-import-not-at-top
  from nnopt.config.optimizers import OPTIMIZERS, register_optimizer  # pylint: disable=g-import-not-at-top
  for name, factory in (("frobenius_sgd", frobenius_sgd), ("kfac", kfac),
                        ("inner_product_sgd", inner_product_sgd)):
    if name not in OPTIMIZERS:
      register_optimizer(name, factory)
  for base in ("digits", "mnist"):
    try:
      registry.register_dataset(f"{base}_autoencoder", _autoencoder(base))
    except registry.DatasetError:
      pass  # already registered
