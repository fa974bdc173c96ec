"""Config files: Python files whose ``get_config()`` returns the config tree."""

from __future__ import annotations

import importlib.util
import os

from nnopt.config.errors import ConfigError
from nnopt.config.schema import to_plain


def load_config_file(path: str | os.PathLike[str]):
  """Runs ``get_config()`` of a config file; returns ``(name, config)``.

  Raises:
    ConfigError: missing file, no ``get_config``, or an error while running it
      (the message quotes the error and its line).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path!r} does not exist")
  if not path.endswith(".py"):
    raise ConfigError(f"config file {path!r} must be a Python file (.py) "
                      "defining get_config()")
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"nnopt_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f"config file {path!r} line {e.lineno}: syntax error: "
                      f"{e.msg}") from None
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"config file {path!r} failed to load: "
                      f"{type(e).__name__}: {e}") from None
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"config file {path!r} defines no get_config()")
  try:
    config = module.get_config()
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"get_config() of {path!r} raised "
                      f"{type(e).__name__}: {e}") from None
  plain = to_plain(config)
  if not isinstance(plain, dict):
    raise ConfigError(f"get_config() of {path!r} must return a ConfigDict or "
                      f"dict, got {type(config).__name__}")
  return plain.get("name") or name, config


__all__ = ["load_config_file"]
