"""MLSGDHook against a reference V-cycle: every variant, angle checks, gates.

Oracles: :func:`reference_vcycle`, a plain JAX loop written here (one
``jax.grad`` per step, no optax, no engine) that replays the engine's data
order (``EpochSampler(...).permutation``) and the hook's ζ samples (the
``jax.random.choice`` the hook documents); numpy for the gate quantities; a
hand-written loop for :func:`angle_guard`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
import pytest

from nnopt.data import Dataset, EpochSampler
from nnopt.engine.trainer import Trainer
from nnopt.losses import softmax_cross_entropy
from nnopt.multilevel import (MLSGDConfig, MLSGDHook, compose, depth_transfer,
                              matrix_transfer)
from nnopt.multilevel.mlsgd_transforms import angle_guard

N, B, LR = 96, 32, 0.3


@pytest.fixture(scope="module")
def setup(numpy_params, tiny_resnet):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 5)).astype(np.float32)
  y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(N, 3)), 1).astype(np.int32)
  ds = Dataset(x, y, x[:16], y[:16], "toy", 3)
  models = [tiny_resnet(n, 1.0 / n) for n in (1, 2, 4)]
  p0 = numpy_params(models[-1], x[:1])
  return ds, models, p0


def _norm(tree):
  return float(np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2)
                           for v in jax.tree.leaves(tree))))


def reference_vcycle(models, transfers, p0, x, y, cfg, *, seed=0):
  """MLSGD V-cycles (spec-mlsgd §1.6) as a plain loop over mini-batches.

  Returns ``(params, level_epochs, rejected, lowest)``.
  """
  L = len(models) - 1
  n = len(x)
  order = EpochSampler(n, B, seed=seed).permutation
  lr = cfg.lr if callable(cfg.lr) else (lambda _: cfg.lr)
  sub, add = otu.tree_sub, otu.tree_add

  @functools.lru_cache(maxsize=None)
  def grad(l):
    return jax.jit(jax.grad(lambda p, xb, yb: softmax_cross_entropy(
        models[l].apply({"params": p}, xb), yb)))

  def full(l, p, idx=None):
    idx = np.arange(n) if idx is None else idx
    return grad(l)(p, x[idx], y[idx])

  up = [compose(*reversed(transfers[l:])).prolong for l in range(L + 1)]

  def angle(G, delta):
    return -float(otu.tree_vdot(G, delta)) >= cfg.mu * _norm(G) * _norm(delta)

  params, epoch = p0, 0
  level_epochs, rejected, lowest_log = [0] * (L + 1), 0, []
  checks = (cfg.angle_check != "off" or cfg.eta is not None
            or cfg.eps is not None)
  for k in range(cfg.n_cycles):
    use_gc = cfg.variant != "none" and not (cfg.first_cycle_no_gc and k == 0)
    zeta, G = None, None
    if use_gc and cfg.variant.startswith("stoch"):
      m = max(1, int(round(cfg.stoch_fraction * n)))
      zeta = np.asarray(jax.random.choice(jax.random.key(seed + k), n, (m,),
                                          replace=False))
      G = full(L, params, zeta)
    elif use_gc or checks:
      G = full(L, params)
    w0, c, lowest = {L: params}, {L: G}, L
    while lowest > 0:
      l = lowest
      r = None if G is None else transfers[l - 1].restrict_grad(c[l])
      if G is not None and ((cfg.eta is not None and
                             _norm(r) < cfg.eta * _norm(c[l])) or
                            (cfg.eps is not None and _norm(r) < cfg.eps)):
        break
      w0[l - 1] = transfers[l - 1].restrict_params(w0[l])
      c[l - 1], lowest = r, lowest - 1
    lowest_log.append(lowest)
    w = w0[lowest]
    for l in range(lowest, L + 1):
      if l > lowest:
        w = add(w0[l], transfers[l - 1].prolong(sub(w, w0[l - 1])))
      shift, lam, vr = otu.tree_zeros_like(w), 0.0, False
      if use_gc and cfg.variant.endswith("_vr"):
        shift, lam, vr = c[l], (cfg.lam if l < L else 0.0), True
      elif use_gc and l < L:
        same = cfg.variant == "stoch" and cfg.coarse_term == "same_sample"
        shift = sub(c[l], full(l, w0[l], zeta if same else None))
        lam = cfg.lam
      active = True
      for _ in range(cfg.epochs[l]):
        perm, start = order(epoch), w
        for s in range(n // B):
          if not active:
            break
          idx = perm[s * B:(s + 1) * B]
          d = add(grad(l)(w, x[idx], y[idx]), shift)
          d = otu.tree_add_scale(d, lam, sub(w, w0[l]))
          if vr:
            d = sub(d, grad(l)(w0[l], x[idx], y[idx]))
          new = otu.tree_add_scale(w, -lr(epoch), d)
          if cfg.angle_check == "per_step" and not angle(
              G, up[l](sub(new, w0[l]))):
            active = False
            break
          w = new
        if cfg.angle_check == "per_epoch" and not angle(
            G, up[l](sub(w, w0[l]))):
          w, active = start, False
        epoch += 1
        level_epochs[l] += 1
        if not active:
          rejected += 1
          break
    params = w
  return params, level_epochs, rejected, lowest_log


def run_hook(setup, cfg, transfers):
  ds, models, p0 = setup
  hook = MLSGDHook.from_config(models, transfers, cfg, loss=softmax_cross_entropy,
                               dataset=ds)
  trainer = Trainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                    batch_size=B, num_epochs=1000, hooks=[hook], params=p0,
                    model_state={}, seed=0, progress=False)
  return hook, trainer.fit()


CASES = {
    # variant / option: (settings, gradient transfer, level_epochs, rejected)
    "none_decay": (dict(lr=lambda e: LR * 0.7 ** (e // 4)), "adjoint",
                   [8, 8, 4], 0),
    "det": (dict(variant="det", lr=0.05, lam=1.0), "adjoint", [8, 8, 4], 0),
    "det_vr": (dict(variant="det_vr", lr=0.05, lam=1.0), "adjoint",
               [8, 8, 4], 0),
    "stoch": (dict(variant="stoch", lr=0.05, lam=1.0, stoch_fraction=0.25),
              "adjoint", [8, 8, 4], 0),
    "stoch_same_sample": (dict(variant="stoch", lr=0.05, lam=1.0,
                               stoch_fraction=0.25,
                               coarse_term="same_sample"),
                          "adjoint", [8, 8, 4], 0),
    "stoch_vr": (dict(variant="stoch_vr", lr=0.05, lam=1.0,
                      stoch_fraction=0.25), "adjoint", [8, 8, 4], 0),
    "per_step": (dict(angle_check="per_step", mu=0.6), "adjoint", [6, 7, 4],
                 4),
    "per_epoch": (dict(angle_check="per_epoch", mu=0.6), "adjoint",
                  [7, 7, 4], 2),
    "eps_gate": (dict(eps=0.1), "adjoint", [6, 6, 4], 0),
    "eta_gate": (dict(eta=0.98), "restriction", [4, 4, 4], 0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hook_equals_reference_vcycle(setup, case):
  """Same level epochs, rejections, coarsest levels and weights as the
  reference loop, for every variant, both angle checks and both gates."""
  options, gradient, level_epochs, rejected = CASES[case]
  cfg = MLSGDConfig(**{"epochs": (2, 2, 1), "n_cycles": 4, "lr": LR,
                       **options})
  transfers = [depth_transfer(gradient=gradient)] * 2
  ds, models, p0 = setup
  want, want_epochs, want_rejected, want_lowest = reference_vcycle(
      models, transfers, p0, ds.x_train, ds.y_train, cfg)
  hook, run = run_hook(setup, cfg, transfers)
  # the expected counts pin the cases to non-trivial decisions
  assert want_epochs == level_epochs and want_rejected == rejected
  assert hook.level_epochs == want_epochs
  assert hook.rejected == rejected and hook.lowest == want_lowest
  assert hook.cycle == 4 and run.model == models[-1]
  for got, ref in zip(jax.tree.leaves(run.params), jax.tree.leaves(want)):
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)
  if "eps" in options or "eta" in options:
    assert min(hook.lowest) == 0 and max(hook.lowest) == 2
  # the corrected runs moved away from the uncorrected one
  if options.get("variant", "none") != "none":
    plain, *_ = reference_vcycle(models, transfers, p0, ds.x_train,
                                 ds.y_train, MLSGDConfig(
                                     epochs=(2, 2, 1), n_cycles=4, lr=0.05))
    assert _norm(otu.tree_sub(want, plain)) > 1e-3


def test_gate_that_must_skip_never_visits_coarse_levels(setup):
  cfg = MLSGDConfig(epochs=(2, 2, 1), n_cycles=3, lr=LR, eta=1.5)
  hook, run = run_hook(setup, cfg, [depth_transfer()] * 2)
  assert hook.lowest == [2, 2, 2] and hook.level_epochs == [0, 0, 3]
  assert {level for _, level in hook.switches} == {2} and run.step == 9


def test_eps_gate_stops_at_the_middle_level_as_numpy_says(setup):
  """With R_g = ½Pᵀ the restricted norms shrink; ϵ between ‖c_0‖ and ‖c_1‖
  stops the recursion at level 1 (norms from numpy pair sums)."""
  ds, models, p0 = setup
  t = depth_transfer(gradient="restriction")
  G = jax.jit(jax.grad(lambda p: softmax_cross_entropy(
      models[-1].apply({"params": p}, ds.x_train), ds.y_train)))(p0)
  G = jax.tree.map(np.asarray, G)

  def restrict(g):  # ½Pᵀ on the layer axis of the residual leaf
    return {**g, "block": 0.5 * (g["block"][0::2] + g["block"][1::2])}

  c1 = restrict(G)
  c0 = restrict(c1)
  assert _norm(c0) < _norm(c1) < _norm(G)
  eps = 0.5 * (_norm(c0) + _norm(c1))
  cfg = MLSGDConfig(epochs=(1, 1, 1), n_cycles=1, lr=LR, eps=eps)
  hook, _ = run_hook(setup, cfg, [t, t])
  assert hook.lowest == [1] and hook.level_epochs == [0, 1, 1]
  assert [level for _, level in hook.switches] == [1, 2]


def test_fine_evaluation_and_gradient_norms(setup):
  """``evaluate`` sees the fine parameters after every fine epoch and
  ``record_grad_norm`` is ‖∇F_L‖² at each cycle start (numpy oracle at the
  initial point)."""
  ds, models, p0 = setup
  seen = []

  def evaluate(params):
    seen.append(jax.tree.map(np.shape, params))
    return {"norm": _norm(params)}

  hook = MLSGDHook(models, [depth_transfer()] * 2, (1, 1, 1), lr=LR,
                   loss=softmax_cross_entropy, dataset=ds, n_cycles=2,
                   evaluate=evaluate, record_grad_norm=True)
  trainer = Trainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                    batch_size=B, num_epochs=1000, hooks=[hook], params=p0,
                    model_state={}, seed=0, progress=False)
  run = trainer.fit()
  shapes = jax.tree.map(np.shape, p0)
  assert seen == [shapes, shapes]
  fine = [r for r in trainer.history if "fine_norm" in r]
  assert [r["mlsgd_cycle"] for r in fine] == [0, 1]
  assert np.isclose(fine[-1]["fine_norm"], _norm(run.params), rtol=1e-5)
  G = jax.grad(lambda p: softmax_cross_entropy(
      models[-1].apply({"params": p}, ds.x_train), ds.y_train))(p0)
  assert len(hook.grad_norm2) == 2
  np.testing.assert_allclose(hook.grad_norm2[0], _norm(G) ** 2, rtol=1e-4)


def test_angle_guard_against_a_numpy_loop():
  """Two-level guard on a quadratic: accepted steps are SGD steps; the first
  rejected step and every later one are zero updates."""
  rng = np.random.default_rng(1)
  P = rng.normal(size=(6, 3)).astype(np.float32)
  t = matrix_transfer(jnp.asarray(P.T), P=jnp.asarray(P))
  A = np.diag(np.linspace(0.5, 3.0, 3)).astype(np.float32)
  G = rng.normal(size=6).astype(np.float32)
  ref = rng.normal(size=3).astype(np.float32)
  mu, lr = 0.67, 0.4  # cos∠ of the unguarded path: .70 .69 .69 .68 .67 .66 …
  opt = angle_guard(optax.sgd(lr), t.prolong, mu)
  state = opt.init(jnp.asarray(ref))._replace(ref=jnp.asarray(ref),
                                              fine_grad=jnp.asarray(G))
  update = jax.jit(opt.update)
  w = jnp.asarray(ref)
  w_np, active, decisions = ref.astype(np.float64), True, []
  shift = (P.T @ G).astype(np.float64)  # a coherent coarse model's gradient
  for _ in range(12):
    g = A @ (np.asarray(w) - ref) + shift
    u, state = update(jnp.asarray(g, jnp.float32), state, w)
    w = w + u
    new = w_np - lr * (A @ (w_np - ref) + shift)
    d = P @ (new - ref)
    ok = active and -G @ d >= mu * np.linalg.norm(G) * np.linalg.norm(d)
    decisions.append(bool(ok))
    w_np, active = (new if ok else w_np), ok
  assert decisions == [True] * 5 + [False] * 7  # the check bites
  np.testing.assert_allclose(w, w_np, rtol=1e-5, atol=1e-6)
  assert bool(state.active) == decisions[-1]
  assert int(state.accepted) == sum(decisions)
