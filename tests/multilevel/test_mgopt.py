"""MG/Opt: Galerkin lemmas, Thm 3.10, coherence, gates, step rules, drivers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt.models.odenet import ODEResNet
from nnopt.multilevel import (Quadratic, algorithm4, algorithm5,
                              apply_correction, cgc_gradient, cgc_objective,
                              coarse_grid_correction,
                              coarse_grid_correction_transform, depth_transfer,
                              eigen_restriction, eigen_transfer,
                              exact_quadratic_cgc, galerkin_quadratic, gate,
                              identity_transfer, matrix_transfer, two_level,
                              vcycle)


@pytest.fixture(autouse=True)
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def quadratic(n=20, seed=0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  lam = np.concatenate([rng.uniform(0.1, 0.5, n // 2), rng.uniform(1, 5, n - n // 2)])
  return Quadratic(jnp.asarray(q @ np.diag(lam) @ q.T), jnp.asarray(rng.normal(size=n)))


@pytest.mark.parametrize("which", ["largest", "smallest", "random"])
def test_exact_cgc_removes_eigenspace_error(which):
  """Thm 3.10 (equality) and Lemma 3.9 for the Def. 3.6 operators."""
  quad = quadratic()
  t = eigen_transfer(quad.A, 8, which, jax.random.key(0))
  R = eigen_restriction(quad.A, 8, which, jax.random.key(0))
  theta = jnp.asarray(np.random.default_rng(1).normal(size=20))
  star = quad.minimizer()
  e = jax.jit(lambda th: exact_quadratic_cgc(quad, t, th))(theta)
  PR = R.T @ R
  np.testing.assert_allclose(theta + e - star, (np.eye(20) - PR) @ (theta - star),
                             atol=1e-12)
  coarse = galerkin_quadratic(quad, t)
  ref = R @ theta
  shift = R @ quad.grad(theta) - coarse.grad(ref)
  np.testing.assert_allclose(shift, 0, atol=1e-12)  # v̄_k = 0
  np.testing.assert_allclose(R @ star, ref + R @ e, atol=1e-12)  # R θ* = θ̄*
  np.testing.assert_allclose((np.eye(20) - PR) @ quad.A @ e, 0, atol=1e-12)
  np.testing.assert_allclose(np.linalg.inv(coarse.A), R @ np.linalg.inv(quad.A) @ R.T,
                             atol=1e-10)


def test_galerkin_lemmas_3_2_and_3_3():
  quad = quadratic(12, 3)
  rng = np.random.default_rng(2)
  P = rng.normal(size=(12, 5))
  c = 0.5
  t = matrix_transfer(c * P.T, P=P, R_g=c * P.T)
  coarse = galerkin_quadratic(quad, t)
  np.testing.assert_allclose(coarse.A, c * P.T @ quad.A @ P, atol=1e-12)
  assert np.all(np.linalg.eigvalsh(np.asarray(coarse.A)) > 0)  # Lemma 3.2
  np.testing.assert_allclose(coarse.b, c * P.T @ quad.b)
  theta = jnp.asarray(rng.normal(size=12))
  e = exact_quadratic_cgc(quad, t, theta)
  # Lemma 3.3: R_g ∇f(θ) = −R_p A e at an exact cgc
  np.testing.assert_allclose(c * P.T @ quad.grad(theta), -c * P.T @ quad.A @ e,
                             atol=1e-10)


def test_first_order_coherence_on_odenet_depth_hierarchy(numpy_params):
  """∇h(θ̄ᵏ) = R_g∇f(θᵏ) to 1e-5 relative; one GD step gives −ᾱ P R_g ∇f."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 8, 8, 3)))
  y = jnp.arange(6) % 10
  fine_m = ODEResNet(channels=(3, 3, 4), layers_per_block=4, h=0.5, connect_norm="tv")
  coarse_m = ODEResNet(channels=(3, 3, 4), layers_per_block=2, h=1.0, connect_norm="tv")
  fine = numpy_params(fine_m, x, seed=1)
  loss = lambda m: lambda p: optax.softmax_cross_entropy_with_integer_labels(  # noqa: E731
      m.apply({"params": p}, x), y).mean()
  t = depth_transfer("constant")

  @jax.jit
  def coherence(fine):
    g = jax.grad(loss(fine_m))(fine)
    ref = t.restrict_params(fine)
    h = cgc_objective(loss(coarse_m), t.restrict_grad(g), ref, lam=3.0)
    # independent oracle: Pᵀ∇f as the gradient of θ̄ ↦ f(θ + P(θ̄ − Rθ))
    galerkin = jax.grad(lambda tc: loss(fine_m)(jax.tree.map(
        lambda a, b: a + b, fine, t.prolong(jax.tree.map(jnp.subtract, tc, ref)))))(ref)
    # one coarse GD step: e = −ᾱ P R_g ∇f
    grad_h = cgc_gradient(lambda p, s: jax.grad(loss(coarse_m))(p),
                          lambda p, s: jax.grad(loss(fine_m))(p), t, fine,
                          mode="exact")
    new, info = coarse_grid_correction(
        fine, g, t, grad_h, jnp.zeros(1), coarse_optimizer=optax.sgd(0.1))
    return jax.grad(h)(ref), t.restrict_grad(g), galerkin, new, info

  got, want, galerkin, new, info = coherence(fine)
  flat = lambda tree: jnp.concatenate([v.ravel() for v in jax.tree.leaves(tree)])  # noqa: E731
  assert jnp.linalg.norm(flat(got) - flat(want)) <= 1e-5 * jnp.linalg.norm(flat(want))
  assert jnp.linalg.norm(flat(galerkin) - flat(want)) <= 1e-5 * jnp.linalg.norm(flat(want))
  e = jax.tree.map(jnp.subtract, new, fine)
  want_e = jax.tree.map(lambda v: -0.1 * v, t.prolong(want))
  assert jnp.linalg.norm(flat(e) - flat(want_e)) <= 1e-5 * jnp.linalg.norm(flat(want_e))
  assert bool(info.taken) and info.directional < 0


