"""Where a layer can be inserted, how it starts as the identity, and insertion.

Growing a network is a pure function of (architecture, parameters): the
architecture is a frozen flax module (:class:`~nnopt.models.FNN`,
:class:`~nnopt.models.ResNet`, :class:`~nnopt.models.VGG`) whose layers carry
stable names, so inserting a layer adds one name to its ``names`` /
``block_names`` / ``conv_names`` tuple and one key to the parameter dict; every
existing key keeps its value (and optimizer state can be grafted by path,
:mod:`nnopt.growth.graft`).

Identity initializations (Kreis §4.3.2):

* FNN (4.11): after hidden layer ``i`` (a ReLU output, so ``x >= 0``) a square
  layer ``W = I``, ``b = 0``: ``relu(I x + 0) = x``.
* ResNet (4.13): a residual block ``x + W2 σ(W1 x + b)`` with ``W2 = 0`` (and
  ``W1 = s·I``, ``b = 0`` so that the merit (4.14c) is informative).
* CNN (4.15): a 3×3 conv after a conv's ReLU, before the pooling, with the
  centred identity kernel ``K[1, 1, c, c] = 1`` and zero bias.

The FNN and CNN rules need a non-negative input that the activation leaves
unchanged, i.e. a ReLU before *and* after the new layer; anywhere else
(before the first hidden layer, other activations) the insertion would change
the network function, and :func:`insert` refuses with a :class:`GrowthError`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nnopt.models import FNN, VGG, ResNet
from nnopt.models.layers import INPUTS_COLLECTION
from nnopt.stats.layer_keys import key_str

#: ResNet candidate conventions (spec-sensli P6): ``'after_each_block'``
#: (the thesis's FLOP tables) and ``'after_input_and_each_block'`` (also the
#: slot right after the input layer ``W_1``, as in the reference code).
RESNET_POSITIONS = ("after_each_block", "after_input_and_each_block")
#: Older spellings of the conventions.
_RESNET_ALIASES = {"before_and_after": "after_input_and_each_block"}


def resnet_positions_name(resnet_positions: str) -> str:
  """The canonical name of a ResNet candidate convention (aliases resolved).

  Raises:
    GrowthError: an unknown convention.
  """
  name = _RESNET_ALIASES.get(resnet_positions, resnet_positions)
  if name not in RESNET_POSITIONS:
    raise GrowthError(f"resnet_positions must be one of {RESNET_POSITIONS}, "
                      f"got {resnet_positions!r}")
  return name


class GrowthError(ValueError):
  """A growth operation is invalid (unknown layer, position, or model)."""


class Candidate(NamedTuple):
  """One place where a layer can be inserted.

  Attributes:
    name: parameter key the new layer gets (unique in the network).
    after: name of the layer it follows (``'first'`` for the ResNet slot right
      after the first linear layer).
    family: ``'fnn'``, ``'resnet'`` or ``'vgg'``.
    width: width (FNN, ResNet) or channel count (VGG) of the new square layer.
    index: insertion index in the names tuple (for VGG: within ``stage``).
    stage: VGG stage, else -1.
  """

  name: str
  after: str
  family: str
  width: int
  index: int
  stage: int = -1


def family(model: nn.Module) -> str:
  """``'fnn'``, ``'resnet'`` or ``'vgg'``; raises for other models."""
  if isinstance(model, FNN):
    return "fnn"
  if isinstance(model, ResNet):
    return "resnet"
  if isinstance(model, VGG):
    return "vgg"
  raise GrowthError(f"no layer-insertion rule for {type(model).__name__}; "
                    "growth supports nnopt's FNN, ResNet and VGG")


def all_names(model: nn.Module) -> tuple[str, ...]:
  """Names of the model's growable layers (FNN layers, blocks, convs)."""
  kind = family(model)
  if kind == "fnn":
    return model.layer_names()
  if kind == "resnet":
    return model.names()
  return tuple(n for stage in model.names() for n in stage)


def _fresh_names(model: nn.Module, prefix: str, count: int) -> list[str]:
  """``count`` new names ``prefix<k>`` with k above every existing one."""
  pattern = re.compile(re.escape(prefix) + r"(\d+)$")
  used = [int(m.group(1)) for n in all_names(model) if (m := pattern.match(n))]
  start = max(used, default=-1) + 1
  return [f"{prefix}{start + j}" for j in range(count)]


