"""The MG/Opt config and the 'mgopt' optimizer through the engine."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import config as C
from nnopt.config import optimizers as O
from nnopt.models.fnn import FNN

REPO = pathlib.Path(__file__).resolve().parents[2]
PATH = REPO / "configs" / "mgopt_depth.py"


def quick(variant, steps=None, **options):
  _, config = C.load_config_file(PATH)
  overrides = [f"optimizer.options.{k}={v!r}" for k, v in options.items()]
  if steps is not None:
    overrides.append(f"train.num_steps={steps}")
  return C.build(C.resolve(config, variant, quick=True, overrides=overrides))


def test_config_validates_and_names_mgopt():
  _, config = C.load_config_file(PATH)
  assert C.variant_names(config) == ["sgd", "mgopt", "mgopt_gated",
                                     "mgopt_galerkin"]
  for variant in C.variant_names(config):
    for q in (False, True):
      C.validate(C.resolve(config, variant, quick=q))
  assert C.resolve(config, "mgopt")["dataset"]["name"] == "mnist"
  assert C.resolve(config, "mgopt", quick=True)["optimizer"]["name"] == "mgopt"
  objective = lambda v: C.resolve(config, v)["optimizer"]["options"][  # noqa: E731
      "coarse_objective"]
  assert objective("mgopt") == objective("mgopt_gated") == "network"
  assert objective("mgopt_galerkin") == "galerkin"


def test_quick_galerkin_mgopt_takes_cgcs_and_lowers_the_loss():
  experiment = quick("mgopt_galerkin")
  trainer = experiment.trainer(progress=False)
  run = trainer.fit()
  state = run.state.opt_state
  assert run.step == 40
  assert int(state.num_cgc) == 20  # every 2nd step, no gate
  assert bool(state.info.taken) and bool(state.info.finite)
  assert float(state.info.directional) < 0  # ⟨∇f, e⟩ < 0: a descent step
  losses = [r["train_loss"] for r in trainer.history]
  assert losses[-1] < losses[0] - 0.05
  assert trainer.history[-1]["test_accuracy"] > 0.3  # chance: 0.1


def test_identity_hierarchy_with_one_coarse_step_is_the_inner_sgd():
  """R = P = id, K = 1, ᾱ = α: every cgc is one SGD step on the same batch,
  so the run retraces plain SGD."""
  mg = quick("mgopt", steps=6, hierarchy="identity", num_coarse_steps=1,
             coarse_learning_rate=None, coarse_lr_factor=1.0,
             lam=0.0).trainer(progress=False)
  sgd = quick("sgd", steps=6).trainer(progress=False)
  run_mg, run_sgd = mg.fit(), sgd.fit()
  assert int(run_mg.state.opt_state.num_cgc) == 3
  for a, b in zip(jax.tree.leaves(run_mg.params), jax.tree.leaves(run_sgd.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_mgopt_optimizer_errors():
  with pytest.raises(ValueError, match="hierarchy"):
    O.make_optimizer("mgopt", 0.1, hierarchy="width")
  with pytest.raises(O.OptimizerError, match="momentun"):
    O.make_optimizer("mgopt", 0.1, inner_options={"momentun": 0.9})
  opt = O.make_optimizer("mgopt", 0.1, coarse_objective="galerkin")
  params = FNN(widths=(4, 2)).init(jax.random.key(0), np.zeros((1, 3)))["params"]
  with pytest.raises(ValueError, match="residual"):
    opt.init(params)
  assert isinstance(opt, optax.GradientTransformationExtraArgs)


def test_coarse_lr_factor_scales_constant_and_scheduled_rates():
  params = {"w": jnp.array([1.0, -2.0, 0.5])}
  value_fn = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 3.0, 10.0]) * p["w"] ** 2)  # noqa: E731
  grads = jax.grad(value_fn)(params)

  def update(lr, **options):
    opt = O.make_optimizer("mgopt", lr, hierarchy="identity", every=1,
                           coarse_objective="galerkin", num_coarse_steps=3,
                           **options)
    updates, _ = jax.jit(lambda g, s, p: opt.update(g, s, p,
                                                    value_fn=value_fn))(
        grads, opt.init(params), params)
    return np.asarray(updates["w"])

  want = update(0.1, coarse_learning_rate=0.05)
  np.testing.assert_allclose(update(0.1, coarse_lr_factor=0.5), want, rtol=1e-6)
  np.testing.assert_allclose(
      update(dict(schedule="constant_schedule", value=0.1),
             coarse_lr_factor=0.5), want,
      rtol=1e-6)
  assert np.max(np.abs(want - update(0.1))) > 1e-4
