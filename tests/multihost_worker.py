"""One process of the two-process test (run by tests/test_multihost.py).

Usage: python multihost_worker.py PORT PROCESS_ID OUT_FILE
"""

import sys

import jax

port, process_id, out_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
from nnopt.engine import parallel  # noqa: E402

parallel.initialize_distributed(f"127.0.0.1:{port}", 2, process_id)

import numpy as np  # noqa: E402
import optax  # noqa: E402

from nnopt import losses  # noqa: E402
from nnopt.data import load_dataset  # noqa: E402
from nnopt.models import FNN  # noqa: E402
from nnopt.engine.trainer import Trainer  # noqa: E402

assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
trainer = Trainer(FNN((16, 16, 2), activation="tanh"),
                  losses.softmax_cross_entropy, optax.sgd(0.1, momentum=0.9),
                  load_dataset("spiral"), batch_size=45, num_steps=10, seed=3,
                  eval_every=5, progress=False)
run = trainer.fit()
if process_id == 0:
  flat = {"/".join(str(k.key) for k in path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(run.params)}
  flat["losses"] = np.array([r["train_loss"] for r in trainer.history])
  flat["test_accuracy"] = np.array(trainer.history[-1]["test_accuracy"])
  np.savez(out_file, **flat)
jax.distributed.shutdown()
