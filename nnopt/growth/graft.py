"""Optimizer-state grafting: carry optax state across a change of architecture.

After a layer is inserted (or a layer widened) the parameter tree has new
leaves. :func:`graft` builds the new optimizer state from
``optimizer.init(new_params)`` and copies, leaf by leaf, every entry of the
old state whose *tree path* also exists in the new one: momentum traces,
Adam's ``mu``/``nu`` and every other per-parameter statistic of existing
layers (their path contains the layer's stable name), step counts and
injected hyperparameters. New layers keep their fresh state (zeros), so
grafting after no growth is the identity. This works for any optax
optimizer, chains, ``inject_hyperparams``, ``MultiSteps`` and
``apply_if_finite`` included, because it never interprets the state.

A leaf whose path exists in both states but whose shape grew (widening adds
rows/columns at the end of a kernel) gets the old values in its leading
block and fresh values in the new rows/columns. (spec-sensli §6.3)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from nnopt.growth.architecture import GrowthError
from nnopt.stats.layer_keys import SEPARATOR, key_str, leaves_by_path


def graft(old_state: Any, new_state: Any, *,
          keep_hyperparams: bool = True) -> Any:
  """The new state with every old leaf copied where the paths match.

  Args:
    old_state: optimizer state of the old parameters.
    new_state: ``optimizer.init(new_params)`` (the same optimizer, or one
      built with other hyperparameters).
    keep_hyperparams: copy ``inject_hyperparams`` hyperparameters from the old
      state (e.g. a learning rate lowered by a plateau scheduler); False keeps
      the new state's (e.g. of an optimizer rebuilt with a new rate).

  Returns:
    A state with the structure of ``new_state``.

  Raises:
    GrowthError: a matched leaf shrank or changed rank or dtype.
  """
  old = leaves_by_path(old_state)

  def pick(path, fresh):
    key = key_str(path)
    if key not in old:
      return fresh
    # also ``hyperparams_states`` of stateful injected hyperparameters
    if not keep_hyperparams and any("hyperparams" in k
                                    for k in key.split(SEPARATOR)):
      return fresh
    prev = old[key]
    prev_shape, shape = jnp.shape(prev), jnp.shape(fresh)
    if prev_shape == shape:
      return prev
    if len(prev_shape) != len(shape) or any(
        a > b for a, b in zip(prev_shape, shape)):
      raise GrowthError(f"cannot graft optimizer state at {key}: "
                        f"shape {prev_shape} -> {shape} does not grow")
    index = tuple(slice(0, a) for a in prev_shape)
    return jnp.asarray(fresh).at[index].set(prev)

  return jax.tree_util.tree_map_with_path(pick, new_state)


def graft_optimizer(optimizer: optax.GradientTransformation, old_state: Any,
                    new_params: Any, **kwargs) -> Any:
  """``graft(old_state, optimizer.init(new_params))``."""
  return graft(old_state, optimizer.init(new_params), **kwargs)


def scale_hyperparam(opt_state: Any, name: str, factor: float) -> Any:
  """Multiplies an injected hyperparameter (e.g. ``'learning_rate'``).

  Finds every ``inject_hyperparams`` state in ``opt_state`` that holds
  ``name``; raises GrowthError if there is none.
  """
  found = []

  def visit(node):
    if isinstance(node, (optax.InjectHyperparamsState,
                         optax.InjectStatefulHyperparamsState)) and (
                             name in node.hyperparams):
      found.append(True)
      hyper = dict(node.hyperparams)
      hyper[name] = hyper[name] * factor
      return node._replace(hyperparams=hyper)
    return node

  is_inject = lambda n: isinstance(n, (optax.InjectHyperparamsState,
                                       optax.InjectStatefulHyperparamsState))
  out = jax.tree.map(visit, opt_state, is_leaf=is_inject)
  if not found:
    raise GrowthError(f"optimizer state has no injected hyperparameter "
                      f"{name!r}; wrap the optimizer in "
                      "optax.inject_hyperparams or rebuild it instead")
  return out
