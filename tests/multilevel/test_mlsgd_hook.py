"""MLSGDHook's angle condition (3.3) and recursion gates (3.4)/(3.5).

Oracles: the jitted driver :func:`nnopt.multilevel.mlsgd` on the same data in
the same order (``permutation=EpochSampler(...).permutation``), numpy for the
gate quantities and a hand-written loop for :func:`angle_guard`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt.data import Dataset, EpochSampler
from nnopt.losses import softmax_cross_entropy
from nnopt.multilevel import (LevelProblem, MLSGDConfig, MLSGDHook,
                              depth_transfer, matrix_transfer, mlsgd)
from nnopt.multilevel.mlsgd_transforms import angle_guard
from nnopt.engine.trainer import Trainer

N, B, LR = 96, 32, 0.3


class TinyResNet(nn.Module):
  """x_{j+1} = x_j + h tanh(x_j K_j): a depth hierarchy with stacked K_j."""

  layers: int
  h: float
  width: int = 4

  @nn.compact
  def __call__(self, x):
    x = jnp.tanh(nn.Dense(self.width, name="opening")(x))
    K = self.param("block", nn.initializers.normal(0.5),
                   (self.layers, self.width, self.width))
    for j in range(self.layers):
      x = x + self.h * jnp.tanh(x @ K[j])
    return nn.Dense(3, name="out")(x)


@pytest.fixture(scope="module")
def setup(numpy_params):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 5)).astype(np.float32)
  y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(N, 3)), 1).astype(np.int32)
  ds = Dataset(x, y, x[:16], y[:16], "toy", 3)
  models = [TinyResNet(n, 1.0 / n) for n in (1, 2, 4)]
  p0 = numpy_params(models[-1], x[:1])
  return ds, models, p0


def loss_fn(model):
  return lambda p, xb, yb, w: softmax_cross_entropy(
      model.apply({"params": p}, xb), yb, w)


def run_hook(setup, cfg, transfers):
  ds, models, p0 = setup
  hook = MLSGDHook.from_config(models, transfers, cfg, loss=softmax_cross_entropy,
                               dataset=ds)
  trainer = Trainer(models[-1], softmax_cross_entropy, optax.sgd(0.0), ds,
                    batch_size=B, num_epochs=1000, hooks=[hook], params=p0,
                    model_state={}, seed=0, progress=False)
  return hook, trainer.fit()


def run_driver(setup, cfg, transfers):
  ds, models, p0 = setup
  problems = [LevelProblem(loss_fn(m), ds.x_train, ds.y_train) for m in models]
  return mlsgd(problems, transfers, p0, cfg,
               permutation=EpochSampler(N, B, seed=0).permutation)


@pytest.mark.parametrize("options,gradient,level_epochs,rejected", [
    (dict(angle_check="per_step", mu=0.6), "adjoint", [6, 7, 4], 4),
    (dict(angle_check="per_epoch", mu=0.6), "adjoint", [7, 7, 4], 2),
    (dict(eps=0.1), "adjoint", [6, 6, 4], 0),
    (dict(eta=0.98), "restriction", [4, 4, 4], 0),
], ids=["per_step", "per_epoch", "eps_gate", "eta_gate"])
def test_hook_makes_the_drivers_decisions(setup, options, gradient,
                                          level_epochs, rejected):
  """Same skip/accept decisions and weights as the jitted driver."""
  cfg = MLSGDConfig(epochs=(2, 2, 1), n_cycles=4, batch_size=B, lr=LR,
                    **options)
  transfers = [depth_transfer(gradient=gradient)] * 2
  out = run_driver(setup, cfg, transfers)
  hook, run = run_hook(setup, cfg, transfers)
  # the expected counts pin the cases to non-trivial decisions
  assert out.level_epochs == level_epochs
  assert out.log[-1]["rejected"] == rejected
  assert hook.level_epochs == out.level_epochs
  assert hook.rejected == rejected
  assert hook.cycle == 4 and run.model == setup[1][-1]
  for got, want in zip(jax.tree.leaves(run.params), jax.tree.leaves(out.params)):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
  if "eps" in options or "eta" in options:
    assert min(hook.lowest) == 0 and max(hook.lowest) == 2


def test_gate_that_must_skip_never_visits_coarse_levels(setup):
  cfg = MLSGDConfig(epochs=(2, 2, 1), n_cycles=3, batch_size=B, lr=LR, eta=1.5)
  hook, run = run_hook(setup, cfg, [depth_transfer()] * 2)
  assert hook.lowest == [2, 2, 2] and hook.level_epochs == [0, 0, 3]
  assert {level for _, level in hook.switches} == {2} and run.step == 9


def test_eps_gate_stops_at_the_middle_level_as_numpy_says(setup):
  """With R_g = ½Pᵀ the restricted norms shrink; ϵ between ‖c_0‖ and ‖c_1‖
  stops the recursion at level 1 (norms from numpy pair sums)."""
  ds, models, p0 = setup
  t = depth_transfer(gradient="restriction")
  G = jax.jit(jax.grad(loss_fn(models[-1])))(p0, ds.x_train, ds.y_train,
                                            jnp.ones(N))
  G = jax.tree.map(np.asarray, G)

  def restrict(g):  # ½Pᵀ on the layer axis of the residual leaf
    return {**g, "block": 0.5 * (g["block"][0::2] + g["block"][1::2])}

  def norm(g):
    return np.sqrt(sum(np.sum(v.astype(np.float64) ** 2)
                       for v in jax.tree.leaves(g)))

  c1 = restrict(G)
  c0 = restrict(c1)
  assert norm(c0) < norm(c1) < norm(G)
  eps = 0.5 * (norm(c0) + norm(c1))
  cfg = MLSGDConfig(epochs=(1, 1, 1), n_cycles=1, batch_size=B, lr=LR, eps=eps)
  hook, _ = run_hook(setup, cfg, [t, t])
  assert hook.lowest == [1] and hook.level_epochs == [0, 1, 1]
  assert [level for _, level in hook.switches] == [1, 2]


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