def test_gate_modes_against_numpy():
  R = np.zeros((2, 4))
  R[0, 0] = R[1, 1] = 1.0
  t = matrix_transfer(jnp.asarray(R))
  g = jnp.array([1.0, 0.0, 1.0, 1.0])
  ratio = 1 / np.sqrt(3)
  for mode, kappa, expect in [("alg5", 0.3, True), ("alg5", 0.34, False),
                              ("alg4", 0.3, True), ("exp_B2", 0.5, True),
                              ("exp_B2", 0.6, False)]:
    passed, r = gate(g, t, mode, kappa)
    assert bool(passed) == expect, mode
    np.testing.assert_allclose(r, ratio)
  passed, _ = gate(g, t, "exp_B2", 0.5, kappa2=2.0)  # absolute κ2 fails
  assert not bool(passed)
  with pytest.raises(ValueError, match="gate mode"):
    gate(g, t, "bogus")


def test_algorithm4_gate_decisions_and_contraction():
  quad = quadratic(20, 4)
  t = eigen_transfer(quad.A, 10, "largest")
  kappa = 0.3
  noise = lambda th, k: quad.grad(th) + 0.01 * jax.random.normal(k, th.shape)  # noqa: E731
  theta0 = jnp.asarray(np.random.default_rng(0).normal(size=20))
  theta, hist = jax.jit(lambda th: algorithm4(
      quad, t, th, jax.random.key(0), num_iters=60, lr=0.05,
      stochastic_grad=noise, kappa=kappa))(theta0)
  cgc, ratio = np.asarray(hist.cgc), np.asarray(hist.gate_ratio)
  prev = np.concatenate([[False], cgc[:-1]])
  np.testing.assert_array_equal(cgc, (ratio ** 2 > kappa) & ~prev)
  assert cgc.sum() >= 1 and not np.any(cgc[1:] & cgc[:-1])
  # an exact cgc with Def. 3.6 operators removes the eigenspace error, so f
  # drops at every cgc (the SGD steps may not decrease f).
  values = np.asarray(hist.value)
  for k in np.flatnonzero(cgc[:-1]):
    assert values[k + 1] < values[k]
  assert hist.value[-1] < hist.value[0]


def test_nonfinite_correction_is_rejected():
  params = {"w": jnp.ones(3)}
  e = {"w": jnp.array([1.0, jnp.nan, 0.0])}
  new, info = apply_correction(params, e, {"w": -jnp.ones(3)})
  np.testing.assert_array_equal(new["w"], params["w"])
  assert not bool(info.taken) and not bool(info.finite)


def test_step_rules():
  params = jnp.array([1.0, 1.0])
  f = lambda p: jnp.sum(p ** 2)  # noqa: E731
  g = jax.grad(f)(params)
  ascent = jnp.array([1.0, 0.0])
  new, info = apply_correction(params, ascent, g, rule="accept_if_descent")
  assert not bool(info.taken)
  np.testing.assert_array_equal(new, params)
  # backtracking: e = −4 g overshoots, halves until Armijo holds (t = 0.25·…)
  e = -4.0 * g
  new, info = jax.jit(lambda p: apply_correction(
      p, e, g, rule="backtracking", value_fn=f))(params)
  assert bool(info.taken)
  assert f(new) <= f(params) + 1e-4 * info.step_size * jnp.vdot(g, e)
  np.testing.assert_allclose(info.step_size, 0.125)  # 1, .5, .25 fail; .125 ok
  with pytest.raises(ValueError, match="value_fn"):
    apply_correction(params, e, g, rule="backtracking")


