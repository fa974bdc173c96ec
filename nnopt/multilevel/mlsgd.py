"""Multilevel SGD (MLSGD thesis Algorithms 4/5, spec-mlsgd §1.6).

A V-cycle restricts the fine weights all the way down (no pre-smoothing),
runs T_0 epochs of SGD on the coarsest level, then on the way up adds the
prolonged coarse *step* w_l ← w0_l + P(s_{l−1}) with unit length and runs T_l
epochs on level l. Variants of the level-l search direction (Euclidean form,
c_l = (P_{l+1}⋯P_L)ᵀ G_L with G_L the fine gradient at the cycle start):

* ``'none'``: d = ∇F_l(w; B) on every level (the variant that wins in ch. 4);
* ``'det'`` / ``'stoch'``: d = ∇F_l(w; B) + v_l + λ(w − w0_l) with
  v_l = c_l − ∇F_l(w0_l; D_l) once per cycle (v_L = 0, no λ on top), G_L a
  full (det) or a q-fraction sample (stoch) gradient, (3.15)/(3.16);
* ``'det_vr'`` / ``'stoch_vr'``: d = ∇F_l(w; B) − ∇F_l(w0_l; B) + c_l +
  λ(w − w0_l) (SVRG with snapshot w0_l on every level, (3.21)).

Options: the angle condition (3.3) per step or per epoch (a rejected step
ends the level's loop), the recursion gates (3.4)/(3.5), the first cycle
without correction, and the coarse term of stochastic GC (``'full'`` or the
``'same_sample'`` ζ). Each level's epoch is one jitted ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu

from nnopt.multilevel.transfer import Transfer, compose

PyTree = Any
LossFn = Callable[[PyTree, jax.Array, jax.Array, jax.Array], jax.Array]
VARIANTS = ("none", "det", "det_vr", "stoch", "stoch_vr")
ANGLE_CHECKS = ("off", "per_step", "per_epoch")


class LevelProblem(NamedTuple):
  """One level: its loss and its (restricted) training data.

  Attributes:
    loss_fn: ``(params, x, y, weights) -> weighted mean loss`` (with the
      level's regularizers).
    x, y: the level's training inputs and targets.
  """

  loss_fn: LossFn
  x: Any
  y: Any


@dataclasses.dataclass(frozen=True)
class MLSGDConfig:
  """MLSGD settings (defaults of spec-mlsgd §1.7 where the thesis gives them).

  Attributes:
    epochs: T_l per level, ordered coarsest → finest (depth: (7, 5, 3)).
    n_cycles: V-cycles K_L.
    batch_size: mini-batch size on every level.
    lr: step size, float or a function of the global epoch count (all levels).
    variant: one of VARIANTS.
    lam: λ of the step-size regularization (only with gradient correction).
    stoch_fraction: q, fraction of the fine data for stochastic GC.
    coarse_term: stochastic GC without VR: ``'full'`` coarse gradient or the
      ``'same_sample'`` ζ.
    first_cycle_no_gc: the first cycle runs without correction.
    angle_check: ``'off'``, ``'per_step'`` or ``'per_epoch'``.
    mu: angle constant μ.
    eta, eps: recursion gates (None disables).
    grad_chunk: chunk size of full-gradient passes.
  """

  epochs: tuple[int, ...]
  n_cycles: int
  batch_size: int
  lr: float | Callable[[int], float] = 0.05
  variant: str = "none"
  lam: float = 5.0
  stoch_fraction: float = 0.03125
  coarse_term: str = "full"
  first_cycle_no_gc: bool = True
  angle_check: str = "off"
  mu: float = 0.0
  eta: float | None = None
  eps: float | None = None
  grad_chunk: int = 1000

  def validate(self, num_levels: int) -> None:
    if self.variant not in VARIANTS:
      raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
    if self.angle_check not in ANGLE_CHECKS:
      raise ValueError(f"angle_check must be one of {ANGLE_CHECKS}, got "
                       f"{self.angle_check!r}")
    if self.coarse_term not in ("full", "same_sample"):
      raise ValueError("coarse_term must be 'full' or 'same_sample'")
    if len(self.epochs) != num_levels:
      raise ValueError(f"epochs has {len(self.epochs)} entries for "
                       f"{num_levels} levels (order: coarsest → finest)")


# -- pure pieces ------------------------------------------------------------------


def angle_ok(fine_grad: PyTree, delta: PyTree, mu: float) -> jax.Array:
  """(3.3): −⟨G, Δ⟩ ≥ μ‖G‖‖Δ‖; Δ = 0 is accepted."""
  lhs = -otu.tree_vdot(fine_grad, delta)
  return lhs >= mu * otu.tree_norm(fine_grad) * otu.tree_norm(delta)


def gates_ok(c: PyTree, restricted_c: PyTree, eta: float | None,
             eps: float | None) -> bool:
  """(3.4) ‖Pᵀc‖ ≥ η‖c‖ and (3.5) ‖Pᵀc‖ ≥ ϵ (Euclidean, h ≡ 1).

  With both gates off (None) it returns True without reading any number back
  from the device.
  """
  if eta is None and eps is None:
    return True
  coarse = float(otu.tree_norm(restricted_c))
  ok = True
  if eta is not None:
    ok &= coarse >= eta * float(otu.tree_norm(c))
  if eps is not None:
    ok &= coarse >= eps
  return bool(ok)


def full_gradient(loss_fn: LossFn, params: PyTree, x, y, chunk: int,
                  index: np.ndarray | None = None) -> PyTree:
  """Mean gradient over ``x[index]`` (all data by default), in chunks."""
  n = len(x) if index is None else len(index)
  index = np.arange(n) if index is None else np.asarray(index)
  chunk = min(chunk, n)
  pad = (-n) % chunk
  idx = np.concatenate([index, np.zeros(pad, index.dtype)]).reshape(-1, chunk)
  w = np.concatenate([np.ones(n), np.zeros(pad)]).astype(np.float32)
  return _chunked_grad(loss_fn, params, x, y, jnp.asarray(idx),
                       jnp.asarray(w.reshape(-1, chunk)), n)


@functools.partial(jax.jit, static_argnums=(0, 6))
def _chunked_grad(loss_fn, params, x, y, idx, w, n):
  def body(acc, args):
    i, wi = args
    # loss_fn is a weighted mean: scale back to a weighted sum.
    g = jax.grad(loss_fn)(params, x[i], y[i], wi)
    return otu.tree_add_scale(acc, jnp.sum(wi) / n, g), None

  return jax.lax.scan(body, otu.tree_zeros_like(params), (idx, w))[0]


def make_epoch_fn(loss_fn: LossFn, prolong_to_top: Callable[[PyTree], PyTree],
                  *, vr: bool, angle_check: str, mu: float, batch_size: int):
  """One jitted epoch of level-l SGD with the MLSGD direction.

  Returns ``epoch(params, ref, shift, lam, fine_grad, lr, perm, x, y, active)
  -> (params, active, accepted_steps)``: d = ∇F(w;B) + shift + lam (w − ref)
  [− ∇F(ref;B) if vr]; with the angle check a rejected step (or epoch) keeps
  the last accepted iterate and clears ``active``.
  """
  grad = jax.grad(loss_fn)

  def direction(w, ref, shift, lam, xb, yb, wb):
    d = otu.tree_add(grad(w, xb, yb, wb), shift)
    if vr:
      d = otu.tree_sub(d, grad(ref, xb, yb, wb))
    return otu.tree_add_scale(d, lam, otu.tree_sub(w, ref))

  def accept(w_new, ref, fine_grad):
    if angle_check == "off":
      return jnp.ones((), bool)
    return angle_ok(fine_grad, prolong_to_top(otu.tree_sub(w_new, ref)), mu)

  @jax.jit
  def epoch(params, ref, shift, lam, fine_grad, lr, perm, x, y, active):
    steps = perm.shape[0] // batch_size
    batches = perm[:steps * batch_size].reshape(steps, batch_size)
    ones = jnp.ones((batch_size,), jnp.float32)

    def body(carry, idx):
      w, active, count = carry
      d = direction(w, ref, shift, lam, x[idx], y[idx], ones)
      w_new = otu.tree_add_scale(w, -lr, d)
      ok = active
      if angle_check == "per_step":
        ok = ok & accept(w_new, ref, fine_grad)
      w = otu.tree_where(ok, w_new, w)
      return (w, ok, count + ok.astype(jnp.int32)), None

    start = params
    (w, active_out, count), _ = jax.lax.scan(
        body, (params, active, jnp.zeros((), jnp.int32)), batches)
    if angle_check == "per_epoch":
      ok = accept(w, ref, fine_grad) & active
      w = otu.tree_where(ok, w, start)
      active_out, count = ok, jnp.where(ok, count, 0)
    return w, active_out, count

  return epoch


# -- the driver -----------------------------------------------------------------


class MLSGDResult(NamedTuple):
  """Final fine parameters and the log (one record per fine-level epoch)."""

  params: PyTree
  log: list[dict[str, Any]]
  level_epochs: list[int]
  level_time: list[float]


def mlsgd(problems: Sequence[LevelProblem], transfers: Sequence[Transfer],
          params: PyTree, cfg: MLSGDConfig, seed: int = 0, *,
          evaluate: Callable[[PyTree], dict[str, float]] | None = None,
          time_limit: float | None = None,
          permutation: Callable[[int], np.ndarray] | None = None
          ) -> MLSGDResult:
  """Runs ``cfg.n_cycles`` MLSGD V-cycles (spec-mlsgd §1.6).

  Args:
    problems: one per level, ordered coarsest → finest (level l = index).
    transfers: ``transfers[l]`` maps level l + 1 (fine) to level l (coarse).
    params: fine (level L) initial parameters.
    cfg: settings.
    seed: data order and stochastic-GC samples.
    evaluate: fine params → metrics, called after every fine-level epoch.
    time_limit: stop after this many seconds (checked per epoch).
    permutation: global epoch index → the order of that epoch's examples
      (default: draws from ``seed``); e.g. ``EpochSampler(n, b,
      seed=s).permutation`` replays the data order of the engine's loop.
  """
  L = len(problems) - 1
  cfg.validate(len(problems))
  if len(transfers) != L:
    raise ValueError(f"{len(problems)} levels need {L} transfers")
  problems = [p._replace(x=jnp.asarray(p.x), y=jnp.asarray(p.y))
              for p in problems]
  rng = np.random.default_rng(seed)
  lr_of = cfg.lr if callable(cfg.lr) else (lambda _: cfg.lr)
  up = [compose(*reversed(transfers[l:])).prolong for l in range(L + 1)]
  gc_variant = cfg.variant != "none"
  vr = cfg.variant.endswith("_vr")
  epoch_fns: dict[tuple[int, bool], Callable] = {}

  def epoch_fn(l, use_vr):
    if (l, use_vr) not in epoch_fns:
      epoch_fns[(l, use_vr)] = make_epoch_fn(
          problems[l].loss_fn, up[l], vr=use_vr, angle_check=cfg.angle_check,
          mu=cfg.mu, batch_size=cfg.batch_size)
    return epoch_fns[(l, use_vr)]

  log: list[dict[str, Any]] = []
  level_epochs, level_time = [0] * (L + 1), [0.0] * (L + 1)
  global_epoch, rejected = 0, 0
  t0 = time.perf_counter()
  checks = cfg.angle_check != "off" or cfg.eta is not None or cfg.eps is not None
  for k in range(cfg.n_cycles):
    use_gc = gc_variant and not (cfg.first_cycle_no_gc and k == 0)
    top = problems[L]
    w0 = {L: params}
    G_L = None
    if use_gc and cfg.variant.startswith("stoch"):
      m = max(1, int(round(cfg.stoch_fraction * len(top.x))))
      zeta = rng.choice(len(top.x), m, replace=False)
      G_L = full_gradient(top.loss_fn, params, top.x, top.y, cfg.grad_chunk, zeta)
    elif use_gc or checks:
      zeta = None
      G_L = full_gradient(top.loss_fn, params, top.x, top.y, cfg.grad_chunk)
    c = {L: G_L}
    lowest = L
    while lowest > 0:
      l = lowest
      restricted = None if c[l] is None else transfers[l - 1].restrict_grad(c[l])
      if c[l] is not None and not gates_ok(c[l], restricted, cfg.eta, cfg.eps):
        break
      w0[l - 1] = transfers[l - 1].restrict_params(w0[l])
      c[l - 1] = restricted
      lowest -= 1
    zeros_like = otu.tree_zeros_like
    w = w0[lowest]
    for l in range(lowest, L + 1):
      if l > lowest:
        s = otu.tree_sub(w, w0[l - 1])
        w = otu.tree_add(w0[l], transfers[l - 1].prolong(s))
      prob = problems[l]
      if use_gc and vr:
        shift, lam, use_vr = c[l], (cfg.lam if l < L else 0.0), True
      elif use_gc and l < L:
        if cfg.variant == "stoch" and cfg.coarse_term == "same_sample":
          idx = zeta
          coarse_x = compose(*reversed(transfers[l:])).restrict_inputs(top.x[idx])
          g_ref = full_gradient(prob.loss_fn, w0[l], coarse_x, top.y[idx],
                                cfg.grad_chunk)
        else:
          g_ref = full_gradient(prob.loss_fn, w0[l], prob.x, prob.y,
                                cfg.grad_chunk)
        shift, lam, use_vr = otu.tree_sub(c[l], g_ref), cfg.lam, False
      else:
        shift, lam, use_vr = zeros_like(w), 0.0, False
      fine_grad = G_L if G_L is not None else zeros_like(params)
      active = jnp.ones((), bool)
      fn = epoch_fn(l, use_vr)
      for _ in range(cfg.epochs[l]):
        if not bool(active):
          break
        t_start = time.perf_counter()
        perm = jnp.asarray(rng.permutation(len(prob.x)) if permutation is None
                           else permutation(global_epoch))
        w, active, count = fn(w, w0[l], shift, lam, fine_grad,
                              jnp.asarray(lr_of(global_epoch), jnp.float32),
                              perm, prob.x, prob.y, active)
        jax.block_until_ready(w)
        level_time[l] += time.perf_counter() - t_start
        level_epochs[l] += 1
        global_epoch += 1
        rejected += int(not bool(active))
        if l == L:
          record = {"cycle": k, "global_epoch": global_epoch,
                    "fine_epoch": level_epochs[L],
                    "wall_time": time.perf_counter() - t0,
                    "level_epochs": list(level_epochs),
                    "accepted_steps": int(count), "rejected": rejected}
          if evaluate is not None:
            record.update(evaluate(w))
          log.append(record)
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
          return MLSGDResult(w if l == L else params, log, level_epochs,
                             level_time)
    params = w
  return MLSGDResult(params, log, level_epochs, level_time)


def sgd_baseline(problem: LevelProblem, params: PyTree, *, epochs: int,
                 batch_size: int, lr: float | Callable[[int], float],
                 seed: int = 0,
                 evaluate: Callable[[PyTree], dict[str, float]] | None = None
                 ) -> MLSGDResult:
  """Plain SGD with the same epoch function and evaluation cadence."""
  cfg = MLSGDConfig(epochs=(epochs,), n_cycles=1, batch_size=batch_size, lr=lr)
  return mlsgd([problem], [], params, cfg, seed, evaluate=evaluate)
