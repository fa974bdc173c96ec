"""MG/Opt with a real coarse network (half the residual layers, step 2h)."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax.tree_utils as otu
import pytest

from nnopt import config as C
from nnopt.config import optimizers as O
from nnopt.losses import get_loss
from nnopt.models.fnn import FNN
from nnopt.models.odenet import ODEResNet
from nnopt.multilevel import (cgc_objective, depth_coarse_model, depth_transfer,
                              network_coarse_loss)

REPO = pathlib.Path(__file__).resolve().parents[2]
PATH = REPO / "configs" / "mgopt_depth.py"
LOSS = get_loss("softmax_cross_entropy")
MODEL = ODEResNet(channels=(2, 4), layers_per_block=2, h=0.5, n_classes=3,
                  connect_norm="tv")


def small_problem(numpy_params, model=MODEL):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(6, 8, 8, 1)), jnp.float32)
  batch = {"x": x, "y": jnp.asarray(rng.integers(0, 3, 6)),
           "weights": jnp.ones(6)}
  return numpy_params(model, x), batch


def fine_loss(params, batch, model=MODEL):
  return LOSS(model.apply({"params": params}, batch["x"]), batch["y"],
              batch["weights"])


def rel_err(a, b):
  return float(otu.tree_norm(otu.tree_sub(a, b)) / otu.tree_norm(b))


def test_coarse_model_halves_the_layers_and_doubles_h():
  coarse = depth_coarse_model(MODEL)
  assert (coarse.layers_per_block, coarse.h) == (1, 1.0)
  assert coarse.channels == MODEL.channels
  assert coarse.connect_norm == "tv"


def test_network_cgc_objective_is_first_order_coherent(numpy_params):
  """∇h(R_pθ) = R_g∇f(θ) (Lemma 2.34) with f_H the half-depth, 2h network,
  under jit; the network is no Galerkin model (v̄ ≠ 0)."""
  params, batch = small_problem(numpy_params)
  transfer = depth_transfer("constant")
  f_H = network_coarse_loss(depth_coarse_model(MODEL), LOSS)

  @jax.jit
  def gradients(params, batch):
    g = jax.grad(fine_loss)(params, batch)
    ref = transfer.restrict_params(params)
    h = cgc_objective(lambda c: f_H(c, batch), transfer.restrict_grad(g), ref)
    return (jax.grad(h)(ref), transfer.restrict_grad(g),
            jax.grad(f_H)(ref, batch))

  grad_h, restricted, coarse_grad = gradients(params, batch)
  assert rel_err(grad_h, restricted) < 1e-5
  assert rel_err(coarse_grad, restricted) > 1e-2  # f_H is its own model
  assert jax.tree.structure(grad_h) == jax.tree.structure(
      transfer.restrict_params(params))


def test_one_coarse_step_is_the_prolonged_restricted_gradient(numpy_params):
  """Through the optimizer (K = 1, α_cgc = 1): e = −ᾱ P R_g g; with K = 2
  the network and the Galerkin objectives differ."""
  params, batch = small_problem(numpy_params)
  transfer = depth_transfer("constant")
  g = jax.grad(fine_loss)(params, batch)
  want = transfer.prolong(otu.tree_scale(-0.1, transfer.restrict_grad(g)))

  def cgc_update(**options):
    opt = O.make_optimizer("mgopt", 0.05, model=MODEL, every=1,
                           coarse_learning_rate=0.1, **options)

    @jax.jit
    def update(params, batch):
      value_fn = lambda p: fine_loss(p, batch)  # noqa: E731
      u, state = opt.update(g, opt.init(params), params, grad=g,
                            value_fn=value_fn, batch=batch)
      return u, state.num_cgc

    u, num_cgc = update(params, batch)
    assert int(num_cgc) == 1
    return u

  assert rel_err(cgc_update(num_coarse_steps=1), want) < 1e-5
  network = cgc_update(num_coarse_steps=2)
  galerkin = cgc_update(num_coarse_steps=2, coarse_objective="galerkin")
  assert rel_err(network, galerkin) > 1e-3


def test_quick_config_with_the_network_coarse_model_trains():
  """The default variant (coarse network) through the engine, with the
  config's λ = 5 and ᾱ = α/2 (with λ = 0 and ᾱ = α the 5 coarse steps on the
  nearly linear h overshoot and the quick run stalls)."""
  _, config = C.load_config_file(PATH)
  resolved = C.resolve(config, "mgopt", quick=True,
                       overrides=["train.num_steps=80"])
  assert resolved["optimizer"]["options"]["coarse_objective"] == "network"
  assert resolved["optimizer"]["options"]["lam"] == 5.0
  assert resolved["optimizer"]["options"]["coarse_lr_factor"] == 0.5
  trainer = C.build(resolved).trainer(progress=False)
  run = trainer.fit()
  state = run.state.opt_state
  assert run.step == 80
  assert int(state.num_cgc) == 40  # every 2nd step, no gate
  assert bool(state.info.taken) and bool(state.info.finite)
  assert float(state.info.e_norm) > 0
  losses = [r["train_loss"] for r in trainer.history]
  assert losses[-1] < losses[0] - 0.1


def test_network_coarse_model_errors(numpy_params):
  with pytest.raises(ValueError, match="needs the run's model"):
    O.make_optimizer("mgopt", 0.1)
  with pytest.raises(ValueError, match="ODE-ResNet-like"):
    O.make_optimizer("mgopt", 0.1, model=FNN(widths=(4, 2)))
  with pytest.raises(ValueError, match="even number"):
    O.make_optimizer("mgopt", 0.1, model=ODEResNet(layers_per_block=3))
  with pytest.raises(ValueError, match="coarse_objective"):
    O.make_optimizer("mgopt", 0.1, model=MODEL, coarse_objective="exact")
  # Through a config: an FNN has no residual depth to coarsen.
  _, config = C.load_config_file(PATH)
  resolved = C.resolve(config, "mgopt", quick=True, overrides=[
      "model.name=fnn", "model.options={'widths': [16, 10]}"])
  with pytest.raises(C.ConfigError, match="ODE-ResNet-like"):
    C.build(resolved)

  params, batch = small_problem(numpy_params)
  g = jax.grad(fine_loss)(params, batch)
  opt = O.make_optimizer("mgopt", 0.1, model=MODEL, every=1)
  state = opt.init(params)
  with pytest.raises(ValueError, match="needs the batch"):  # outside the engine
    opt.update(g, state, params, value_fn=lambda p: fine_loss(p, batch))
  deeper = ODEResNet(channels=(2, 4), layers_per_block=4, h=0.5, n_classes=3,
                     connect_norm="tv")
  mismatched = O.make_optimizer("mgopt", 0.1, model=deeper, every=1)
  with pytest.raises(ValueError, match="do not fit the coarse network"):
    mismatched.update(g, state, params, batch=batch)
