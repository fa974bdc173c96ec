"""flax models built from nnopt's tagged `Dense` and `Conv` layers."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt.models.apply import apply_model, init_variables, takes_train_flag
from nnopt.models.deepobs import CharLSTM, ConvPoolNet, WideResNet
from nnopt.models.fnn import FNN
from nnopt.models.layers import (ACTIVATIONS, INIT_SCHEMES, Conv, Dense,
                                 LayerInfo, activation, pytorch_kernel_init,
                                 record_layers)
from nnopt.models.odenet import ODEResNet
from nnopt.models.resnet import ResBlock, ResNet
from nnopt.models.vgg import VGG

#: The architectures by name (``build_model``, and ``model.name`` in configs).
MODELS: dict[str, type[nn.Module]] = {
    "fnn": FNN, "resnet": ResNet, "vgg": VGG,
    "odenet": ODEResNet,                       # Kreis ch. 3, MLSGD thesis
    "conv_pool_net": ConvPoolNet,              # DeepOBS test problems,
    "wide_resnet": WideResNet,                 # Balles ch. 5 (P1-P4)
    "char_lstm": CharLSTM,
}


def _freeze(value: Any) -> Any:
  """Lists (e.g. from a ConfigDict) become tuples so that the module hashes."""
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def build_model(name: str, **kwargs: Any) -> nn.Module:
  """Builds a registered architecture, e.g. ``build_model('fnn', widths=[5, 2])``."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
  cls = MODELS[name]
  fields = set(cls.__dataclass_fields__) - {"parent", "name"}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"model {name!r} has no option(s) {unknown}; "
                     f"options: {sorted(fields)}")
  return cls(**{k: _freeze(v) for k, v in kwargs.items()})


def init_params(model: nn.Module, rng: jax.Array, example_input: jax.Array):
  """Initial parameters (the ``'params'`` collection only) for a batch shape."""
  return model.init(rng, jnp.asarray(example_input))["params"]


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


__all__ = [
    "ACTIVATIONS", "INIT_SCHEMES", "MODELS", "Conv", "Dense", "FNN",
    "LayerInfo", "ResBlock", "ResNet", "VGG", "activation", "apply_model",
    "build_model", "count_params", "init_params", "init_variables",
    "pytorch_kernel_init", "record_layers",
    "takes_train_flag",
]
