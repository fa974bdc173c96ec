"""Kreis ch. 5: the three MNIST experiments' training setting — the
experiment table (:data:`EXPS`), the network, loss and learning-rate grids of
one experiment at full or quick size (:class:`Setting`), and the sweep that
picks the champions (:func:`sweep`)."""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt import losses
from nnopt.stats.capture import capture
from nnopt.data import Dataset
from nnopt.engine.runs import RunSpec, RunsTrainer
from nnopt.models import FNN, init_params
from experiments import kreis_ch5 as fs
from nnopt.preconditioning.frobenius import scale_by_frobenius

EXPS = {
    "exp1": dict(widths=(100, 100, 100, 10), act="relu", task="class",
                 batch=100, epochs=30, sgd_grid=fs.EXP1_GRID,
                 pre_grid=fs.EXP1_GRID, quick=dict(epochs=10, sgd=range(1, 6),
                                                   pre=range(17, 22))),
    "exp2": dict(widths=(1000, 500, 250, 30, 250, 500, 1000), act="sigmoid",
                 task="ae", batch=1000, epochs=30, sgd_grid=fs.EXP2_SGD_GRID,
                 pre_grid=fs.EXP2_PRECOND_GRID,
                 quick=dict(epochs=40, batch=250,
                            widths=(200, 100, 50, 30, 50, 100, 200),
                            sgd=(4, 6, 8, 10), pre=(0, 5, 10, 15))),
    "exp3": dict(widths=(100, 10), act="sigmoid", task="class", batch=1000,
                 epochs=30, sgd_grid=fs.EXP3_GRID + fs.EXP3_SGD_EXTENDED,
                 pre_grid=fs.EXP3_GRID,
                 quick=dict(epochs=40, batch=250, sgd=(96, 98, 99, 100, 102),
                            pre=(63, 65, 67, 69, 71))),
}


def torch_mse(dim: int) -> losses.Loss:
  """PyTorch ``MSELoss(reduction='mean')`` per example; samples N(ŷ, ½I)."""
  def per_example(out, target):
    return jnp.mean((out - target) ** 2, axis=-1)

  def sample(key, out):
    out = jax.lax.stop_gradient(out)
    return out + jnp.sqrt(0.5) * jax.random.normal(key, out.shape, out.dtype)

  del dim
  return losses.Loss("torch_mse", per_example, sample, False)


def ma(values, window):
  kernel = np.ones(window) / window
  return np.convolve(values, kernel, mode="valid")


