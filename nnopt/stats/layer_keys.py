"""Parameter pytrees keyed by layer path: one convention for the whole library.

A layer is the innermost dict of a flax parameter tree that holds leaves
(``{'kernel': ..., 'bias': ...}``); its key is the ``'/'``-joined path of dict
keys from the root (``'block_0/dense_1'``), the same key that
:func:`nnopt.stats.capture.capture` uses for ``stats`` and that
:func:`nnopt.models.layers.layer_path` gives a module.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import jax
from flax import traverse_util

SEPARATOR = "/"


def key_str(path: Iterable[Any]) -> str:
  """``'a/b/c'`` from a tuple of keys or a ``jax.tree_util`` key path."""
  return SEPARATOR.join(
      str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
      for k in path)


def leaves_by_path(tree: Any) -> dict[str, Any]:
  """``{'layer/leaf': leaf}`` for every leaf of a pytree."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {key_str(path): leaf for path, leaf in flat}


def by_layer(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """``{layer path: {leaf name: leaf}}`` from a nested parameter dict."""
  layers: dict[str, dict[str, Any]] = {}
  for path, leaf in traverse_util.flatten_dict(dict(params)).items():
    layers.setdefault(SEPARATOR.join(path[:-1]), {})[path[-1]] = leaf
  return layers


def from_layers(layers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """Inverse of :func:`by_layer`: the nested dict."""
  flat = {}
  for name, leaves in layers.items():
    prefix = tuple(name.split(SEPARATOR)) if name else ()
    for leaf_name, leaf in leaves.items():
      flat[prefix + (leaf_name,)] = leaf
  return traverse_util.unflatten_dict(flat)


def subtree(tree: Mapping[str, Any], path: str) -> Any:
  """The node at ``'a/b'`` of a nested dict."""
  node = tree
  for key in path.split(SEPARATOR) if path else ():
    node = node[key]
  return node


def set_subtree(tree: dict, path: str, value: Any) -> None:
  """Sets the node at ``'a/b'`` of a nested dict in place (creating dicts)."""
  keys = path.split(SEPARATOR)
  node = tree
  for key in keys[:-1]:
    node = node.setdefault(key, {})
  node[keys[-1]] = value


__all__ = ["SEPARATOR", "by_layer", "from_layers", "key_str",
           "leaves_by_path", "set_subtree", "subtree"]
