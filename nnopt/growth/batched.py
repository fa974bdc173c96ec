"""Many SensLI runs at once: ``vmap`` over seeds, ``lax.scan`` over epochs.

The thesis averages 30–40 runs of tiny networks over 1850 epochs per curve
(spec §4.1). Stepping them one by one through the engine loop costs a
Python round trip per step; :func:`run_batched` computes the same thing —
the runs of :class:`nnopt.engine.trainer.Trainer` with a :class:`nnopt.growth.SensLI`
hook, seed by seed — as one compiled ``scan`` over the epochs of a phase,
vectorized over the runs that share an architecture:

* run ``r`` with seed ``s_r`` starts from ``init_params(model, key(s_r))``
  and visits epoch ``e`` in the order ``default_rng([s_r, e]).permutation``,
  exactly as the engine's :class:`~nnopt.data.EpochSampler` does (full-batch
  runs use the whole training set each step);
* at each insertion epoch every run computes its full-batch sensitivities
  on its fully extended network (equal to the lr-0 epoch of equal batches),
  selects with :func:`nnopt.growth.select` (``'random'`` seeded with
  ``s_r + attempt``, like the hook), gets its layers inserted, and the
  optimizer restarts at ``lr · lr_factor``;
* runs that chose differently continue in separate groups (one compilation
  per architecture).

Equivalence with the engine loop is tested on short runs.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.growth.architecture import fully_extend, insert
from nnopt.growth.selection import select
from nnopt.growth.sensitivity import candidate_merits
from nnopt.losses import Loss
from nnopt.models import init_params
from nnopt.stats.layer_keys import by_layer


class BatchedRuns(NamedTuple):
  """Curves of ``R`` runs (row r belongs to ``seeds[r]``).

  Attributes:
    train_loss: ``(R, steps)`` loss of every step's batch before the update.
    test_error: ``(R, epochs)`` test error (fraction) after every epoch.
    test_loss: ``(R, epochs)`` test loss after every epoch.
    attempts: per run, one dict per insertion attempt (epoch, merits,
      chosen, reason).
    models: final architecture of every run.
    params: final parameters of every run.
    grad_norms: per run, ``{layer path: (steps,) ‖∇W‖_F}`` when requested
      (NaN before a layer exists).
  """

  train_loss: np.ndarray
  test_error: np.ndarray
  test_loss: np.ndarray
  attempts: list[list[dict[str, Any]]]
  models: list[nn.Module]
  params: list[Any]
  grad_norms: list[dict[str, np.ndarray]] | None


_CACHES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _stack(trees):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _unstack(tree, n):
  return [jax.tree.map(lambda a: a[i], tree) for i in range(n)]


def _phase_fn(cache, model, loss: Loss, optimizer, x, y, x_test, y_test,
              batch_size: int | None, record_norms: bool, opt_key):
  """jit(vmap over runs of scan over epochs of scan over steps), cached in
  ``cache`` (one per :func:`run_batched` call, which fixes the data)."""
  key = (model, opt_key, loss.name, batch_size, record_norms)
  if key in cache:
    return cache[key]
  n = len(x)
  steps = 1 if batch_size is None else n // batch_size
  size = n if batch_size is None else batch_size

  def batch_loss(p, xb, yb):
    return loss(model.apply({"params": p}, xb), yb)

  def train_epoch(carry, perm):
    def step(c, idx):
      p, s = c
      value, g = jax.value_and_grad(batch_loss)(p, x[idx], y[idx])
      updates, s = optimizer.update(g, s, p)
      norms = ({path: jnp.sqrt(jnp.sum(jnp.square(leaf)))
                for path, leaf in _flat_kernels(g)} if record_norms else {})
      return (optax.apply_updates(p, updates), s), (value, norms)

    batches = perm[:steps * size].reshape(steps, size)
    carry, (values, norms) = jax.lax.scan(step, carry, batches)
    logits = model.apply({"params": carry[0]}, x_test)
    err = jnp.mean(jnp.argmax(logits, -1) != y_test)
    return carry, (values, norms, err, loss(logits, y_test))

  def run(params, opt_state, perms):
    return jax.lax.scan(train_epoch, (params, opt_state), perms)

  fn = jax.jit(jax.vmap(run))
  cache[key] = fn
  return fn


def _flat_kernels(g):
  return [(layer, leaves["kernel"]) for layer, leaves in by_layer(g).items()
          if "kernel" in leaves]


def run_batched(model: nn.Module, loss: Loss, dataset, *,
                seeds: Sequence[int], learning_rate: float, num_epochs: int,
                batch_size: int | None = None,
                insert_at: Sequence[int] = (), rule: str = "max",
                position=None, lr_factor: float = 1.0,
                optimizer_fn: Callable[[float], optax.GradientTransformation]
                = optax.sgd, norm: str | None = None,
                resnet_positions: str = "after_each_block",
                resnet_w1_scale: float = 0.8, record_grad_norms: bool = False,
                chunk_epochs: int = 200) -> BatchedRuns:
  """Trains ``len(seeds)`` runs with SensLI insertions at fixed epochs.

  Args:
    model: baseline architecture.
    loss: training loss (classification: test error is recorded).
    dataset: a :class:`nnopt.data.Dataset`.
    seeds: one seed per run (init, batch order, random rule).
    learning_rate: initial learning rate; after each insertion the
      optimizer restarts at the current rate times ``lr_factor``.
    num_epochs: total epochs (full batch: epochs = iterations).
    batch_size: mini-batch size, None for full batch.
    insert_at: finished-epoch counts after which SensLI inserts.
    rule, position, norm, resnet_positions, resnet_w1_scale: see
      :func:`nnopt.growth.sensli_step`.
    optimizer_fn: ``learning_rate -> optax transformation``.
    record_grad_norms: record ``‖∇W‖_F`` of every kernel at every step.
    chunk_epochs: epochs per compiled call (bounds the index memory).

  Returns:
    A :class:`BatchedRuns`.
  """
  x = jnp.asarray(dataset.x_train)
  y = jnp.asarray(dataset.y_train)
  xt, yt = jnp.asarray(dataset.x_test), jnp.asarray(dataset.y_test)
  n, runs = len(dataset.x_train), len(seeds)
  steps = 1 if batch_size is None else n // batch_size
  bounds = sorted({int(e) for e in insert_at if 0 < e < num_epochs})
  bounds = [0] + bounds + [num_epochs]
  params0 = [init_params(model, jax.random.key(int(s)), dataset.x_train[:1])
             for s in seeds]
  groups = [(model, list(range(runs)), params0)]
  lrs = [learning_rate] * runs
  train_loss = np.zeros((runs, num_epochs * steps), np.float32)
  test_error = np.zeros((runs, num_epochs), np.float32)
  test_loss = np.zeros((runs, num_epochs), np.float32)
  attempts: list[list[dict[str, Any]]] = [[] for _ in range(runs)]
  norms: list[dict[str, np.ndarray]] = [{} for _ in range(runs)]
  # compiled functions close over this dataset's arrays: cache per dataset
  phase_fns = _CACHES.setdefault(dataset, {})
  grad_fns = phase_fns.setdefault("grad_fns", {})

  for phase, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
    new_groups = []
    for arch, members, plist in groups:
      lr = lrs[members[0]]
      optimizer = optimizer_fn(lr)
      fn = _phase_fn(phase_fns, arch, loss, optimizer, x, y, xt, yt, batch_size,
                     record_grad_norms, (optimizer_fn, lr))
      params = _stack(plist)
      opt_state = jax.vmap(optimizer.init)(params)
      for c0 in range(start, stop, chunk_epochs):
        c1 = min(c0 + chunk_epochs, stop)
        if batch_size is None:
          perms = np.broadcast_to(np.arange(n, dtype=np.int32),
                                  (len(members), c1 - c0, n))
        else:
          perms = np.stack([np.stack([
              np.random.default_rng([int(seeds[r]), e]).permutation(n)
              for e in range(c0, c1)]) for r in members]).astype(np.int32)
        (params, opt_state), (vals, gnorms, err, tloss) = fn(
            params, opt_state, jnp.asarray(perms))
        vals = np.asarray(vals).reshape(len(members), -1)
        for j, r in enumerate(members):
          train_loss[r, c0 * steps:c1 * steps] = vals[j]
          test_error[r, c0:c1] = np.asarray(err[j])
          test_loss[r, c0:c1] = np.asarray(tloss[j])
          for path, v in (gnorms or {}).items():
            series = norms[r].setdefault(
                path, np.full(num_epochs * steps, np.nan, np.float32))
            series[c0 * steps:c1 * steps] = np.asarray(v[j]).reshape(-1)
      plist = _unstack(params, len(members))
      if stop == num_epochs:
        new_groups.append((arch, members, plist))
        continue
      # -- SensLI at the end of the phase, for every run of the group ------
      ext, _, cands = fully_extend(arch, plist[0], resnet_w1_scale=resnet_w1_scale,
                                   resnet_positions=resnet_positions)
      ext_plist = [fully_extend(arch, p, resnet_w1_scale=resnet_w1_scale,
                                resnet_positions=resnet_positions)[1]
                   for p in plist]
      if (ext, loss.name) not in grad_fns:
        grad_fns[ext, loss.name] = jax.jit(jax.vmap(jax.grad(
            lambda p, m=ext: loss(m.apply({"params": p}, x), y))))
      grads = _unstack(grad_fns[ext, loss.name](_stack(ext_plist)), len(members))
      by_choice: dict[tuple, tuple] = {}
      for j, r in enumerate(members):
        merits = candidate_merits(ext, grads[j], cands, dataset.x_train.shape[1:],
                                  norm=norm)
        sel = select(merits, rule, seed=int(seeds[r]) + len(attempts[r]),
                     position=position)
        new_arch, new_p = insert(arch, plist[j], sel.chosen,
                                 resnet_w1_scale=resnet_w1_scale,
                                 resnet_positions=resnet_positions)
        attempts[r].append({"epoch": stop, "merits": merits,
                            "chosen": list(sel.chosen), "reason": sel.reason})
        lrs[r] = lrs[r] * lr_factor
        entry = by_choice.setdefault(sel.chosen, (new_arch, [], []))
        entry[1].append(r)
        entry[2].append(new_p)
      new_groups.extend(by_choice.values())
    groups = new_groups

  models, finals = [None] * runs, [None] * runs
  for arch, members, plist in groups:
    for r, p in zip(members, plist):
      models[r], finals[r] = arch, p
  return BatchedRuns(train_loss, test_error, test_loss, attempts, models,
                     finals, norms if record_grad_norms else None)
