"""MLSGD in the engine (closed forms and numpy loops), ODE-ResNet counts and
the README loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import flax.linen as nn
import pytest

from nnopt.data import Dataset, EpochSampler
from nnopt.engine.trainer import Trainer
from nnopt.losses import softmax_cross_entropy, squared_error
from nnopt.models import count_params
from nnopt.models.odenet import ODEResNet
from nnopt.multilevel import (MLSGDConfig, MLSGDHook, Transfer,
                              check_transfer, coarse_grid_correction_transform,
                              depth_transfer, identity_transfer,
                              matrix_transfer)


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


class Linear(nn.Module):
  """y = (x Rᵀ) w: ``R`` (a tuple of rows) gives a coarse model its own
  features of the fine inputs; None is the fine model."""

  dim: int
  R: tuple | None = None

  @nn.compact
  def __call__(self, x):
    w = self.param("w", nn.initializers.zeros, (self.dim,))
    if self.R is not None:
      x = x @ jnp.asarray(self.R, x.dtype).T
    return (x @ w)[:, None]


def linear_data(n=64, d=6, seed=0):
  rng = np.random.default_rng(seed)
  X = rng.normal(size=(n, d)).astype(np.float32)
  y = (X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)).astype(np.float32)
  return Dataset(X, y[:, None], X[:8], y[:8, None], "toy", None, "regression")


def grad_np(X, y, w):
  """∇ of mean ½(Xw − y)² (numpy)."""
  return X.T @ (X @ w - y) / len(X)


def fit(model, ds, hooks, batch_size, params, num_epochs=1000, seed=3):
  trainer = Trainer(model, squared_error, optax.sgd(0.0), ds,
                    batch_size=batch_size, num_epochs=num_epochs, hooks=hooks,
                    params=params, model_state={}, seed=seed, progress=False)
  return trainer, trainer.fit()


def test_identity_hierarchy_without_gc_equals_sgd():
  """Two identical levels, no correction: 2 cycles of (1, 1) epochs are 4
  epochs of SGD in the engine's data order (numpy loop)."""
  ds = linear_data()
  model = Linear(6)
  hook = MLSGDHook([model, model], [identity_transfer()], (1, 1), lr=0.05,
                   n_cycles=2)
  _, run = fit(model, ds, [hook], 8, {"w": jnp.zeros(6)})
  X, y = ds.x_train.astype(np.float64), ds.y_train[:, 0].astype(np.float64)
  order, w = EpochSampler(64, 8, seed=3).permutation, np.zeros(6)
  for epoch in range(4):
    for idx in order(epoch).reshape(-1, 8):
      w = w - 0.05 * grad_np(X[idx], y[idx], w)
  np.testing.assert_allclose(run.params["w"], w, atol=1e-5)
  assert hook.level_epochs == [2, 2] and run.step == 32


def test_det_vr_full_batch_is_gradient_descent():
  """With B = N, det+VR on the top level is GD (SVRG terms cancel exactly);
  on the identical coarse level with λ = 0 it is GD as well."""
  ds = linear_data()
  model = Linear(6)
  hook = MLSGDHook([model, model], [identity_transfer()], (1, 3), lr=0.1,
                   loss=squared_error, dataset=ds, variant="det_vr", lam=0.0,
                   n_cycles=2)
  _, run = fit(model, ds, [hook], 64, {"w": jnp.ones(6)})
  X, y = ds.x_train.astype(np.float64), ds.y_train[:, 0].astype(np.float64)
  w = np.ones(6)
  for _ in range(8):
    w = w - 0.1 * grad_np(X, y, w)
  np.testing.assert_allclose(run.params["w"], w, atol=1e-5)


