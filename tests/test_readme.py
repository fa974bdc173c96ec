"""Runs the README's ```python blocks in order, in one namespace, as a user would
(```py blocks are fragments, e.g. of a config file, and are not run)."""

import contextlib
import io
import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def python_blocks():
  with open(README) as f:
    return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  blocks = python_blocks()
  assert len(blocks) >= 2
  namespace: dict = {}
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    for block in blocks:
      exec(compile(block, README, "exec"), namespace)
  printed = out.getvalue()
  accuracy = float(re.search(r"test accuracy ([0-9.]+)", printed).group(1))
  assert accuracy > 0.9, printed
  assert namespace["trainer"].history[-1]["test_accuracy"] > 0.9
  assert namespace["norms"].shape == (45,)
  msvag_loss = float(re.search(r"M-SVAG loss ([0-9.]+)", printed).group(1))
  assert msvag_loss < 0.6                            # from log 2 = 0.69
  precond_loss = float(re.search(r"preconditioned loss ([0-9.]+)", printed).group(1))
  assert precond_loss < 0.1                          # SGD at lr 0.1: ~0.6
  assert "(5, 5, 2)" in printed                      # the grown network
  fine_loss = float(re.search(r"fine loss after 100 steps ([0-9.e+-]+)",
                              printed).group(1))
  assert fine_loss < 1e-2


def test_readme_per_example_norms_match_vmap_grad(tmp_path, monkeypatch):
  import jax
  import jax.numpy as jnp
  import numpy as np
  monkeypatch.chdir(tmp_path)
  tour = python_blocks()[0].replace("range(500)", "range(3)")
  namespace: dict = {}
  with contextlib.redirect_stdout(io.StringIO()):
    exec(compile(tour, README, "exec"), namespace)
  model, params, data = namespace["model"], namespace["params"], namespace["data"]
  x, y = data.x_train[:45], data.y_train[:45]
  _, _, _, norms = namespace["train_step"](params, namespace["opt_state"], x, y)

  def example_loss(p, xi, yi):
    logits = model.apply({"params": p}, xi[None])
    return namespace["softmax_cross_entropy"](logits, yi[None])

  grads = jax.vmap(jax.grad(example_loss), (None, 0, 0))(params, x, y)
  ref = jnp.linalg.norm(grads["dense_0"]["kernel"].reshape(45, -1), axis=-1)
  np.testing.assert_allclose(norms, ref, rtol=1e-4)
