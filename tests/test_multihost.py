"""Two JAX processes on 127.0.0.1 (gloo CPU collectives), each feeding its
local half of the global batch, reach the parameters of one process."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import optax

from nnopt import losses

from nnopt.engine import parallel
from nnopt.data import load_dataset
from nnopt.models import FNN
from nnopt.engine.trainer import Trainer


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
  port = _free_port()
  out = tmp_path / "params.npz"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu")
  worker = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
  procs = [subprocess.Popen([sys.executable, worker, str(port), str(i), str(out)],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = [p.communicate(timeout=300)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]

  trainer = Trainer(FNN((16, 16, 2), activation="tanh"),
                    losses.softmax_cross_entropy, optax.sgd(0.1, momentum=0.9),
                    load_dataset("spiral"), batch_size=45, num_steps=10,
                    seed=3, eval_every=5, progress=False,
                    mesh=parallel.data_mesh(jax.devices()[:1]))
  run = trainer.fit()
  got = np.load(out)
  np.testing.assert_allclose(got["losses"],
                             [r["train_loss"] for r in trainer.history],
                             rtol=1e-5)
  np.testing.assert_allclose(got["test_accuracy"],
                             trainer.history[-1]["test_accuracy"], rtol=1e-6)
  for path, leaf in jax.tree_util.tree_leaves_with_path(run.params):
    key = "/".join(str(k.key) for k in path)
    np.testing.assert_allclose(got[key], leaf, rtol=1e-5, atol=1e-7)