def test_det_correction_is_first_order_coherent():
  """∇H_l(w0_l) = Pᵀ∇F_{l+1}(w0_{l+1}): with a different coarse model, one
  full-batch coarse step of the corrected cycle moves the fine point by
  −α Rᵀ R ∇F (closed form), then a fine GD step follows."""
  ds = linear_data()
  X, y = ds.x_train.astype(np.float64), ds.y_train[:, 0].astype(np.float64)
  R = np.zeros((3, 6))
  R[[0, 1, 2], [0, 2, 4]] = 1.0
  t = matrix_transfer(jnp.asarray(R, jnp.float32))
  fine, coarse = Linear(6), Linear(3, R=tuple(map(tuple, R)))
  w0 = np.arange(6.0) / 6
  hook = MLSGDHook([coarse, fine], [t], (1, 1), lr=0.1, loss=squared_error,
                   dataset=ds, variant="det", lam=5.0, n_cycles=2)
  _, run = fit(fine, ds, [hook], 64, {"w": jnp.asarray(w0, jnp.float32)})
  Xc = X @ R.T
  # cycle 0 (no correction): a coarse GD step from R w, prolonged; a fine step
  wc = R @ w0
  w1 = w0 + R.T @ (-0.1 * grad_np(Xc, y, wc))
  w1 = w1 - 0.1 * grad_np(X, y, w1)
  # cycle 1 (corrected): the first coarse direction is R ∇F(w1) exactly
  G = grad_np(X, y, w1)
  wc = R @ w1
  shift = R @ G - grad_np(Xc, y, wc)
  d = grad_np(Xc, y, wc) + shift  # + λ(w − w0) = 0 at the start
  np.testing.assert_allclose(d, R @ G, atol=1e-12)
  w2 = w1 + R.T @ (-0.1 * d)
  w2 = w2 - 0.1 * grad_np(X, y, w2)
  np.testing.assert_allclose(run.params["w"], w2, atol=1e-5)
  assert hook.level_epochs == [2, 2]


def test_angle_check_and_gates():
  ds = linear_data()
  model = Linear(6)
  # μ = 1 is unreachable for mini-batch steps: each level rejects its first
  # step and returns its start point, so nothing moves.
  hook = MLSGDHook([model, model], [identity_transfer()], (2, 1), lr=0.05,
                   loss=squared_error, dataset=ds, angle_check="per_step",
                   mu=1.0, n_cycles=1)
  _, run = fit(model, ds, [hook], 8, {"w": jnp.zeros(6)})
  assert hook.level_epochs == [1, 1] and hook.rejected == 2
  np.testing.assert_array_equal(run.params["w"], np.zeros(6))
  # μ = 0 with a full batch: GD steps always descend, nothing is rejected
  hook = MLSGDHook([model, model], [identity_transfer()], (2, 1), lr=0.05,
                   loss=squared_error, dataset=ds, angle_check="per_step",
                   mu=0.0, n_cycles=1)
  fit(model, ds, [hook], 64, {"w": jnp.zeros(6)})
  assert hook.level_epochs == [2, 1] and hook.rejected == 0
  # gate η > 1 can never pass: no recursion at all
  hook = MLSGDHook([model, model], [identity_transfer()], (2, 1), lr=0.05,
                   loss=squared_error, dataset=ds, eta=1.5, n_cycles=2)
  fit(model, ds, [hook], 8, {"w": jnp.zeros(6)})
  assert hook.level_epochs == [0, 2] and hook.lowest == [1, 1]
  with pytest.raises(ValueError, match="variant"):
    MLSGDConfig(epochs=(1,), n_cycles=1, variant="x").validate(1)
  with pytest.raises(ValueError, match="loss= and dataset="):
    MLSGDHook([model, model], [identity_transfer()], (1, 1), lr=0.1,
              variant="det")


@pytest.mark.parametrize("variant", ["stoch", "stoch_vr"])
def test_stochastic_variants_run_on_depth_hierarchy(variant, numpy_params):
  """ODE-ResNet levels in the engine: finite weights, the epoch schedule."""
  x = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype(np.float32)
  y = (np.arange(32) % 10).astype(np.int32)
  ds = Dataset(x, y, x[:8], y[:8], "toy", 10)
  models = [ODEResNet(channels=(2, 2, 2), layers_per_block=n, h=2 / n,
                      connect_norm="tv") for n in (1, 2)]
  hook = MLSGDHook(models, [depth_transfer()], (1, 1), lr=0.05,
                   loss=softmax_cross_entropy, dataset=ds, variant=variant,
                   stoch_fraction=0.25, n_cycles=2)
  trainer = Trainer(models[1], softmax_cross_entropy, optax.sgd(0.0), ds,
                    batch_size=16, num_epochs=100, hooks=[hook],
                    params=numpy_params(models[1], x[:1]), model_state={},
                    progress=False)
  run = trainer.fit()
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(run.params))
  assert hook.level_epochs == [2, 2] and run.model == models[1]


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