class Setting:
  """One experiment at full size or quick size."""

  def __init__(self, name, quick, data, seed=0):
    spec = dict(EXPS[name])
    q = spec.pop("quick")
    self.name, self.quick, self.seed = name, quick, seed
    self.batch = q.get("batch", spec["batch"]) if quick else spec["batch"]
    self.epochs = q["epochs"] if quick else spec["epochs"]
    widths = q.get("widths", spec["widths"]) if quick else spec["widths"]
    x = data.x_train.reshape(len(data.x_train), -1).astype(np.float32)
    self.x = x
    self.dim = x.shape[1]
    if spec["task"] == "ae":
      widths = tuple(widths) + (self.dim,)
      self.y, self.loss, self.g_scale = x, torch_mse(self.dim), float(self.dim)
    else:
      self.y, self.loss, self.g_scale = (data.y_train,
                                         losses.softmax_cross_entropy, 1.0)
    self.model = FNN(tuple(widths), activation=spec["act"],
                     init_scheme="pytorch")
    self.damping = fs.DAMPING[name]
    self.sgd_grid = [spec["sgd_grid"][i] for i in q["sgd"]] if quick else list(
        spec["sgd_grid"])
    self.pre_grid = [spec["pre_grid"][i] for i in q["pre"]] if quick else list(
        spec["pre_grid"])
    self.steps_per_epoch = len(x) // self.batch
    self.steps = self.steps_per_epoch * self.epochs
    self.window = max(5, self.steps // 10) if quick else 200
    self.params = init_params(self.model, jax.random.key(seed), x[:1])
    self.layers = sorted(self.params)

  def indices(self, epochs):
    rng = np.random.default_rng(self.seed)
    return np.concatenate([rng.permutation(len(self.x))[
        :self.steps_per_epoch * self.batch].reshape(-1, self.batch)
                           for _ in range(epochs)])

  def optimizer(self, diagnostics):
    return scale_by_frobenius(self.damping, self.damping,
                              cotangent_scale=self.g_scale,
                              track_norms=diagnostics,
                              track_spectra=diagnostics)

  def step_fn(self, method, diagnostics):
    pre = method == "frobenius"
    tx = self.optimizer(diagnostics)
    x_all, y_all = jnp.asarray(self.x), jnp.asarray(self.y)

    def step(params, opt_state, lr, idx, key):
      cap = capture(self.model, params, x_all[idx], y_all[idx], self.loss,
                    fisher_samples=1 if pre else 0, rng=key, with_stats=pre)
      if pre:
        updates, opt_state = tx.update(cap.grads, opt_state, stats=cap.stats)
      else:
        updates = cap.grads
      params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
      out = {"loss": cap.loss}
      if diagnostics:
        eucl = jnp.stack([jnp.linalg.norm(cap.grads[l]["kernel"])
                          for l in self.layers])
        out["euclidean"] = eucl
        if pre:
          out["frobenius"] = jnp.stack([opt_state.norms[l][1]
                                        for l in self.layers])
          out["frobenius_thesis"] = jnp.stack([opt_state.norms[l][2]
                                               for l in self.layers])
          out["spectra"] = {l: opt_state.spectra[l] for l in self.layers}
      return params, opt_state, out

    return step, tx

  def grid_losses(self, method, lrs, epochs=None):
    """Per-step losses ``(lr, step)`` of a step-size grid: one program on the
    engine's runs axis (NaN after a run diverged)."""
    if method == "frobenius":
      factory = lambda learning_rate: optax.chain(
          self.optimizer(False), optax.scale(-learning_rate))
    else:
      factory = lambda learning_rate: optax.sgd(learning_rate)
    classification = self.loss is losses.softmax_cross_entropy
    data = Dataset(x_train=self.x, y_train=self.y, x_test=self.x[:1],
                   y_test=self.y[:1], name=self.name,
                   num_classes=10 if classification else None,
                   task="classification" if classification else "regression")
    steps = self.steps_per_epoch * (epochs or self.epochs)
    trainer = RunsTrainer(
        self.model, self.loss, factory, data, batch_size=self.batch,
        num_steps=steps, log_every=1, progress=sys.stderr.isatty(),
        params=self.params,
        runs=[RunSpec(seed=self.seed, hparams={"learning_rate": float(lr)})
              for lr in lrs])
    out = np.full((len(lrs), steps), np.nan)
    for row, slot in enumerate(trainer.fit()):
      for record in slot.history:
        if "train_loss" in record and "nonfinite_step" not in record:
          out[row, record["step"] - 1] = record["train_loss"]
    return out

  def train(self, method, lrs, epochs=None, diagnostics=False):
    """Runs every lr in ``lrs`` with per-step diagnostics; returns per-step
    outputs stacked ``(lr, step)`` (the champions' diagnostics runs; the
    grids run on the engine's runs axis, :meth:`grid_losses`)."""
    step, tx = self.step_fn(method, diagnostics)
    step = jax.jit(step)
    idx = np.asarray(self.indices(epochs or self.epochs))
    keys = jax.random.split(jax.random.key(1), len(idx))
    runs = []
    for lr in lrs:
      params, opt_state, outs = self.params, tx.init(self.params), []
      for i in range(len(idx)):
        params, opt_state, out = step(params, opt_state, jnp.float32(lr),
                                      idx[i], keys[i])
        outs.append(out)
      outs = jax.device_get(outs)
      runs.append(jax.tree.map(lambda *a: np.stack(a), *outs))
    return jax.tree.map(lambda *a: np.stack(a), *runs)

  def time_per_step(self, method, lr, repeats=30):
    step, tx = self.step_fn(method, False)
    step = jax.jit(step)
    idx = jnp.asarray(self.indices(1))
    params, state = self.params, tx.init(self.params)
    key = jax.random.key(0)
    params, state, out = step(params, state, lr, idx[0], key)
    jax.block_until_ready(out)
    start = time.perf_counter()
    for i in range(repeats):
      params, state, out = step(params, state, lr, idx[i % len(idx)], key)
    jax.block_until_ready((params, out))
    return (time.perf_counter() - start) / repeats


def sweep(setting: Setting):
  """Grid sweeps, champions, champion diagnostics and timings."""
  res = {}
  for method, grid in (("sgd", setting.sgd_grid),
                       ("frobenius", setting.pre_grid)):
    loss = setting.grid_losses(method, grid)
    finals = np.array([ma(np.nan_to_num(l, nan=1e9), setting.window)[-1]
                       for l in loss])
    best = int(np.argmin(finals))
    champ = setting.train(method, [grid[best]], diagnostics=True)
    res[method] = dict(grid=grid, losses=loss, finals=finals, best=best,
                       lr=grid[best], diag=jax.tree.map(lambda a: a[0], champ),
                       time=setting.time_per_step(method, grid[best]))
  return res
