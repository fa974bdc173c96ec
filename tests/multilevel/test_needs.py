"""What the multilevel transforms declare they need from the step.

The declarations are read with :func:`nnopt.stats.needs.required_needs`
(an abstract ``init``), directly and through optax wrappers; the MLSGD
direction with variance reduction is checked against the formula by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt.multilevel import (MLSGDHook, angle_guard,
                              coarse_grid_correction_transform,
                              matrix_transfer, mlsgd_direction)
from nnopt.stats.needs import Needs, declare_needs, required_needs

PARAMS = {"w": jnp.zeros(4)}
TRANSFER = matrix_transfer(np.kron(np.eye(2), [[0.5, 0.5]]))


def cgc(**kwargs):
  return coarse_grid_correction_transform(
      optax.sgd(0.1), optax.sgd(0.1), TRANSFER, num_coarse_steps=2, **kwargs)


def coarse_batch_loss(theta_c, batch):
  return jnp.sum((batch["x"][:, :2] @ theta_c["w"] - batch["y"]) ** 2)


def coarse_loss(theta_c):
  return jnp.sum(theta_c["w"] ** 2)


@pytest.mark.parametrize("kwargs,needs", [
    (dict(), Needs(value_fn=True)),                        # Galerkin f_H
    (dict(coarse_batch_loss=coarse_batch_loss), Needs(batch=True)),
    (dict(coarse_loss=coarse_loss), Needs()),
    (dict(coarse_loss=coarse_loss, coarse_batch_loss=coarse_batch_loss),
     Needs()),                                             # coarse_loss wins
    (dict(coarse_loss=coarse_loss, rule="backtracking"), Needs(value_fn=True)),
    (dict(coarse_batch_loss=coarse_batch_loss, rule="backtracking"),
     Needs(value_fn=True, batch=True)),
])
def test_coarse_grid_correction_declares_its_objective(kwargs, needs):
  assert required_needs(cgc(**kwargs), PARAMS) == needs
  chained = optax.chain(optax.clip_by_global_norm(1.0), cgc(**kwargs))
  assert required_needs(chained, PARAMS) == needs


def test_coarse_grid_correction_needs_through_inject_hyperparams():
  def mgopt_like(learning_rate):
    return coarse_grid_correction_transform(
        optax.sgd(learning_rate), optax.sgd(0.1), TRANSFER, num_coarse_steps=2,
        coarse_batch_loss=coarse_batch_loss)

  opt = optax.inject_hyperparams(mgopt_like)(learning_rate=0.1)
  assert required_needs(opt, PARAMS) == Needs(batch=True)
  # The transform itself with injected λ (the rest static).
  opt = optax.inject_hyperparams(
      coarse_grid_correction_transform,
      static_args=("num_coarse_steps", "every"))(
          optax.sgd(0.1), optax.sgd(0.1), TRANSFER, num_coarse_steps=2,
          lam=0.5)
  assert required_needs(opt, PARAMS) == Needs(value_fn=True)
  assert required_needs(optax.MultiSteps(opt, 2), PARAMS) == Needs(
      value_fn=True)


def test_coarse_grid_correction_merges_the_fine_optimizers_needs():
  fine = declare_needs(optax.sgd(0.1), Needs(stats=True))
  opt = coarse_grid_correction_transform(
      fine, optax.sgd(0.1), TRANSFER, num_coarse_steps=2,
      coarse_batch_loss=coarse_batch_loss)
  assert required_needs(opt, PARAMS) == Needs(stats=True, batch=True)


def test_declared_coarse_objective_runs_with_what_it_declares():
  """The batch-declaring transform updates with only ``batch`` given (and
  raises without it); the Galerkin one with only ``value_fn``."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32)
  y = x @ jnp.arange(4.0)
  batch = {"x": x, "y": y}
  params = {"w": jnp.ones(4)}
  grads = {"w": jnp.ones(4)}
  opt = cgc(coarse_batch_loss=coarse_batch_loss, every=1)
  updates, state = opt.update(grads, opt.init(params), params, batch=batch)
  assert int(state.num_cgc) == 1 and bool(jnp.all(jnp.isfinite(updates["w"])))
  with pytest.raises(ValueError, match="needs the batch"):
    opt.update(grads, opt.init(params), params)
  opt = cgc(every=1)
  value_fn = lambda p: jnp.mean((x @ p["w"] - y) ** 2)  # noqa: E731
  updates, state = opt.update(jax.grad(value_fn)(params), opt.init(params),
                              params, value_fn=value_fn)
  assert int(state.num_cgc) == 1


