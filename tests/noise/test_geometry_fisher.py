"""geometry.py (brute force vs closed forms, Props 6.4-6.6) and fisher.py
(JAX GGN / EF / MC-Fisher vs GLM closed forms)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt.noise_aware import fisher as F
from nnopt.noise_aware import geometry as G


def _brute_linf(h):
  """Independent oracle: max over all θ, θ' ∈ {±1}^d of θᵀHθ' (C.55)."""
  d = h.shape[0]
  best = -np.inf
  for s in itertools.product((-1.0, 1.0), repeat=d):
    for t in itertools.product((-1.0, 1.0), repeat=d):
      best = max(best, np.array(s) @ h @ np.array(t))
  return best


def test_linf_matches_double_sign_brute_force():
  rng = np.random.default_rng(0)
  for d in (2, 3, 5):
    a = rng.normal(size=(d, d))
    h = a + a.T
    assert G.linf_matrix_norm(h) == pytest.approx(_brute_linf(h), rel=1e-12)


@pytest.mark.parametrize("lam_max,omega", [(10, 0.3), (2, 0.0), (50, np.pi / 4),
                                           (5, 1.1)])
def test_two_d_closed_forms(lam_max, omega):
  h = G.hessian_2d(lam_max, omega)
  linf = G.linf_matrix_norm(h)
  assert linf == pytest.approx(G.linf_2d(h), rel=1e-12)
  assert linf == pytest.approx(float(G.linf_2d_rotated(lam_max, omega)), rel=1e-12)
  lsep, l = G.lsep_2d(h)
  assert lsep == pytest.approx(linf, rel=1e-12)
  assert np.min(np.linalg.eigvalsh(np.diag(l) - h)) >= -1e-9  # H ⪯ diag(l)
  assert l.max() >= lam_max - 1e-9  # l_max >= λmax (C.17 corrected)


def test_example_separable_bound():
  _, l = G.lsep_2d(G.hessian_2d(10, 0.3))
  np.testing.assert_allclose(l, [11.75, 4.33], atol=0.01)


def test_property_bounds_on_random_matrices():
  rng = np.random.default_rng(1)
  for _ in range(30):
    d = rng.integers(2, 8)
    a = rng.normal(size=(d, d)) * rng.uniform(0.1, 3, size=d)
    h = a @ a.T
    l2, linf = G.l2_norm(h), G.linf_matrix_norm(h)
    assert l2 <= linf * (1 + 1e-12) and linf <= d * l2 * (1 + 1e-12)
    l = G.separable_bound(h)
    assert np.min(np.linalg.eigvalsh(np.diag(l) - h)) >= -1e-9
    assert linf <= l.sum() + 1e-9
    assert l.sum() == pytest.approx(np.trace(h) / G.rho_diag(h))
    assert linf <= G.prop64_bound(h) + 1e-9
    assert linf <= G.prop65_bound(h) + 1e-9
    assert G.eigen_lower_bound(h) <= linf + 1e-9
    s = rng.normal(size=(d, d))
    sym = s + s.T
    assert G.eigen_lower_bound(sym) <= G.linf_matrix_norm(sym) <= G.prop65_bound(sym) + 1e-9


def test_density_ratio_and_rotation():
  assert G.density(np.ones(5)) == pytest.approx(1.0)
  assert G.density(np.eye(5)[0]) == pytest.approx(0.2)
  r = G.random_rotation(6, 0)
  np.testing.assert_allclose(G.fractional_rotation(r, 1.0), r, atol=1e-10)
  np.testing.assert_allclose(G.fractional_rotation(r, 0.0), np.eye(6), atol=1e-10)
  h = G.rotated_hessian(6, 10.0, 0.0, r)
  np.testing.assert_allclose(h, np.diag([1, 1, 1, 1, 1, 10.0]), atol=1e-10)
  with pytest.raises(G.GeometryError):
    G.linf_matrix_norm(np.ones((2, 3)))


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_glm_fisher_ef_against_jax(kind):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(40, 3))
  y = (rng.uniform(size=40) < 0.5).astype(float) if kind == "logistic" else rng.normal(size=40)
  prob = F.GLM(x, y, kind)
  theta = rng.normal(size=3) * 0.5
  model = lambda p, xn: xn @ p
  if kind == "linear":
    hess = lambda f: jnp.eye(1)
    loss = lambda p, xn, yn: 0.5 * (xn @ p - yn) ** 2
  else:
    hess = lambda f: (jax.nn.sigmoid(f) * (1 - jax.nn.sigmoid(f)))[:, None] * jnp.eye(1)
    loss = lambda p, xn, yn: jnp.logaddexp(0.0, xn @ p) - yn * (xn @ p)
  xj, yj, tj = map(lambda a: jnp.asarray(a, jnp.float32), (x, y, theta))
  ggn = jax.jit(F.ggn, static_argnums=(0, 1))(model, hess, tj, xj)
  np.testing.assert_allclose(ggn, prob.fisher(theta), rtol=1e-4, atol=1e-6)
  hessian = jax.hessian(lambda p: jnp.mean(jax.vmap(loss, (None, 0, 0))(p, xj, yj)))(tj)
  np.testing.assert_allclose(hessian, prob.fisher(theta), rtol=1e-4, atol=1e-6)
  ef = F.empirical_fisher(loss, tj, xj, yj)
  np.testing.assert_allclose(ef, prob.empirical_fisher(theta), rtol=1e-4, atol=1e-6)
  g = jax.grad(lambda p: jnp.mean(jax.vmap(loss, (None, 0, 0))(p, xj, yj)))(tj)
  np.testing.assert_allclose(g, prob.grad(theta), rtol=1e-4, atol=1e-6)


def test_mc_fisher_converges_to_fisher_and_ef_equals_fisher_at_zero():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(30, 2))
  theta = np.array([0.7, -0.4])
  prob = F.GLM(x, np.zeros(30), "logistic")
  loss = lambda p, xn, yn: jnp.logaddexp(0.0, xn @ p) - yn * (xn @ p)
  sample = lambda k, p, xs: jax.random.bernoulli(k, jax.nn.sigmoid(xs @ p)).astype(jnp.float32)
  mc = F.mc_fisher(loss, sample, jnp.asarray(theta, jnp.float32),
                   jnp.asarray(x, jnp.float32), jax.random.key(0), samples=4000)
  np.testing.assert_allclose(mc, prob.fisher(theta), rtol=0.05, atol=2e-3)
  y = (rng.uniform(size=30) < 0.5).astype(float)
  prob = F.GLM(x, y, "logistic")
  np.testing.assert_allclose(prob.empirical_fisher(np.zeros(2)),
                             prob.fisher(np.zeros(2)), rtol=1e-12)


def test_ngd_converges_in_one_step_on_least_squares():
  prob = F.fig7_1_problem(200)
  star = prob.fit()
  losses, _ = F.run_preconditioned(prob, "ngd", np.zeros(2), 1.0, 0.0, iters=1)
  assert losses[-1] == pytest.approx(prob.loss(star), rel=1e-10)
  with pytest.raises(F.FisherError):
    F.run_preconditioned(prob, "newton", np.zeros(2), 1.0)


@pytest.mark.parametrize("method", ["gd", "ngd", "ef"])
def test_grid_runner_equals_single_runs(method):
  x, y = np.random.default_rng(4).normal(size=(50, 3)), None
  y = (np.random.default_rng(5).uniform(size=50) < 0.5).astype(float)
  prob = F.GLM(x, y, "logistic")
  steps = np.array([1e-3, 0.1, 1.0, 1e3])
  grid = F.run_preconditioned_grid(prob, method, np.zeros(3), steps, 1e-4, 30)
  single = [F.run_preconditioned(prob, method, np.zeros(3), s, 1e-4, 30)[0][-1]
            for s in steps]
  np.testing.assert_allclose(grid, single, rtol=1e-8)