def candidates(model: nn.Module, *,
               resnet_positions: str = "after_each_block") -> list[Candidate]:
  """Every position where an identity layer can be inserted (spec §2.6).

  Args:
    model: an FNN (ReLU), two-weight ResNet or VGG (ReLU).
    resnet_positions: ``'after_each_block'`` (one candidate after each
      residual block; the thesis's FLOP tables) or
      ``'after_input_and_each_block'`` (also right after the input layer
      ``W_1``, before the first block; the reference code, whose argmax
      picks that slot in most Exp3 runs), see spec pitfall P6.
      ``'before_and_after'`` is an older name of the latter.

  Returns:
    The candidates in network order; their names are fresh parameter keys.
  """
  kind = family(model)
  if kind == "fnn":
    _check_relu(model, "FNN")
    names = model.layer_names()
    hidden = len(model.widths) - 1
    fresh = _fresh_names(model, "dense_ins_", hidden)
    return [Candidate(fresh[i], names[i], kind, model.widths[i], i + 1)
            for i in range(hidden)]
  if kind == "resnet":
    positions = resnet_positions_name(resnet_positions)
    names = model.names()
    slots = [(i + 1, n) for i, n in enumerate(names)]
    if positions == "after_input_and_each_block":
      slots = [(0, "first")] + slots
    fresh = _fresh_names(model, "block_ins_", len(slots))
    return [Candidate(f, after, kind, model.width, index)
            for f, (index, after) in zip(fresh, slots)]
  _check_relu(model, "VGG")
  names = model.names()
  total = sum(map(len, names))
  fresh = iter(_fresh_names(model, "conv_ins_", total))
  return [Candidate(next(fresh), name, kind, channels, j + 1, s)
          for s, (stage, stage_names) in enumerate(zip(model.stages, names))
          for j, (channels, name) in enumerate(zip(stage, stage_names))]


def _check_relu(model: nn.Module, what: str) -> None:
  if model.activation != "relu":
    raise GrowthError(
        f"identity insertion into a {what} needs ReLU activations "
        f"(relu∘relu = relu on the layer's non-negative input); got "
        f"{model.activation!r}, for which the inserted layer would change "
        "the network function (Kreis §4.3.2; NetMorph-style parametrized "
        "activations are not implemented)")


def identity_params(cand: Candidate, *, resnet_w1_scale: float = 0.8,
                    use_bias: bool = True,
                    dtype=jnp.float32) -> dict[str, Any]:
  """Parameters that make the candidate layer the identity map.

  Args:
    cand: the candidate.
    resnet_w1_scale: ``s`` in the ResNet block's ``W1 = s·I`` (0.8 in the
      reference code); it sets the scale of the merit (4.14c), so use the
      same value at every position.
    use_bias: whether the new FNN layer has a bias (the FNN's ``use_bias``).
    dtype: parameter dtype.
  """
  n = cand.width
  dtype = np.dtype(dtype)
  eye = np.eye(n, dtype=dtype)  # host arrays: cheap, moved on first use
  if cand.family == "fnn":
    p = {"kernel": eye}
    if use_bias:
      p["bias"] = np.zeros((n,), dtype)
    return p
  if cand.family == "resnet":
    return {"inner": {"kernel": (resnet_w1_scale * eye).astype(dtype),
                      "bias": np.zeros((n,), dtype)},
            "outer": {"kernel": np.zeros((n, n), dtype)}}
  kernel = np.zeros((3, 3, n, n), dtype)
  kernel[1, 1] = eye
  return {"kernel": kernel, "bias": np.zeros((n,), dtype)}


def _with_layers(model: nn.Module, chosen: Sequence[Candidate]) -> nn.Module:
  """The architecture with the chosen candidates' layers added (no checks)."""
  kind = family(model)
  if kind == "fnn":
    widths, names = list(model.widths), list(model.layer_names())
    for c in sorted(chosen, key=lambda c: -c.index):
      widths.insert(c.index, c.width)
      names.insert(c.index, c.name)
    return model.clone(widths=tuple(widths), names=tuple(names))
  if kind == "resnet":
    names = list(model.names())
    for c in sorted(chosen, key=lambda c: -c.index):
      names.insert(c.index, c.name)
    return model.clone(n_blocks=len(names), block_names=tuple(names))
  stages = [list(s) for s in model.stages]
  names = [list(s) for s in model.names()]
  for c in sorted(chosen, key=lambda c: (-c.stage, -c.index)):
    stages[c.stage].insert(c.index, c.width)
    names[c.stage].insert(c.index, c.name)
  return model.clone(stages=tuple(map(tuple, stages)),
                     conv_names=tuple(map(tuple, names)))


