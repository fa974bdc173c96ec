"""The engine: the pure step, the jitted loop with hooks, the device mesh and
checkpoints.

* :mod:`~nnopt.engine.step`: ``TrainState``, the train and eval steps;
* :mod:`~nnopt.engine.trainer`: ``Trainer`` and ``Run``;
* :mod:`~nnopt.engine.parallel`: the device mesh, batch sharding, multi-host;
* :mod:`~nnopt.engine.checkpoint`: orbax checkpoints.
"""

from nnopt.engine.step import NeedsError, TrainState
from nnopt.engine.run import Run
from nnopt.engine.trainer import Hook, NonFiniteLossError, Trainer

__all__ = ["NeedsError", "Hook", "NonFiniteLossError", "Run", "TrainState",
           "Trainer"]
