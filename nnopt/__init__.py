"""nnopt: classical nonlinear optimization for neural-network training in JAX.

The engine (models, capture, data, the data-parallel trainer) and the optax
aliases (``nnopt.msvag``, ``nnopt.frobenius_sgd``, ``nnopt.kfac``, ...) are
imported here; the other families live in their subpackages
(``nnopt.noise_aware``, ``nnopt.preconditioning``, ``nnopt.growth``,
``nnopt.multilevel``, ``nnopt.noise_aware.fisher``, ``nnopt.noise_aware.geometry``).
"""

from nnopt import losses

from nnopt.engine import parallel
from nnopt.stats.capture import (Captured, LayerStats, capture, conv_patches,
                           layer_gradients, layer_info)
from nnopt.data import Dataset, EpochSampler, load_dataset
from nnopt.models import FNN, VGG, ResNet, build_model, init_params
from nnopt.engine.step import NeedsError, TrainState
from nnopt.stats.needs import Needs, required_needs
from nnopt.engine.run import Run
from nnopt.engine.trainer import Hook, NonFiniteLossError, Trainer
from nnopt.noise_aware import (adam_star, block_normalized_gd, cabs_sgd,
                               coordinate_descent, diag_ef, l1_sign_gd, msgd,
                               msign_sgd, msvag, msvag_mb, sign_sgd, svag)
from nnopt.preconditioning import frobenius_sgd, kfac

__version__ = "0.1.0"

__all__ = [
    "Needs", "NeedsError", "required_needs", "Captured", "Dataset", "EpochSampler", "FNN", "Hook",
    "LayerStats", "NonFiniteLossError", "ResNet", "Run", "TrainState",
    "Trainer", "VGG", "build_model", "capture", "conv_patches", "init_params",
    "layer_gradients", "layer_info", "load_dataset", "losses", "parallel",
    # optimizers (optax aliases, learning rate first)
    "adam_star", "block_normalized_gd", "cabs_sgd", "coordinate_descent",
    "diag_ef", "frobenius_sgd", "kfac", "l1_sign_gd", "msgd", "msign_sgd",
    "msvag", "msvag_mb", "sign_sgd", "svag",
]
