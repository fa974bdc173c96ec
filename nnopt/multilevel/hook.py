"""MLSGD V-cycles on nnopt's engine loop: the engine adapter of MLSGD.

:class:`MLSGDHook` is a :class:`nnopt.hooks.Hook`; the algorithm's pieces are
pure functions (:mod:`nnopt.multilevel.mlsgd`) and optax transforms
(:mod:`nnopt.multilevel.mlsgd_transforms`), and this module only drives them
from the loop.

The hook swaps the run's level with ``run.replace(model=, params=,
optimizer=)``: at the start of a cycle it restricts the fine weights down to
the coarsest level that the recursion gates (3.4)/(3.5) admit and trains
there; after T_l epochs on level l it adds the prolonged step to the
restricted start point of level l + 1 and trains there (spec-mlsgd §1.6). The
engine's epoch counter counts epochs on every level, so a schedule of the
global epoch count is the thesis's step-size rule; the hook sets it through
``optax.inject_hyperparams`` at every switch and epoch.

Coarse models see the fine data set (e.g. an ``ODEResNet`` with
``input_pool=1`` pools its inputs itself). Gradient correction runs through
:func:`~nnopt.multilevel.mlsgd_transforms.mlsgd_direction`, whose state
(reference point, shift, λ) the hook sets per level; VR uses the step's
``value_fn`` extra arg. Full gradients for the correction, the gates and the
angle condition are computed by the hook over the training set.

The angle condition (3.3) (Algorithm 5: a rejected step ends the level and
returns its last accepted iterate): ``'per_step'`` checks every step inside the jitted step
(:func:`~nnopt.multilevel.mlsgd_transforms.angle_guard`; a rejected step and
every later step of the level are zero updates) and the hook reads the accept
flag once per epoch; ``'per_epoch'`` checks at the
epoch end and restores the epoch's start point. A rejection ends the level's
loop. With the checks and the gates off the loop reads nothing back from the
device.

On the runs axis (:class:`nnopt.engine.runs.RunsTrainer`) every run has its
own hook, and the levels' optimizers are shared objects
(:func:`level_optimizer`; per-run values such as the step size live in their
state): the runs whose hooks switch levels at the same step form one group
per level, one compiled program each. A run whose schedule departs (other
T_l, a rejection by (3.3), a gate) leaves the group and joins the runs on its
new level. The per-step angle guard closes over the prolongation, so with it
the runs share a program only when their hooks share the transfer objects.

Evaluation: the engine evaluates whatever level is current; the thesis
evaluates the fine model after every fine-level epoch. ``evaluate`` (a
function of the fine parameters) is called at the end of each fine-level
epoch, before the hook switches levels, and its metrics go into that step's
record as ``fine_<name>``. ``record_grad_norm`` keeps ‖∇F_L(w_{L,k,0})‖² at
every cycle start (the quantity of the thesis's convergence bounds, Table 3.1)
in ``grad_norm2`` and the record's ``mlsgd_grad_norm2``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from nnopt.hooks import Hook, RunView
from nnopt.losses import Loss
from nnopt.multilevel.mlsgd import (MLSGDConfig, angle_ok, full_gradient,
                                    gates_ok)
from nnopt.multilevel.mlsgd_transforms import (AngleGuardState, angle_guard,
                                               mlsgd_direction)
from nnopt.multilevel.transfer import Transfer, compose


def _build_level_optimizer(regularizer, variance_reduction: bool,
                           mu: float | None, transfers: tuple[Transfer, ...]
                           ) -> optax.GradientTransformation:
  base = optax.chain(
      mlsgd_direction(regularizer, variance_reduction=variance_reduction),
      optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))
  if mu is None:
    return base
  return angle_guard(base, compose(*reversed(transfers)).prolong, mu)


@functools.lru_cache(maxsize=256)
def _cached_level_optimizer(regularizer, variance_reduction, mu, transfers):
  return _build_level_optimizer(regularizer, variance_reduction, mu, transfers)


def level_optimizer(regularizer: Callable[[Any], jax.Array] | None,
                    variance_reduction: bool, mu: float | None = None,
                    transfers: tuple[Transfer, ...] = ()
                    ) -> optax.GradientTransformation:
  """The optimizer of one MLSGD level: ``mlsgd_direction`` then SGD with an
  injected step size (and the per-step angle guard (3.3) when ``mu`` is set,
  through ``transfers``: the hook's ``transfers[l:]`` of level l, coarsest
  first, prolong its steps to the finest level).

  Equal settings give the same object (cached; the regularizer and the
  transfers by identity), so that hooks built apart share their levels'
  programs: the engine's runs axis groups runs by optimizer identity, and
  every per-run value (step size, reference point, shift, λ, G_L) lives in
  the optimizer's state. Unhashable settings build a fresh object.
  """
  try:
    return _cached_level_optimizer(regularizer, bool(variance_reduction),
                                   mu, tuple(transfers))
  except TypeError:  # an unhashable regularizer or transfer
    return _build_level_optimizer(regularizer, variance_reduction, mu,
                                  tuple(transfers))


class MLSGDHook(Hook):
  """V-cycles over ``models`` (coarsest → finest) inside ``Trainer.fit``.

  Start the trainer with the finest model. Args:
    models: one flax model per level, coarsest first.
    transfers: ``transfers[l]`` maps level l + 1 to level l.
    epochs: T_l per level, coarsest first (a level with 0 epochs is passed
      through).
    lr: float or function of the global epoch count.
    loss / dataset: for the full gradients of gradient correction, gates and
      the angle condition.
    variant: ``'none'``, ``'det'``, ``'det_vr'``, ``'stoch'``, ``'stoch_vr'``.
    lam: λ with gradient correction.
    stoch_fraction: q for stochastic correction.
    coarse_term: ``'full'`` or ``'same_sample'`` (stoch without VR).
    regularizer: params → extra loss added on every level.
    first_cycle_no_gc: the first cycle runs without correction.
    angle_check / mu: (3.3) ``'off'``, ``'per_step'`` or ``'per_epoch'``.
    eta / eps: the recursion gates (3.4)/(3.5); None disables.
    grad_chunk: chunk size of the full-gradient passes.
    n_cycles: stop the run (``run.stop``) on the fine level after this many
      cycles, so that the final evaluation sees the fine model.
    evaluate: fine params → metrics, after every fine-level epoch (also an
      attribute that may be set after construction, e.g. on a hook built
      from a config).
    record_grad_norm: compute ‖∇F_L‖² over the training set at every cycle
      start (needs ``loss=`` and ``dataset=``).

  Counters: ``switches`` ((step, level) per level entered), ``level_epochs``,
  ``rejected`` (levels ended by (3.3)), ``lowest`` (the coarsest level of
  each cycle) and ``grad_norm2``; the metrics get ``mlsgd_level``,
  ``mlsgd_rejected``, ``mlsgd_cycle`` (on the fine level's records) and
  ``fine_*``.
  """

  def __init__(self, models: Sequence[nn.Module], transfers: Sequence[Transfer],
               epochs: Sequence[int], *, lr: float | Callable[[int], float],
               loss: Loss | None = None, dataset=None, variant: str = "none",
               lam: float = 5.0, stoch_fraction: float = 0.03125,
               coarse_term: str = "full",
               regularizer: Callable[[Any], jax.Array] | None = None,
               first_cycle_no_gc: bool = True, angle_check: str = "off",
               mu: float = 0.0, eta: float | None = None,
               eps: float | None = None, grad_chunk: int = 1000,
               seed: int = 0, n_cycles: int | None = None,
               evaluate: Callable[[Any], dict[str, float]] | None = None,
               record_grad_norm: bool = False):
    if len(transfers) != len(models) - 1 or len(epochs) != len(models):
      raise ValueError("MLSGDHook needs one transfer less than models and one "
                       "epoch count per level")
    self.config = MLSGDConfig(
        epochs=tuple(epochs), n_cycles=n_cycles, lr=lr,
        variant=variant, lam=lam, stoch_fraction=stoch_fraction,
        coarse_term=coarse_term, first_cycle_no_gc=first_cycle_no_gc,
        angle_check=angle_check, mu=mu, eta=eta, eps=eps, grad_chunk=grad_chunk)
    self.config.validate(len(models))
    self.checks = angle_check != "off" or eta is not None or eps is not None
    if ((variant != "none" or self.checks or record_grad_norm)
        and (loss is None or dataset is None)):
      raise ValueError("gradient correction, gates, the angle condition and "
                       "record_grad_norm need loss= and dataset=")
    self.evaluate, self.record_grad_norm = evaluate, record_grad_norm
    self.models, self.transfers, self.epochs = list(models), list(transfers), list(epochs)
    self.lr = lr if callable(lr) else (lambda _: lr)
    self.loss, self.dataset, self.variant = loss, dataset, variant
    self.lam, self.q, self.first_no_gc = lam, stoch_fraction, first_cycle_no_gc
    self.regularizer, self.seed, self.n_cycles = regularizer, seed, n_cycles
    self.angle_check, self.top = angle_check, len(models) - 1
    vr = variant.endswith("_vr")
    up = [compose(*reversed(self.transfers[l:])).prolong
          for l in range(self.top + 1)]
    # One optimizer object per level setting, shared by every hook with the
    # same settings: the runs of a seed study then share their groups on the
    # runs axis (its group key is the optimizer's identity).
    self.optimizers = [level_optimizer(
        regularizer, vr, mu if angle_check == "per_step" else None,
        tuple(self.transfers[l:]) if angle_check == "per_step" else ())
        for l in range(self.top + 1)]
    self._angle_fns = [jax.jit(lambda w, ref, g, p=p: angle_ok(
        g, p(otu.tree_sub(w, ref)), mu)) for p in up]
    # The level switches run as a few jitted functions, not op by op.
    self._restrict_params = [jax.jit(t.restrict_params) for t in self.transfers]
    self._restrict_grad = [jax.jit(t.restrict_grad) for t in self.transfers]
    self._go_up = [jax.jit(lambda w, w0, w0_up, t=t: otu.tree_add(
        w0_up, t.prolong(otu.tree_sub(w, w0)))) for t in self.transfers]
    self._inits = [jax.jit(o.init) for o in self.optimizers]
    self._sub, self._zeros = jax.jit(otu.tree_sub), jax.jit(otu.tree_zeros_like)
    # one loss function per level, so full_gradient compiles once per level
    self._loss_fns = [self._loss_fn(m) for m in self.models]
    self.level, self.cycle, self.left = self.top, 0, 0
    self.w0: dict[int, Any] = {}
    self.c: dict[int, Any] = {}
    self.fine_grad, self.zeta, self.epoch_start = None, None, None
    self.switches: list[tuple[int, int]] = []
    self.level_epochs = [0] * len(models)
    self.rejected = 0
    self.lowest: list[int] = []
    self.grad_norm2: list[float] = []

  @classmethod
  def from_config(cls, models: Sequence[nn.Module],
                  transfers: Sequence[Transfer], config: MLSGDConfig, *,
                  loss: Loss | None = None, dataset=None,
                  regularizer: Callable[[Any], jax.Array] | None = None,
                  seed: int = 0) -> "MLSGDHook":
    """The hook with the settings of ``config``."""
    c = config
    return cls(models, transfers, c.epochs, lr=c.lr, loss=loss,
               dataset=dataset, variant=c.variant, lam=c.lam,
               stoch_fraction=c.stoch_fraction, coarse_term=c.coarse_term,
               regularizer=regularizer, first_cycle_no_gc=c.first_cycle_no_gc,
               angle_check=c.angle_check, mu=c.mu, eta=c.eta, eps=c.eps,
               grad_chunk=c.grad_chunk, seed=seed, n_cycles=c.n_cycles)

  # -- helpers --------------------------------------------------------------

  def _loss_fn(self, model):
    def loss_fn(params, x, y, w):
      out = self.loss(model.apply({"params": params}, x), y, w)
      return out + (self.regularizer(params) if self.regularizer else 0.0)
    return loss_fn

  def _full_gradient(self, level: int, params, index=None):
    ds = self.dataset
    return full_gradient(self._loss_fns[level], params,
                         jnp.asarray(ds.x_train), jnp.asarray(ds.y_train),
                         self.config.grad_chunk, index)

  def _use_gc(self) -> bool:
    return self.variant != "none" and not (self.first_no_gc and self.cycle == 0)

  def _with_lr(self, opt_state, epoch: int):
    """``opt_state`` with the step size of global epoch ``epoch``."""
    return otu.tree_set(opt_state, learning_rate=jnp.asarray(
        self.lr(epoch), jnp.float32))

  def _enter(self, run: RunView, level: int, params) -> None:
    self.level, self.left = level, self.epochs[level]
    if self.left == 0:
      self._finish_level(run, params)
      return
    use_gc, vr = self._use_gc(), self.variant.endswith("_vr")
    shift, lam = self._zeros(params), 0.0
    if use_gc and vr:
      shift, lam = self.c[level], (self.lam if level < self.top else 0.0)
    elif use_gc and level < self.top:
      same = self.variant == "stoch" and self.config.coarse_term == "same_sample"
      g_ref = self._full_gradient(level, self.w0[level],
                                  self.zeta if same else None)
      shift, lam = self._sub(self.c[level], g_ref), self.lam
    optimizer = self.optimizers[level]
    opt_state = self._inits[level](params)
    guarded = isinstance(opt_state, AngleGuardState)
    direction, sgd = opt_state.inner if guarded else opt_state
    direction = direction._replace(ref=self.w0[level], shift=shift,
                                   lam=jnp.asarray(lam, jnp.float32),
                                   vr=jnp.asarray(use_gc and vr))
    if guarded:
      opt_state = opt_state._replace(inner=(direction, sgd), ref=self.w0[level],
                                     fine_grad=self.fine_grad)
    else:
      opt_state = (direction, sgd)
    run.replace(model=self.models[level], params=params, optimizer=optimizer,
                opt_state=self._with_lr(opt_state, run.epoch))
    self.epoch_start = run.params
    self.switches.append((run.step, level))
    run.log["mlsgd_level"] = level

  def _finish_level(self, run: RunView, params) -> None:
    """Goes up one level from ``params`` (the level's end point), or ends
    the cycle on the top level."""
    if self.level < self.top:
      up = self.level + 1
      self._enter(run, up, self._go_up[self.level](
          params, self.w0[self.level], self.w0[up]))
      return
    self.cycle += 1
    if self.n_cycles is not None and self.cycle >= self.n_cycles:
      if run.model is not self.models[self.top] or params is not run.params:
        run.replace(model=self.models[self.top], params=params,
                    optimizer=self.optimizers[self.top])
      run.stop = True
      return
    self._start_cycle(run, params)

  def _start_cycle(self, run: RunView, params) -> None:
    self.w0 = {self.top: params}
    use_gc, G, self.zeta = self._use_gc(), None, None
    if use_gc and self.variant.startswith("stoch"):
      key = jax.random.key(self.seed + self.cycle)
      n = len(self.dataset.x_train)
      m = max(1, int(round(self.q * n)))
      self.zeta = jax.device_get(jax.random.choice(key, n, (m,), replace=False))
      G = self._full_gradient(self.top, params, self.zeta)
    elif use_gc or self.checks:
      G = self._full_gradient(self.top, params)
    if self.record_grad_norm:
      full = (G if G is not None and self.zeta is None
              else self._full_gradient(self.top, params))
      self.grad_norm2.append(float(otu.tree_norm(full)) ** 2)
      run.log["mlsgd_grad_norm2"] = self.grad_norm2[-1]
    self.c, self.fine_grad = {self.top: G}, G
    lowest = self.top
    while lowest > 0:
      l = lowest
      restricted = None if G is None else self._restrict_grad[l - 1](self.c[l])
      if G is not None and not gates_ok(self.c[l], restricted, self.config.eta,
                                        self.config.eps):
        break
      self.w0[l - 1] = self._restrict_params[l - 1](self.w0[l])
      self.c[l - 1] = restricted
      lowest -= 1
    self.lowest.append(lowest)
    self._enter(run, lowest, self.w0[lowest])

  # -- Hook API -------------------------------------------------------------

  def on_start(self, run: RunView) -> None:
    self._start_cycle(run, run.params)

  def on_epoch_end(self, run: RunView) -> None:
    level = self.level
    self.left -= 1
    self.level_epochs[level] += 1
    if level == self.top:
      run.log["mlsgd_cycle"] = self.cycle
    active = True
    if self.angle_check == "per_step":
      active = bool(jax.device_get(run.state.opt_state.active))
    elif self.angle_check == "per_epoch":
      active = bool(self._angle_fns[level](run.params, self.w0[level],
                                           self.fine_grad))
      if not active:
        run.replace(params=self.epoch_start)
    if not active:
      self.rejected += 1
      run.log["mlsgd_rejected"] = self.rejected
    if level == self.top and self.evaluate is not None:
      run.log.update({f"fine_{k}": v
                      for k, v in self.evaluate(run.params).items()})
    if active and self.left > 0:
      run.replace(opt_state=self._with_lr(run.state.opt_state, run.epoch))
      self.epoch_start = run.params
      return
    self._finish_level(run, run.params)

  def __deepcopy__(self, memo) -> "MLSGDHook":
    """A fresh copy of the run state; models, transfers, optimizers, jitted
    functions and the data set are shared (a list of hooks given to the
    runs axis is copied per run, and the copies' runs batch together)."""
    new = copy.copy(self)
    new.w0, new.c = dict(self.w0), dict(self.c)
    for name in ("switches", "level_epochs", "lowest", "grad_norm2"):
      setattr(new, name, list(getattr(self, name)))
    return new

  def state_dict(self) -> dict[str, Any]:
    return {"cycle": self.cycle}
