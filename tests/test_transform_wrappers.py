"""The remaining public transforms under optax's wrappers and dtypes.

(The noise-aware aliases: tests/noise/test_wrappers.py; the covariance
preconditioners: tests/frobenius/test_pieces.py.) For
:func:`nnopt.preconditioning.inner_product_sgd` and
:func:`~nnopt.preconditioning.scale_by_inner_products`, MG/Opt's
:func:`nnopt.multilevel.coarse_grid_correction_transform`, and MLSGD's
:func:`~nnopt.multilevel.mlsgd_direction` and
:func:`~nnopt.multilevel.angle_guard`: ``optax.chain``,
``optax.inject_hyperparams`` (the learning rate and a float hyperparameter of
the transform's own, where it has them), ``optax.MultiSteps``,
``optax.apply_if_finite`` (also on a NaN gradient), ``jax.eval_shape(init)``,
one compilation for many steps, float64, and bfloat16 parameters with updates
in bfloat16. The oracle is the plain transform in float32 on the same
numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import multilevel as ml
from nnopt import preconditioning as pc
from nnopt.models import FNN, init_params
from nnopt.stats.needs import Needs, required_needs

MODEL = FNN((5, 3), activation="tanh")


def _loss(params, x, y):
  logits = MODEL.apply({"params": params}, x)
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _l2(params):
  return 1e-2 * sum(
      jnp.sum(jnp.square(p.astype(jnp.promote_types(p.dtype, jnp.float32))))
      for p in jax.tree.leaves(params))


# The layer spaces of MODEL: dense_0 maps 4 -> 5, dense_1 maps 5 -> 3.
_SPD4 = np.eye(4) + 0.3 * np.ones((4, 4))
_SPD3 = np.diag([1.0, 2.0, 0.5])
INNER_PRODUCTS = {"dense_0": (pc.fixed_spd(_SPD4.astype(np.float32)),
                              pc.scaled_identity(2.0)),
                  "dense_1": (pc.euclidean(),
                              pc.fixed_spd(_SPD3.astype(np.float32)))}


@dataclasses.dataclass(frozen=True)
class Case:
  """A transform under test.

  factory(**static, **floats) builds it; ``floats`` are the float
  hyperparameters that inject_hyperparams injects (the learning rate and
  the transform's own, where it has them); ``needs`` what it declares;
  ``prepare(state, grad)`` sets what a caller sets in its state.
  """

  factory: Callable[..., optax.GradientTransformation]
  static: dict[str, Any]
  floats: dict[str, float]
  needs: Needs = Needs()
  static_args: tuple[str, ...] = ()
  prepare: Callable[[Any, Any], Any] = lambda state, grad: state

  def make(self, **floats):
    return self.factory(**self.static, **{**self.floats, **floats})

  def injected(self):
    return optax.inject_hyperparams(self.factory,
                                    static_args=self.static_args)(
                                        **self.static, **self.floats)


def _set_fine_grad(state, grad):
  """Sets G_L of every AngleGuardState (as MLSGDHook does at a cycle start)."""
  def fix(node):
    if isinstance(node, ml.AngleGuardState):
      return node._replace(fine_grad=jax.tree.map(
          lambda g, r: g.astype(r.dtype), grad, node.fine_grad))
    return node
  return jax.tree.map(fix, state,
                      is_leaf=lambda n: isinstance(n, ml.AngleGuardState))


def _cgc(fine_lr, *, num_coarse_steps, every, alpha_cgc, lam):
  return ml.coarse_grid_correction_transform(
      optax.sgd(fine_lr), optax.sgd(0.02), ml.identity_transfer(),
      num_coarse_steps=num_coarse_steps, every=every, alpha_cgc=alpha_cgc,
      lam=lam)


def _mlsgd_sgd(learning_rate):
  return optax.chain(ml.mlsgd_direction(_l2), optax.sgd(learning_rate))


CASES = {
    "inner_product_sgd": Case(pc.inner_product_sgd,
                              {"inner_products": INNER_PRODUCTS},
                              {"learning_rate": 0.05}),
    "scale_by_inner_products": Case(pc.scale_by_inner_products,
                                    {"inner_products": INNER_PRODUCTS}, {}),
    # every=2: a coarse-grid correction on every second step; the Galerkin
    # coarse objective needs value_fn.
    "coarse_grid_correction_transform": Case(
        _cgc, {"num_coarse_steps": 3, "every": 2},
        {"fine_lr": 0.05, "alpha_cgc": 0.8, "lam": 0.1},
        needs=Needs(value_fn=True), static_args=("num_coarse_steps", "every")),
    "mlsgd_direction": Case(ml.mlsgd_direction, {"regularizer": _l2}, {},
                            static_args=("regularizer",)),
    "mlsgd_direction_then_sgd": Case(_mlsgd_sgd, {}, {"learning_rate": 0.05}),
    "mlsgd_direction_vr": Case(ml.mlsgd_direction,
                               {"regularizer": _l2, "variance_reduction": True},
                               {}, needs=Needs(value_fn=True),
                               static_args=("regularizer",
                                            "variance_reduction")),
    "angle_guard": Case(
        lambda mu, learning_rate: ml.angle_guard(
            optax.sgd(learning_rate), lambda p: p, mu),
        {}, {"learning_rate": 0.05, "mu": 0.1}, prepare=_set_fine_grad),
}
NAMES = sorted(CASES)


def _data(dtype=jnp.float32):
  """Parameters exact in bfloat16 (every dtype starts from the same values)
  and 4 batches."""
  x = jax.random.normal(jax.random.key(0), (4, 8, 4))
  y = jax.random.randint(jax.random.key(1), (4, 8), 0, 3)
  params = init_params(MODEL, jax.random.key(2), x[0])
  return jax.tree.map(lambda p: p.astype(jnp.bfloat16).astype(dtype),
                      params), x, y


def _stepper(opt):
  """A jitted step (passing value_fn, as nnopt's engine does) and a list that
  grows by one per trace."""
  traces = []

  @jax.jit
  def step(params, state, x, y):
    traces.append(1)
    value_fn = lambda p: _loss(p, x, y)
    loss, grads = jax.value_and_grad(value_fn)(params)
    updates, state = opt.update(grads, state, params, value=loss,
                                value_fn=value_fn, grad=grads)
    return optax.apply_updates(params, updates), state, updates

  return step, traces


def _first_grad(params, x, y):
  return jax.grad(_loss)(params, x[0], y[0])


def _run(case, opt, params, x, y, steps=3):
  step, traces = _stepper(opt)
  state = case.prepare(opt.init(params), _first_grad(params, x, y))
  history = []
  for t in range(steps):
    params, state, updates = step(params, state, x[t], y[t])
    history.append(updates)
  return params, state, history, traces


_PLAIN: dict[str, Any] = {}


def _plain(name):
  """Updates of 4 jitted float32 steps of the plain transform."""
  if name not in _PLAIN:
    case = CASES[name]
    params, x, y = _data()
    _, _, history, traces = _run(case, case.make(), params, x, y, steps=4)
    assert len(traces) == 1
    _PLAIN[name] = jax.device_get(history)
  return _PLAIN[name]


def _close(a, b, **tol):
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(u, np.float64),
                               np.asarray(v, np.float64), **tol)


def _differs(a, b):
  return any(not np.allclose(u, v) for u, v in zip(jax.tree.leaves(a),
                                                   jax.tree.leaves(b)))


@pytest.mark.parametrize("name", NAMES)
def test_needs_through_wrappers(name):
  case = CASES[name]
  params, _, _ = _data()
  for opt in (case.make(), optax.chain(optax.identity(), case.make()),
              case.injected(), optax.MultiSteps(case.make(), 2),
              optax.apply_if_finite(case.make(), 2)):
    assert required_needs(opt, params) == case.needs


@pytest.mark.parametrize("name", NAMES)
def test_eval_shape_init(name):
  case = CASES[name]
  params, _, _ = _data()
  for opt in (case.make(), case.injected()):
    abstract = jax.eval_shape(opt.init, params)
    concrete = opt.init(params)
    assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
    for a, b in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete)):
      assert (a.shape, a.dtype) == (b.shape, b.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_chain_equals_plain_and_compiles_once(name):
  case = CASES[name]
  params, x, y = _data()
  plain = _plain(name)
  assert any(_differs(u, jax.tree.map(jnp.zeros_like, u)) for u in plain)
  chained = optax.chain(optax.identity(), case.make(), optax.identity())
  _, _, history, traces = _run(case, chained, params, x, y)
  assert len(traces) == 1
  for a, b in zip(history, plain):
    _close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams(name):
  case = CASES[name]
  params, x, y = _data()
  plain = _plain(name)
  opt = case.injected()
  step, traces = _stepper(opt)
  p = params
  state = case.prepare(opt.init(params), _first_grad(params, x, y))
  for t in range(3):
    p, state, updates = step(p, state, x[t], y[t])
    _close(updates, plain[t], rtol=1e-5, atol=1e-7)
  # Each injected float takes effect (within two steps: MG/Opt alternates
  # fine and coarse steps), and changing it reuses the compiled step.
  def two_steps(state):
    p1, s1, u1 = step(p, state, x[3], y[3])
    return [u1, step(p1, s1, x[0], y[0])[2]]

  unchanged = two_steps(state)
  _close(unchanged[0], plain[3], rtol=1e-5, atol=1e-7)
  for key, value in case.floats.items():
    changed = jax.tree.map(lambda s: s, state)
    changed.hyperparams[key] = jnp.asarray(value * 9.99, jnp.float32)
    assert any(_differs(a, b) for a, b in zip(two_steps(changed), unchanged)), key
  assert len(traces) == 1


@pytest.mark.parametrize("name", NAMES)
def test_multisteps(name):
  case = CASES[name]
  params, x, y = _data()
  multi = optax.MultiSteps(case.make(), every_k_schedule=2)
  _, state, history, traces = _run(case, multi, params, x, y, steps=4)
  assert len(traces) == 1 and int(state.gradient_step) == 2
  for t, updates in enumerate(history):
    leaves = jax.tree.leaves(updates)
    assert all(np.all(np.isfinite(u)) for u in leaves)
    assert any(np.any(u != 0) for u in leaves) == (t % 2 == 1), t


@pytest.mark.parametrize("name", NAMES)
def test_apply_if_finite(name):
  case = CASES[name]
  params, x, y = _data()
  guarded = optax.apply_if_finite(case.make(), max_consecutive_errors=3)
  _, state, history, traces = _run(case, guarded, params, x, y)
  assert len(traces) == 1
  for a, b in zip(history, _plain(name)):
    _close(a, b, rtol=1e-5, atol=1e-7)
  # A NaN gradient: a zero update, the inner state kept, the error counted.
  nan_grads = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), params)
  updates, after = guarded.update(nan_grads, state, params,
                                  value_fn=lambda p: _loss(p, x[0], y[0]),
                                  value=jnp.nan, grad=nan_grads)
  assert all(np.all(u == 0) for u in jax.tree.leaves(updates))
  assert int(after.notfinite_count) == 1
  _close(after.inner_state, state.inner_state, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_params_give_bfloat16_updates(name):
  case = CASES[name]
  params16, x, y = _data(jnp.bfloat16)
  for opt in (case.make(), case.injected()):
    new16, _, history, traces = _run(case, opt, params16, x, y)
    assert len(traces) == 1
    for updates in history:
      for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16
        assert np.all(np.isfinite(np.float32(u)))
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(new16))
    # The first step (same parameter values) against float32: bfloat16
    # gradients are rounded, and so are the updates.
    for a, b in zip(jax.tree.leaves(history[0]),
                    jax.tree.leaves(_plain(name)[0])):
      scale = float(np.max(np.abs(b))) + 1e-12
      np.testing.assert_allclose(np.float32(a), b, atol=0.03 * scale)


@pytest.mark.parametrize("name", NAMES)
def test_float64(name):
  case = CASES[name]
  params, x, y = _data()
  ref = _plain(name)[:3]
  with jax.enable_x64(True):
    params64 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    x64 = jnp.asarray(x, jnp.float64)
    _, state, history, traces = _run(case, case.make(), params64, x64, y)
    assert len(traces) == 1
    for updates in history:
      assert all(u.dtype == jnp.float64 for u in jax.tree.leaves(updates))
    history = jax.device_get(history)
  for a, b in zip(history, ref):
    _close(a, b, rtol=1e-3, atol=1e-6)
