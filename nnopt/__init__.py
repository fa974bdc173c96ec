"""nnopt: classical nonlinear optimization for neural-network training in JAX.

The engine (models, capture, data, the data-parallel trainer) and the optax
aliases (``nnopt.msvag``, ``nnopt.frobenius_sgd``, ``nnopt.kfac``, ...) are
imported here; the other families live in their subpackages
(``nnopt.transforms``, ``nnopt.variance``, ``nnopt.cabs``, ``nnopt.growth``,
``nnopt.multilevel``, ``nnopt.fisher``, ``nnopt.geometry``).
"""

from nnopt import losses, parallel
from nnopt.capture import (Captured, LayerStats, capture, conv_patches,
                           layer_gradients, layer_info)
from nnopt.data import Dataset, EpochSampler, load_dataset
from nnopt.models import FNN, VGG, ResNet, build_model, init_params
from nnopt.step import CaptureSpec, TrainState
from nnopt.train import Hook, NonFiniteLossError, Run, Trainer
from nnopt.transforms import (adam_star, block_normalized_gd, cabs_sgd,
                              coordinate_descent, diag_ef, frobenius_sgd, kfac,
                              l1_sign_gd, msgd, msign_sgd, msvag, msvag_mb,
                              sign_sgd, svag)

__version__ = "0.1.0"

__all__ = [
    "CaptureSpec", "Captured", "Dataset", "EpochSampler", "FNN", "Hook",
    "LayerStats", "NonFiniteLossError", "ResNet", "Run", "TrainState",
    "Trainer", "VGG", "build_model", "capture", "conv_patches", "init_params",
    "layer_gradients", "layer_info", "load_dataset", "losses", "parallel",
    # optimizers (optax aliases, learning rate first)
    "adam_star", "block_normalized_gd", "cabs_sgd", "coordinate_descent",
    "diag_ef", "frobenius_sgd", "kfac", "l1_sign_gd", "msgd", "msign_sgd",
    "msvag", "msvag_mb", "sign_sgd", "svag",
]