def insert(model: nn.Module, params: dict[str, Any],
           chosen: Iterable[Candidate | str], *, resnet_w1_scale: float = 0.8,
           resnet_positions: str = "after_each_block",
           ) -> tuple[nn.Module, dict[str, Any]]:
  """Inserts identity-initialized layers at the chosen candidate positions.

  Args:
    model: current architecture.
    params: its parameters (never modified; the result shares their leaves).
    chosen: candidates (or their names) from :func:`candidates` of this
      ``model``; several at once are allowed (the fully extended network is
      ``insert(model, params, candidates(model))``).
    resnet_w1_scale: see :func:`identity_params`.
    resnet_positions: candidate convention used to resolve names.

  Returns:
    ``(new_model, new_params)``; ``new_model.apply`` equals ``model.apply``
    wherever the inputs are finite.

  Raises:
    GrowthError: a position is not a valid candidate of ``model`` (e.g. an FNN
      insertion before the first hidden layer, where the raw input may be
      negative).
  """
  valid = {c.name: c for c in candidates(model, resnet_positions=resnet_positions)}
  resolved = []
  for c in chosen:
    name = c if isinstance(c, str) else c.name
    if name not in valid or not (isinstance(c, str) or c == valid[name]):
      raise GrowthError(
          f"cannot insert {c!r}: not a valid position of this "
          f"{type(model).__name__}; valid candidates are "
          f"{[f'{v.name} (after {v.after})' for v in valid.values()]}")
    resolved.append(valid[name])
  if len({c.name for c in resolved}) != len(resolved):
    raise GrowthError("a candidate was chosen twice")
  return insert_unchecked(model, params, resolved,
                          resnet_w1_scale=resnet_w1_scale)


def insert_unchecked(model: nn.Module, params: dict[str, Any],
                     chosen: Sequence[Candidate], *,
                     resnet_w1_scale: float = 0.8):
  """:func:`insert` without validity checks (to demonstrate invalid ones).

  A :class:`Candidate` with ``index=0`` for an FNN puts the identity layer in
  front of the first layer, on the raw input: that changes the function
  whenever an input coordinate is negative.
  """
  new_model = _with_layers(model, chosen)
  dtype = jax.tree.leaves(params)[0].dtype
  new_params = dict(params)
  use_bias = getattr(model, "use_bias", True)
  for c in chosen:
    if c.name in new_params:
      raise GrowthError(f"layer name {c.name!r} already exists")
    new_params[c.name] = identity_params(
        c, resnet_w1_scale=resnet_w1_scale, use_bias=use_bias, dtype=dtype)
  return new_model, new_params


def fully_extend(model: nn.Module, params: dict[str, Any], *,
                 resnet_w1_scale: float = 0.8,
                 resnet_positions: str = "after_each_block"):
  """The network with identity layers at all candidate positions (Alg. 6, l. 4–5).

  Returns:
    ``(ext_model, ext_params, cands)``: ``cands`` lists the candidates whose
    parameters are ``ext_params[c.name]``.
  """
  cands = candidates(model, resnet_positions=resnet_positions)
  ext_model, ext_params = insert_unchecked(model, params, cands,
                                           resnet_w1_scale=resnet_w1_scale)
  return ext_model, ext_params, cands


def layer_input_shapes(model: nn.Module, params, input_shape: Sequence[int]
                       ) -> dict[str, tuple[int, ...]]:
  """Input shape (without the batch axis) of every tagged layer, by path.

  Computed abstractly (no FLOPs) from the layers' sown inputs and cached per
  (architecture, input shape); ``params`` is not needed (kept for symmetry).
  The VGG candidates' operator norms need their input resolution from it.
  """
  del params
  return dict(_input_shapes(model, tuple(int(d) for d in input_shape)))


@functools.lru_cache(maxsize=256)
def _input_shapes(model: nn.Module, input_shape: tuple[int, ...]):
  x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)

  def run(x):
    variables = model.init(jax.random.key(0), x)
    return model.apply(variables, x, mutable=[INPUTS_COLLECTION])[1]

  sown = jax.eval_shape(run, x)[INPUTS_COLLECTION]
  # A sown value is ``{layer: {'inputs': (value,)}}``; the layer's key drops
  # the collection's own 'inputs' key and the tuple index.
  layers = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(sown)[0]:
    keys = [getattr(k, "key", None) for k in path]
    layer = key_str(k for k in keys if isinstance(k, str) and k != "inputs")
    layers[layer] = tuple(np.shape(leaf))[1:]
  return tuple(layers.items())
