"""nnopt: classical nonlinear optimization for neural-network training in JAX.

The engine (models, capture, data, the data-parallel trainer) is imported
here; method families live in their subpackages (``nnopt.transforms``,
``nnopt.growth``, ``nnopt.multilevel``, ...).
"""

from nnopt import losses, parallel
from nnopt.capture import (Captured, LayerStats, capture, conv_patches,
                           layer_gradients, layer_info)
from nnopt.data import Dataset, EpochSampler, load_dataset
from nnopt.models import FNN, VGG, ResNet, build_model, init_params
from nnopt.step import CaptureSpec, TrainState
from nnopt.train import Hook, NonFiniteLossError, Run, Trainer

__version__ = "0.1.0"

__all__ = [
    "CaptureSpec", "Captured", "Dataset", "EpochSampler", "FNN", "Hook",
    "LayerStats", "NonFiniteLossError", "ResNet", "Run", "TrainState",
    "Trainer", "VGG", "build_model", "capture", "conv_patches", "init_params",
    "layer_gradients", "layer_info", "load_dataset", "losses", "parallel",
]