@pytest.mark.parametrize("vr,needs", [(False, Needs()),
                                      (True, Needs(value_fn=True))])
def test_mlsgd_direction_declares_value_fn_with_variance_reduction(vr, needs):
  direction = mlsgd_direction(variance_reduction=vr)
  assert required_needs(direction, PARAMS) == needs
  chain = optax.chain(direction,
                      optax.inject_hyperparams(optax.sgd)(learning_rate=0.1))
  assert required_needs(chain, PARAMS) == needs
  guarded = angle_guard(chain, lambda p: p, 0.0)
  assert required_needs(guarded, PARAMS) == needs
  assert required_needs(optax.inject_hyperparams(
      lambda learning_rate: optax.chain(
          mlsgd_direction(variance_reduction=vr),
          optax.sgd(learning_rate)))(learning_rate=0.1), PARAMS) == needs


def test_mlsgd_direction_with_variance_reduction_against_the_formula():
  """d = g + ∇r(w) + s + λ(w − w0) − ∇(f_B + r)(w0), f_B and r quadratics."""
  rng = np.random.default_rng(1)
  A = rng.normal(size=(4, 4)).astype(np.float32)
  A = A @ A.T
  b = rng.normal(size=4).astype(np.float32)
  w, w0, s, g = (jnp.asarray(rng.normal(size=4), jnp.float32)
                 for _ in range(4))
  lam, rho = 0.7, 0.3
  value_fn = lambda p: 0.5 * p["w"] @ A @ p["w"] - b @ p["w"]  # noqa: E731
  reg = lambda p: 0.5 * rho * jnp.sum(p["w"] ** 2)  # noqa: E731
  direction = mlsgd_direction(reg, variance_reduction=True)
  state = direction.init({"w": w})._replace(
      ref={"w": w0}, shift={"w": s}, lam=jnp.asarray(lam),
      vr=jnp.asarray(True))
  d, _ = direction.update({"w": g}, state, {"w": w}, value_fn=value_fn)
  A64, b64 = A.astype(np.float64), b.astype(np.float64)
  w_, w0_, s_, g_ = (np.asarray(v, np.float64) for v in (w, w0, s, g))
  want = (g_ + rho * w_ + s_ + lam * (w_ - w0_)
          - (A64 @ w0_ - b64 + rho * w0_))
  np.testing.assert_allclose(d["w"], want, rtol=1e-5, atol=1e-5)
  # vr off in the state: no SVRG term.
  d, _ = direction.update({"w": g}, state._replace(vr=jnp.asarray(False)),
                          {"w": w}, value_fn=value_fn)
  np.testing.assert_allclose(d["w"], g_ + rho * w_ + s_ + lam * (w_ - w0_),
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="value_fn"):
    direction.update({"w": g}, state, {"w": w})


def test_mlsgd_hook_optimizers_declare_value_fn_only_for_vr_variants():
  models = [object(), object()]
  for variant, needs in [("none", Needs()), ("det_vr", Needs(value_fn=True))]:
    hook = MLSGDHook(models, [TRANSFER], (1, 1), lr=0.1, variant=variant,
                     loss=object(), dataset=object(), angle_check="per_step")
    for level, params in enumerate([{"w": jnp.zeros(2)}, PARAMS]):
      assert required_needs(hook.optimizers[level], params) == needs
