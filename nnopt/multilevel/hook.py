"""MLSGD V-cycles on nnopt's engine loop, as a :class:`nnopt.train.Hook`.

The hook swaps the run's level with ``run.replace(model=, params=,
optimizer=)``: at the start of a cycle it restricts the fine weights all the
way down and trains the coarsest model; after T_l epochs on level l it adds the
prolonged step to the restricted start point of level l + 1 and trains there
(spec-mlsgd §1.6). The engine's epoch counter counts epochs on every level, so
a schedule of the global epoch count is the thesis's step-size rule; the hook
sets it through ``optax.inject_hyperparams`` at every switch.

Coarse models see the fine data set (e.g. an ``ODEResNet`` with
``input_pool=1`` pools its inputs itself). Gradient correction runs through
:func:`mlsgd_direction`, whose state (reference point, shift, λ) the hook sets
per level; VR uses the step's ``value_fn`` extra arg. Full gradients for the
correction are computed by the hook over the training set.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from nnopt.losses import Loss
from nnopt.multilevel.mlsgd import full_gradient
from nnopt.multilevel.transfer import Transfer
from nnopt.train import Hook, Run


class MLSGDDirectionState(NamedTuple):
  """Reference point w0_l, shift (v_l or c_l), λ and whether VR is on."""

  ref: Any
  shift: Any
  lam: jax.Array
  vr: jax.Array


def mlsgd_direction(regularizer: Callable[[Any], jax.Array] | None = None
                    ) -> optax.GradientTransformationExtraArgs:
  """d = g + ∇reg(w) + shift + λ(w − ref) [− ∇(value_fn + reg)(ref) if vr].

  With zero shift, λ = 0 and vr off it adds only the regularizer gradient.
  """
  reg = regularizer or (lambda p: jnp.zeros(()))

  def init_fn(params):
    zeros = otu.tree_zeros_like(params)
    return MLSGDDirectionState(zeros, zeros, jnp.zeros(()), jnp.zeros((), bool))

  def update_fn(updates, state, params=None, *, value_fn=None, **extra):
    del extra
    d = otu.tree_add(updates, jax.grad(reg)(params))
    d = otu.tree_add(d, state.shift)
    d = otu.tree_add_scale(d, state.lam, otu.tree_sub(params, state.ref))
    if value_fn is not None:
      ref_grad = jax.lax.cond(
          state.vr, lambda r: jax.grad(lambda p: value_fn(p) + reg(p))(r),
          otu.tree_zeros_like, state.ref)
      d = otu.tree_sub(d, ref_grad)
    return d, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class MLSGDHook(Hook):
  """V-cycles over ``models`` (coarsest → finest) inside ``Trainer.fit``.

  Start the trainer with the finest model. Args:
    models: one flax model per level, coarsest first.
    transfers: ``transfers[l]`` maps level l + 1 to level l.
    epochs: T_l per level, coarsest first.
    lr: float or function of the global epoch count.
    loss / dataset: for the full gradients of gradient correction.
    variant: ``'none'``, ``'det'``, ``'det_vr'``, ``'stoch'``, ``'stoch_vr'``.
    lam: λ with gradient correction.
    stoch_fraction: q for stochastic correction.
    regularizer: params → extra loss added on every level.
    first_cycle_no_gc: the first cycle runs without correction.
    n_cycles: stop the run (``run.stop``) on the fine level after this many
      cycles, so that the final evaluation sees the fine model.
  """

  def __init__(self, models: Sequence[nn.Module], transfers: Sequence[Transfer],
               epochs: Sequence[int], *, lr: float | Callable[[int], float],
               loss: Loss | None = None, dataset=None, variant: str = "none",
               lam: float = 5.0, stoch_fraction: float = 0.03125,
               regularizer: Callable[[Any], jax.Array] | None = None,
               first_cycle_no_gc: bool = True, seed: int = 0,
               n_cycles: int | None = None):
    if len(transfers) != len(models) - 1 or len(epochs) != len(models):
      raise ValueError("MLSGDHook needs one transfer less than models and one "
                       "epoch count per level")
    if variant != "none" and (loss is None or dataset is None):
      raise ValueError("gradient correction needs loss= and dataset=")
    self.models, self.transfers, self.epochs = list(models), list(transfers), list(epochs)
    self.lr = lr if callable(lr) else (lambda _: lr)
    self.loss, self.dataset, self.variant = loss, dataset, variant
    self.lam, self.q, self.first_no_gc = lam, stoch_fraction, first_cycle_no_gc
    self.regularizer, self.seed, self.n_cycles = regularizer, seed, n_cycles
    self.optimizer = optax.chain(
        mlsgd_direction(regularizer),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))
    self.top = len(models) - 1
    self.level, self.cycle, self.left = self.top, 0, 0
    self.w0: dict[int, Any] = {}
    self.c: dict[int, Any] = {}
    self.switches: list[tuple[int, int]] = []

  # -- helpers --------------------------------------------------------------

  def _loss_fn(self, model):
    def loss_fn(params, x, y, w):
      out = self.loss(model.apply({"params": params}, x), y, w)
      return out + (self.regularizer(params) if self.regularizer else 0.0)
    return loss_fn

  def _enter(self, run: Run, level: int, params) -> None:
    use_gc = self.variant != "none" and not (self.first_no_gc and self.cycle == 0)
    vr = self.variant.endswith("_vr")
    zeros = otu.tree_zeros_like(params)
    shift, lam = zeros, 0.0
    if use_gc and vr:
      shift, lam = self.c[level], (self.lam if level < self.top else 0.0)
    elif use_gc and level < self.top:
      ds = self.dataset
      g_ref = full_gradient(self._loss_fn(self.models[level]), self.w0[level],
                            jnp.asarray(ds.x_train), jnp.asarray(ds.y_train), 1000)
      shift, lam = otu.tree_sub(self.c[level], g_ref), self.lam
    run.replace(model=self.models[level], params=params,
                optimizer=self.optimizer)
    direction_state = MLSGDDirectionState(
        self.w0[level], shift, jnp.asarray(lam, jnp.float32),
        jnp.asarray(use_gc and vr))
    sgd_state = run.state.opt_state[1]
    sgd_state.hyperparams["learning_rate"] = jnp.asarray(
        self.lr(run.epoch), jnp.float32)
    run.replace(opt_state=(direction_state, sgd_state))
    self.level, self.left = level, self.epochs[level]
    self.switches.append((run.step, level))
    run.log["mlsgd_level"] = level

  def _start_cycle(self, run: Run) -> None:
    params = run.params
    self.w0 = {self.top: params}
    use_gc = self.variant != "none" and not (self.first_no_gc and self.cycle == 0)
    G = None
    if use_gc:
      ds = self.dataset
      x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
      index = None
      if self.variant.startswith("stoch"):
        key = jax.random.key(self.seed + self.cycle)
        m = max(1, int(round(self.q * len(x))))
        index = jax.device_get(jax.random.choice(key, len(x), (m,), replace=False))
      G = full_gradient(self._loss_fn(self.models[self.top]), params, x, y,
                        1000, index)
    self.c = {self.top: G}
    for l in range(self.top, 0, -1):
      self.w0[l - 1] = self.transfers[l - 1].restrict_params(self.w0[l])
      self.c[l - 1] = (None if G is None else
                       self.transfers[l - 1].restrict_grad(self.c[l]))
    self._enter(run, 0, self.w0[0])

  # -- Hook API -------------------------------------------------------------

  def on_start(self, run: Run) -> None:
    self._start_cycle(run)

  def on_epoch_end(self, run: Run) -> None:
    self.left -= 1
    if self.left > 0:
      _, sgd_state = run.state.opt_state
      sgd_state.hyperparams["learning_rate"] = jnp.asarray(
          self.lr(run.epoch), jnp.float32)
      run.replace(opt_state=(run.state.opt_state[0], sgd_state))
      return
    if self.level < self.top:
      step = otu.tree_sub(run.params, self.w0[self.level])
      up = self.level + 1
      self._enter(run, up, otu.tree_add(
          self.w0[up], self.transfers[self.level].prolong(step)))
      return
    self.cycle += 1
    if self.n_cycles is not None and self.cycle >= self.n_cycles:
      run.stop = True
      return
    self._start_cycle(run)

  def state_dict(self) -> dict[str, Any]:
    return {"cycle": self.cycle}
