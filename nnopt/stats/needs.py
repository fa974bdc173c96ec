"""What a transform needs from the training step, declared by the transform.

A transform that needs more than the gradient (layer statistics, gradients
for targets sampled from the model, a loss oracle, the batch) puts a
:func:`needs_marker` into its state. The marker holds no arrays: it is a pytree
node without children whose static data is the :class:`Needs`, so it survives
``jax.eval_shape``, ``jit`` and checkpoints, and it is found inside any
wrapper whose state contains the inner state (``optax.chain``,
``optax.inject_hyperparams``, ``optax.MultiSteps``, ``optax.apply_if_finite``,
``optax.masked``, ...). :func:`required_needs` reads it from an abstract
``init``:

.. code-block:: python

    opt = optax.chain(nnopt.kfac(0.1), optax.clip_by_global_norm(1.0))
    needs = required_needs(opt, params)     # Needs(stats=True, fisher_samples=1)
    out = capture(model, params, x, y, loss,
                  with_stats=needs.stats, fisher_samples=needs.fisher_samples)

The engine does exactly this to decide what its step captures; a hand-written
loop can ask the same question.

The step passes these keyword extra args to every transform (unknown ones are
ignored, as in optax): ``stats`` (layer statistics, only when some transform
needs them), ``value`` (batch loss), ``grad``, ``value_fn`` (the batch loss as
a function of the parameters), ``weights`` (padding mask), ``rng`` and
``batch``; :class:`StepExtras` lists their types.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, TypedDict

import jax
import optax


class StepExtras(TypedDict, total=False):
  """The keyword extra args the engine's step gives an optimizer's ``update``.

  Attributes:
    stats: ``{layer: LayerStats}`` of :func:`nnopt.stats.capture.capture`
      (only when a transform declares ``Needs(stats=True)`` or
      ``fisher_samples > 0``).
    value: the batch loss (a scalar).
    grad: the gradient (the same pytree as ``updates`` of the first
      transform in a chain).
    value_fn: ``params -> batch loss`` with the step's batch, dropout masks
      and batch statistics (a loss oracle for line searches and coarse
      corrections).
    weights: ``(B,)`` example weights, 0 for padding.
    rng: a PRNG key for this step.
    batch: ``{'x', 'y', 'weights'}``, the step's batch.
  """

  stats: Mapping[str, Any]
  value: jax.Array
  grad: Any
  value_fn: Callable[[Any], jax.Array]
  weights: jax.Array
  rng: jax.Array
  batch: Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Needs:
  """What a transform needs from the step besides the gradient.

  Attributes:
    stats: per-layer inputs and output cotangents (``stats=``).
    fisher_samples: targets sampled from the model per example, whose
      cotangents land in ``LayerStats.sampled_cotangents`` (implies
      ``stats``).
    value_fn: a loss oracle ``value_fn(params)``.
    batch: the step's batch ``{'x', 'y', 'weights'}``.
  """

  stats: bool = False
  fisher_samples: int = 0
  value_fn: bool = False
  batch: bool = False

  def __post_init__(self):
    if (not isinstance(self.fisher_samples, int)
        or isinstance(self.fisher_samples, bool) or self.fisher_samples < 0):
      raise ValueError(f"fisher_samples must be an integer >= 0, got "
                       f"{self.fisher_samples!r}")
    if self.fisher_samples and not self.stats:
      object.__setattr__(self, "stats", True)

  def merge(self, other: "Needs") -> "Needs":
    """The needs of two transforms used together."""
    return Needs(stats=self.stats or other.stats,
                 fisher_samples=max(self.fisher_samples, other.fisher_samples),
                 value_fn=self.value_fn or other.value_fn,
                 batch=self.batch or other.batch)

  @property
  def any(self) -> bool:
    return self != Needs()


class NeedsMarker:
  """A childless pytree node carrying :class:`Needs` as static data."""

  __slots__ = ("needs",)

  def __init__(self, needs: Needs):
    self.needs = needs

  def __repr__(self) -> str:
    return f"NeedsMarker({self.needs})"

  def __eq__(self, other) -> bool:
    return isinstance(other, NeedsMarker) and other.needs == self.needs

  def __hash__(self) -> int:
    return hash(self.needs)


jax.tree_util.register_pytree_node(
    NeedsMarker, lambda m: ((), m.needs), lambda needs, _: NeedsMarker(needs))


def needs_marker(needs: Needs) -> NeedsMarker:
  """The value a transform puts into its state to declare ``needs``."""
  if not isinstance(needs, Needs):
    raise TypeError(f"needs_marker takes a Needs, got {type(needs).__name__}")
  return NeedsMarker(needs)


class DeclaredState(NamedTuple):
  """State of :func:`declare_needs`: the marker and the inner state."""

  needs: NeedsMarker
  inner_state: Any


def declare_needs(inner: optax.GradientTransformation, needs: Needs
                  ) -> optax.GradientTransformationExtraArgs:
  """``inner`` with ``needs`` declared (for transforms without their own state
  type, e.g. an ``optax.chain`` that reads ``stats``)."""
  inner = optax.with_extra_args_support(inner)
  marker = needs_marker(needs)

  def init(params):
    return DeclaredState(marker, inner.init(params))

  def update(updates, state, params=None, **extra_args):
    updates, inner_state = inner.update(updates, state.inner_state, params,
                                        **extra_args)
    return updates, DeclaredState(state.needs, inner_state)

  return optax.GradientTransformationExtraArgs(init, update)


def needs_of_state(opt_state: Any) -> Needs:
  """The merged :class:`Needs` of every marker inside an optimizer state."""
  markers = [leaf for leaf in jax.tree_util.tree_leaves(
      opt_state, is_leaf=lambda x: isinstance(x, NeedsMarker))
             if isinstance(leaf, NeedsMarker)]
  needs = Needs()
  for marker in markers:
    needs = needs.merge(marker.needs)
  return needs


def required_needs(optimizer: optax.GradientTransformation, params: Any
                   ) -> Needs:
  """What ``optimizer`` needs from the step, read from an abstract ``init``
  (nothing is computed)."""
  return needs_of_state(jax.eval_shape(optimizer.init, params))


__all__ = ["DeclaredState", "Needs", "NeedsMarker", "StepExtras",
           "declare_needs", "needs_marker", "needs_of_state", "required_needs"]