def test_algorithm5_runs_gates_and_decreases():
  rng = np.random.default_rng(0)
  X = jnp.asarray(rng.normal(size=(200, 10)))
  yv = jnp.asarray(rng.normal(size=200))

  def f_batch(th, idx):
    r = X[idx] @ th - yv[idx]
    return jnp.mean(jnp.log1p(r ** 2))  # non-convex Cauchy loss

  full = lambda th: f_batch(th, jnp.arange(200))  # noqa: E731
  sample = lambda k: jax.random.choice(k, 200, (20,))  # noqa: E731
  R = jnp.asarray(np.linalg.qr(rng.normal(size=(10, 4)))[0].T)
  t = matrix_transfer(R)
  fine_grad = lambda th, k: jax.grad(f_batch)(th, sample(k))  # noqa: E731
  coarse_grad = lambda tc, k: jax.grad(f_batch)(R.T @ tc, sample(k)) @ R.T  # noqa: E731
  theta, hist = jax.jit(lambda th: algorithm5(
      th, jax.random.key(1), fine_grad=fine_grad, coarse_grad=coarse_grad,
      exact_grad=jax.grad(full), transfer=t, num_iters=200, lr=0.05,
      coarse_lr=0.05, kappa=0.2, lam=1.0, num_coarse_steps=5,
      value_fn=full))(jnp.zeros(10))
  cgc = np.asarray(hist.cgc)
  assert cgc.sum() > 0 and not np.any(cgc[1:] & cgc[:-1])
  assert hist.value[-1] < hist.value[0]


def test_vcycle_with_identity_levels_is_plain_gd():
  quad = quadratic(8, 5)
  g = lambda th, s: quad.grad(th)  # noqa: E731
  ident = identity_transfer()
  out = jax.jit(lambda th: vcycle(
      th, jax.random.key(0), grads=[g, g, g], transfers=[ident, ident],
      lrs=[0.1, 0.1, 0.1], num_pre=2, num_post=3, num_coarsest=4))(quad.b)
  ref = quad.b
  for _ in range(2 + 2 + 4 + 3 + 3):
    ref = ref - 0.1 * quad.grad(ref)
  np.testing.assert_allclose(out, ref, atol=1e-10)


def test_two_level_records_and_cgc():
  quad = quadratic(10, 6)
  t = eigen_transfer(quad.A, 5, "smallest")
  smoother = lambda th, k: th - 0.1 * quad.grad(th)  # noqa: E731
  correction = lambda th, k: (th + exact_quadratic_cgc(quad, t, th), None)  # noqa: E731
  theta, recs, _ = two_level(quad.b, jax.random.key(0), smoother=smoother,
                             correction=correction, num_pre=3, num_post=2,
                             num_cycles=2, record=quad.value)
  assert recs.shape == (12,)
  ref = quad.b
  for _ in range(2):
    for _ in range(3):
      ref = smoother(ref, None)
    ref = ref + exact_quadratic_cgc(quad, t, ref)
    for _ in range(2):
      ref = smoother(ref, None)
  np.testing.assert_allclose(theta, ref, atol=1e-10)


def test_transform_one_coarse_step_is_coherent_and_wraps_adam():
  quad = quadratic(6, 7)
  R = jnp.asarray(np.linalg.qr(np.random.default_rng(3).normal(size=(6, 3)))[0].T)
  t = matrix_transfer(R)
  opt = coarse_grid_correction_transform(
      optax.sgd(0.1), optax.sgd(0.2), t, num_coarse_steps=1, every=2)
  params = quad.b
  state = opt.init(params)
  step = jax.jit(lambda p, s: opt.update(quad.grad(p), s, p, value_fn=quad.value))
  u0, state = step(params, state)  # fine step
  np.testing.assert_allclose(u0, -0.1 * quad.grad(params))
  params = params + u0
  u1, state = step(params, state)  # cgc: e = −ᾱ P R_g ∇f
  np.testing.assert_allclose(u1, -0.2 * R.T @ (R @ quad.grad(params)), atol=1e-10)
  assert int(state.num_cgc) == 1 and bool(state.prev_cgc)
  # Adam on the coarse level, fixed coarse loss, backtracking, inside a chain
  coarse = galerkin_quadratic(quad, t)
  opt = optax.chain(coarse_grid_correction_transform(
      optax.sgd(0.05), optax.adam(0.1), t, num_coarse_steps=20, every=5,
      rule="backtracking", coarse_loss=coarse.value), optax.scale(1.0))
  state = opt.init(quad.b)
  p = quad.b
  step = jax.jit(lambda p, s: opt.update(quad.grad(p), s, p, value_fn=quad.value))
  for _ in range(20):
    u, state = step(p, state)
    p = p + u
  assert int(state[0].num_cgc) >= 1
  assert quad.value(p) < quad.value(quad.b)
