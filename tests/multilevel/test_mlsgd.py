"""MLSGD driver, engine hook, ODE-ResNet counts and the README loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt.models import count_params
from nnopt.models.odenet import ODEResNet
from nnopt.multilevel import (LevelProblem, MLSGDConfig, Transfer,
                              check_transfer, coarse_grid_correction_transform,
                              depth_transfer, full_gradient, identity_transfer,
                              matrix_transfer, mlsgd, sgd_baseline)


@pytest.mark.parametrize("kwargs,count", [
    (dict(layers_per_block=8), 433162), (dict(layers_per_block=4), 238730),
    (dict(layers_per_block=2), 141514),
    (dict(channels=(32, 64, 112), layers_per_block=3, res_param="mlsgd_basis"), 560570),
    (dict(channels=(32, 64, 112), layers_per_block=3, res_kernel=2, input_pool=1), 241850),
])
def test_odenet_parameter_counts(kwargs, count):
  model = ODEResNet(**kwargs)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"])
  assert count_params(shapes) == count


def test_odenet_residual_layer_matches_explicit_formula(numpy_params):
  """x − h Kᵀσ(N(Kx)) with Kᵀ from jax.vjp (independent of linear_transpose)."""
  model = ODEResNet(channels=(3, 3, 3), layers_per_block=1, h=0.7, connect_norm="tv")
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), jnp.float32)
  params = numpy_params(model, x, seed=1)
  from nnopt.models.odenet import SymmetricResidualStack, same_conv, tv_normalize
  block = params["block_0"]

  @jax.jit
  def both(block, x):
    got = SymmetricResidualStack(1, 0.7).apply({"params": block}, x)
    K = block["kernel"][0]
    z = jax.nn.relu(tv_normalize(same_conv(x, K), 1e-3) * block["scale"][0]
                    + block["shift"][0])
    _, vjp = jax.vjp(lambda u: same_conv(u, K), x)
    return got, x - 0.7 * vjp(z)[0]

  got, want = both(block, x)
  np.testing.assert_allclose(got, want, atol=1e-5)


def linear_problem(n=64, d=6, seed=0):
  rng = np.random.default_rng(seed)
  X = rng.normal(size=(n, d)).astype(np.float32)
  y = (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)

  def loss(p, x, t, w):
    return jnp.sum(w * (x @ p["w"] - t) ** 2) / jnp.sum(w)

  return LevelProblem(loss, X, y)


def test_identity_hierarchy_without_gc_equals_sgd():
  prob = linear_problem()
  p0 = {"w": jnp.zeros(6)}
  cfg = MLSGDConfig(epochs=(1, 1), n_cycles=2, batch_size=8, lr=0.05)
  ml = mlsgd([prob, prob], [identity_transfer()], p0, cfg, seed=3)
  sgd = sgd_baseline(prob, p0, epochs=4, batch_size=8, lr=0.05, seed=3)
  np.testing.assert_allclose(ml.params["w"], sgd.params["w"], atol=1e-5)
  assert ml.level_epochs == [2, 2] and len(ml.log) == 2


def test_det_vr_full_batch_is_gradient_descent():
  """With B = N, det+VR on the top level is GD (SVRG terms cancel exactly)."""
  prob = linear_problem()
  p0 = {"w": jnp.ones(6)}
  cfg = MLSGDConfig(epochs=(1, 3), n_cycles=2, batch_size=64, lr=0.1,
                    variant="det_vr", lam=0.0)
  ml = mlsgd([prob, prob], [identity_transfer()], p0, cfg)
  w = p0
  grad = jax.grad(prob.loss_fn)
  ones = jnp.ones(64)
  for _ in range(8):
    w = jax.tree.map(lambda a, g: a - 0.1 * g, w, grad(w, prob.x, prob.y, ones))
  np.testing.assert_allclose(ml.params["w"], w["w"], atol=1e-5)


def test_det_correction_is_first_order_coherent():
  """∇H_l(w0_l) = Pᵀ∇F_{l+1}(w0_{l+1}): the coarse level's first full-batch
  direction is the restricted fine gradient."""
  prob = linear_problem()
  R = np.zeros((3, 6), np.float32)
  R[[0, 1, 2], [0, 2, 4]] = 1.0
  t = matrix_transfer(jnp.asarray(R))
  Xc = prob.x @ R.T
  coarse = LevelProblem(prob.loss_fn, Xc, prob.y)  # a different coarse model
  w0 = {"w": jnp.arange(6.0) / 6}
  G = full_gradient(prob.loss_fn, w0, prob.x, prob.y, 16)
  ref = t.restrict_params(w0)
  g_ref = full_gradient(coarse.loss_fn, ref, coarse.x, coarse.y, 16)
  c = t.restrict_grad(G)
  shift = jax.tree.map(jnp.subtract, c, g_ref)
  d = jax.tree.map(jnp.add, jax.grad(coarse.loss_fn)(ref, coarse.x, coarse.y,
                                                     jnp.ones(64)), shift)
  np.testing.assert_allclose(d["w"], R @ np.asarray(G["w"]), rtol=1e-5, atol=1e-6)
  # one cycle with a single full-batch coarse step moves the fine point by
  # −α P R_g ∇F (coarse) then one fine GD step
  cfg = MLSGDConfig(epochs=(1, 0), n_cycles=2, batch_size=64, lr=0.1,
                    variant="det", lam=5.0)
  out = mlsgd([coarse, prob], [t], w0, cfg)
  second = full_gradient(prob.loss_fn, w0, prob.x, prob.y, 64)  # cycle 0: no GC
  assert out.level_epochs == [2, 0]
  w1 = {"w": w0["w"] - 0.1 * R.T @ jax.grad(coarse.loss_fn)(
      ref, coarse.x, coarse.y, jnp.ones(64))["w"]}
  G1 = full_gradient(prob.loss_fn, w1, prob.x, prob.y, 64)
  np.testing.assert_allclose(out.params["w"], w1["w"] - 0.1 * R.T @ (R @ G1["w"]),
                             atol=1e-5)
  del second


def test_angle_check_and_gates():
  prob = linear_problem()
  p0 = {"w": jnp.zeros(6)}
  # μ = 1 is unreachable for stochastic steps: the coarse level rejects its
  # first step and returns its start point, so only fine epochs move.
  cfg = MLSGDConfig(epochs=(2, 1), n_cycles=1, batch_size=8, lr=0.05,
                    angle_check="per_step", mu=1.0)
  out = mlsgd([prob, prob], [identity_transfer()], p0, cfg)
  assert out.level_epochs[0] == 1 and out.log[0]["rejected"] >= 1
  # gate η > 1 can never pass: no recursion at all
  cfg = MLSGDConfig(epochs=(2, 1), n_cycles=2, batch_size=8, lr=0.05, eta=1.5)
  out = mlsgd([prob, prob], [identity_transfer()], p0, cfg)
  assert out.level_epochs == [0, 2]
  with pytest.raises(ValueError, match="variant"):
    MLSGDConfig(epochs=(1,), n_cycles=1, batch_size=8, variant="x").validate(1)


@pytest.mark.parametrize("variant", ["stoch", "stoch_vr"])
def test_stochastic_variants_run_on_depth_hierarchy(variant, numpy_params):
  x = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype(np.float32)
  y = np.arange(32) % 10
  models = [ODEResNet(channels=(2, 2, 2), layers_per_block=n, h=2 / n,
                      connect_norm="tv") for n in (1, 2)]

  def make(m):
    def loss(p, xb, yb, w):
      ce = optax.softmax_cross_entropy_with_integer_labels(m.apply({"params": p}, xb), yb)
      return jnp.sum(w * ce) / jnp.sum(w)
    return LevelProblem(loss, x, y)

  p0 = numpy_params(models[1], x[:1])
  cfg = MLSGDConfig(epochs=(1, 1), n_cycles=2, batch_size=16, lr=0.05,
                    variant=variant, stoch_fraction=0.25)
  out = mlsgd([make(m) for m in models], [depth_transfer()], p0, cfg)
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(out.params))
  assert out.level_epochs == [2, 2]


def test_readme_two_level_loop():
  # --- README example (kept in sync with the report) ---
  # fine model: y ≈ x @ w with 16 features; coarse model: 8 pooled features.
  prolong = lambda c: {"w": jnp.repeat(c["w"], 2)}  # noqa: E731
  restrict = lambda f: {"w": 0.5 * (f["w"][0::2] + f["w"][1::2])}  # noqa: E731
  restrict_grad = lambda g: {"w": g["w"][0::2] + g["w"][1::2]}  # noqa: E731  (= Pᵀ)
  transfer = Transfer(restrict, restrict_grad, prolong)

  def fine_loss(p, x, y):
    return jnp.mean((x @ p["w"] - y) ** 2)

  def coarse_loss(c, x, y):
    x_coarse = x[:, 0::2] + x[:, 1::2]  # the coarse model's own features
    return jnp.mean((x_coarse @ c["w"] - y) ** 2)

  opt = coarse_grid_correction_transform(
      optax.sgd(0.02), optax.adam(0.05), transfer, num_coarse_steps=10,
      every=4, lam=0.1)
  params = {"w": jnp.zeros(16)}
  state = opt.init(params)

  @jax.jit
  def step(params, state, x, y):
    loss, grads = jax.value_and_grad(fine_loss)(params, x, y)
    updates, state = opt.update(grads, state, params,
                                coarse_value_fn=lambda c: coarse_loss(c, x, y))
    return optax.apply_updates(params, updates), state, loss

  key = jax.random.key(0)
  w_true = jnp.repeat(jnp.linspace(-1, 1, 8), 2)
  losses = []
  for _ in range(100):
    key, sub = jax.random.split(key)
    x = jax.random.normal(sub, (32, 16))
    params, state, loss = step(params, state, x, x @ w_true)
    losses.append(float(loss))
  # --- end of README example ---
  check_transfer(transfer, params, {"w": jnp.zeros(8)})
  assert int(state.num_cgc) >= 10
  assert losses[-1] < 0.05 * losses[0]


def test_mlsgd_hook_switches_levels_in_engine(numpy_params):
  from nnopt.data import Dataset
  from nnopt.losses import softmax_cross_entropy
  from nnopt.multilevel import MLSGDHook
  from nnopt.engine.trainer import Trainer
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
  y = (np.arange(64) % 10).astype(np.int32)
  ds = Dataset(x, y, x[:16], y[:16], "toy", 10, "classification", {})
  models = [ODEResNet(channels=(2, 2, 2), layers_per_block=n, h=2 / n,
                      connect_norm="tv") for n in (1, 2)]
  hook = MLSGDHook(models, [depth_transfer()], epochs=(2, 1), lr=0.05,
                   loss=softmax_cross_entropy, dataset=ds, variant="det",
                   n_cycles=2)
  trainer = Trainer(models[1], softmax_cross_entropy, optax.sgd(0.1), ds,
                    batch_size=32, num_epochs=100, hooks=[hook], progress=False,
                    params=numpy_params(models[1], x[:1]), model_state={})
  run = trainer.fit()
  # cycles of (2 coarse, 1 fine) epochs, 2 steps each
  assert [lvl for _, lvl in hook.switches] == [0, 1, 0, 1]
  assert [s for s, _ in hook.switches] == [0, 4, 6, 10]
  assert run.model == models[1] and trainer.num_compilations == 2
  assert run.step == 12 and "test_loss" in trainer.history[-1]
  assert np.isfinite(trainer.history[-1]["train_loss"])
