"""The engine: the pure step, the jitted loop with hooks, the device mesh and
checkpoints.

* :mod:`~nnopt.engine.step`: ``TrainState``, the train and eval steps;
* :mod:`~nnopt.engine.trainer`: ``Trainer`` and ``Run``;
* :mod:`~nnopt.engine.parallel`: the device mesh, batch sharding, multi-host;
* :mod:`~nnopt.engine.checkpoint`: orbax checkpoints with a checksum manifest;
* :mod:`~nnopt.engine.resume`: the newest intact checkpoint, the metrics log;
* :mod:`~nnopt.engine.signals`: SIGINT/SIGTERM stop at a step boundary.
"""

from nnopt.engine.checkpoint import CheckpointError
from nnopt.engine.resume import ResumeError
from nnopt.engine.run import Run
from nnopt.engine.signals import Interrupted
from nnopt.engine.step import NeedsError, TrainState
from nnopt.engine.trainer import Hook, NonFiniteLossError, Trainer

__all__ = ["CheckpointError", "Hook", "Interrupted", "NeedsError",
           "NonFiniteLossError", "ResumeError", "Run", "TrainState", "Trainer"]
