"""The engine: the pure step, the jitted loop with hooks, the device mesh and
checkpoints.

* :mod:`~nnopt.engine.step`: ``TrainState``, the train and eval steps;
* :mod:`~nnopt.engine.trainer`: ``Trainer`` and ``Run``;
* :mod:`~nnopt.engine.parallel`: the device mesh, batch sharding, multi-host;
* :mod:`~nnopt.engine.checkpoint`: orbax checkpoints.
"""

from nnopt.engine.step import CaptureSpec, TrainState
from nnopt.engine.trainer import Hook, NonFiniteLossError, Run, Trainer

__all__ = ["CaptureSpec", "Hook", "NonFiniteLossError", "Run", "TrainState",
           "Trainer"]
