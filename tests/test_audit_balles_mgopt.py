"""Library checks moved out of the Balles and MG/Opt reproductions (issue 14),
and the full-size path of Balles tier B on runs that exist.

* CABS (Balles (4.19)–(4.22)): nnopt's rule with α = 1/h and the true f and
  tr Σ of f(θ) = (h/2)‖θ‖² (f* = 0) chooses m = 2η² = 2 trΣ/‖∇f‖²; the
  oracle is the closed form.
* MG/Opt Thm 2.36: for a μ_H-strongly convex, non-quadratic f_H, nnopt's cgc
  gradient (exact mode) is ∇h of :func:`cgc_objective` (``jax.grad``
  oracle), and the prolonged correction of an inexact coarse solve satisfies
  ⟨∇f, e⟩ ≤ −(μ_H + λ)‖ē‖² + rᵀē; with the gradient restricted by R_p
  instead of R_g = P_pᵀ the bound fails (the check can fail).
* MG/Opt B.2 (issue 13): all seeds and operators of Figs 3.1/3.2 as one
  compiled program equal the per-seed loop of jitted runs (the oracle).
* Balles tier B: with data present, the full-size claims are verdicts with
  intervals over seeds, read from the runs directory; a missing run is
  trained through the engine.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import balles_tier_b_runs as tb_runs
from experiments import mgopt_b2
from experiments import reproduce_balles_tier_b as tier_b
from nnopt.multilevel import (cgc_gradient, cgc_objective, coarse_solve,
                              matrix_transfer)
from nnopt.noise_aware.cabs_rule import BatchRuleState, cabs_next
from nnopt.reproduce import Claims


@pytest.mark.parametrize("h", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cabs_rule_is_optimal_batch_size_on_isotropic_quadratic(h, seed):
  rng = np.random.default_rng(seed)
  d, s = 10, 1.5
  theta = 0.05 * rng.normal(size=d)
  f = 0.5 * h * theta @ theta                     # f* = 0 (4.21)
  trace = d * s * s                               # Σ = s² I
  grad_sq = float((h * theta) @ (h * theta))      # ‖∇f‖² = 2 h f (4.22)
  expected = round(2 * trace / grad_sq)           # (4.19)
  state = BatchRuleState()
  for _ in range(5):                              # EMAs of constant inputs
    state = cabs_next(state, f, trace, 1.0 / h, mu=0.95, m_min=1,
                      m_max=10 ** 12)
    assert state.batch_size == expected


def test_cabs_rule_clips_and_guards_nonpositive_loss():
  state = cabs_next(BatchRuleState(), 1.0, 1e9, 1.0, m_min=16, m_max=2048)
  assert state.batch_size == 2048
  state = cabs_next(BatchRuleState(), -0.5, 10.0, 1.0, m_min=16, m_max=2048)
  assert state.batch_size == 2048      # f̄ ≤ 0: m_max (spec A3)


def _thm236(seed, restrict_with_rp=False):
  rng = np.random.default_rng(seed)
  n, m = 9, 4
  P = jnp.asarray(rng.normal(size=(n, m)))
  R_p = jnp.asarray(rng.normal(size=(m, n)))
  R_g = R_p if restrict_with_rp else P.T
  transfer = matrix_transfer(R_p, P=P, R_g=R_g)
  M = rng.normal(size=(m, m))
  A_H = jnp.asarray(M @ M.T + 0.3 * np.eye(m))
  mu_H = float(jnp.linalg.eigvalsh(A_H).min())
  b_H = jnp.asarray(rng.normal(size=m))
  f_H = lambda t: 0.5 * t @ A_H @ t - b_H @ t + jnp.sum(  # noqa: E731
      jnp.log(jnp.cosh(t)))
  X, y = jnp.asarray(rng.normal(size=(20, n))), jnp.asarray(rng.normal(size=20))
  f = lambda t: jnp.mean(jnp.log1p((X @ t - y) ** 2))  # noqa: E731
  theta = jnp.asarray(rng.normal(size=n))
  lam = float(rng.uniform(0, 1))
  grad_h = cgc_gradient(lambda t, _: jax.grad(f_H)(t),
                        lambda t, _: jax.grad(f)(t), transfer, theta, lam=lam,
                        mode="exact")
  ref = transfer.restrict_params(theta)
  lr = 0.5 / (float(jnp.linalg.eigvalsh(A_H).max()) + 1 + lam)
  theta_c = coarse_solve(grad_h, ref, jnp.zeros(int(rng.integers(1, 8))),
                         optax.sgd(lr))
  ebar = theta_c - ref
  e = transfer.prolong(ebar)
  g = jax.grad(f)(theta)
  r = grad_h(theta_c, None)
  h = cgc_objective(f_H, transfer.restrict_grad(g), ref, lam)
  return dict(r=r, r_oracle=jax.grad(h)(theta_c), lhs=float(g @ e),
              rhs=float(-(mu_H + lam) * ebar @ ebar + r @ ebar),
              scale=float(jnp.linalg.norm(g) * jnp.linalg.norm(e)))


def test_thm_2_36_descent_bound_through_nnopt_cgc():
  with jax.enable_x64(True):
    for seed in range(20):
      out = _thm236(seed)
      np.testing.assert_allclose(out["r"], out["r_oracle"], rtol=1e-10,
                                 atol=1e-12)
      assert out["lhs"] <= out["rhs"] + 1e-10 * out["scale"], seed


def test_thm_2_36_bound_fails_without_rg_equal_ptranspose():
  with jax.enable_x64(True):
    gaps = [(o["lhs"] - o["rhs"]) / o["scale"]
            for o in (_thm236(s, restrict_with_rp=True) for s in range(20))]
  assert max(gaps) > 1e-3     # the check can fail: R_g = P_pᵀ matters


# -- Balles tier B: the full-size path on runs present ---------------------------


def _write_run(root, config, name, seed, loss, acc, steps=100):
  out = root / config / tb_runs.run_name(name, None, seed)
  out.mkdir(parents=True)
  with (out / "metrics.jsonl").open("w") as f:
    for step in range(10, steps + 1, 10):
      f.write(json.dumps(dict(step=step, train_loss=loss * (1 + 1 / step),
                              test_accuracy=acc)) + "\n")
  (out / "run.json").write_text("{}\n")


def test_tier_b_full_size_gives_verdicts_when_data_present(tmp_path,
                                                           monkeypatch):
  monkeypatch.setattr(tier_b, "data_missing", lambda config, variant: None)
  seeds = (0, 1, 2, 3)
  rng = np.random.default_rng(0)
  # P2: M-SGD and M-SVAG clearly below ADAM and M-SSD (the thesis's P2).
  base = {"msgd": 0.5, "msvag": 0.45, "adam": 1.0, "msign_sgd": 1.05}
  for method, loss in base.items():
    for s in seeds:
      _write_run(tmp_path, "balles_p2_cifar10", method, s,
                 loss * (1 + 0.01 * rng.normal()), 0.8 + 0.001 * s)
  claims = Claims("balles")
  tier_b.fig5_4(claims, tmp_path, seeds=seeds,
                problems={"P2": tier_b.FIG54["P2"]})
  verdicts = [c for c in claims if c.item == "Fig 5.4 (P2)"]
  assert len(verdicts) == 8 and not any(c.status == "NOT RUN"
                                        for c in verdicts)
  ordering = verdicts[:4]
  assert all(c.status == "PASS" for c in ordering)
  comp = ordering[0].comparison
  assert comp["n_a"] == len(seeds) and comp["paired"]
  assert comp["ci"][1] < 0 and math.isfinite(comp["se"])


def test_tier_b_not_run_names_data_and_places(tmp_path, monkeypatch):
  monkeypatch.setattr(tier_b, "data_missing",
                      lambda config, variant: "searched /nowhere/cifar10")
  claims = Claims("balles")
  tier_b.fig5_4(claims, tmp_path, problems={"P2": tier_b.FIG54["P2"]})
  reasons = {c.reason for c in claims if c.status == "NOT RUN"}
  assert reasons == {"CIFAR-10 (TFDS cifar10) not found: searched "
                     "/nowhere/cifar10"}


def test_tier_b_trains_a_missing_run(tmp_path):
  records = tb_runs.ensure_run(tmp_path, "balles_p2_cifar10", "msgd", None, 0,
                               quick=True, extra=["train.num_steps=20"])
  out = tmp_path / "balles_p2_cifar10" / "msgd_s0"
  assert (out / "run.json").exists()
  assert tb_runs.read_run(out) == json.loads(json.dumps(records))
  assert math.isfinite(tb_runs.final(records, "train_loss"))


# -- MG/Opt B.2: all seeds and operators as one program (issue 13) -------------


def test_mgopt_b2_one_program_equals_the_per_seed_loop():
  seeds = [0, 1, 2]
  one = mgopt_b2.b2_curves(seeds, 0.001)
  loop = mgopt_b2.loop_curves(seeds, 0.001)
  assert set(one[0]) == set(mgopt_b2.OPERATORS)
  assert one[0]["sgd"].shape == (3, 202)
  assert mgopt_b2.max_relative_difference(one[0], loop[0]) <= 1e-10
  assert one[1] == loop[1]
  for w in mgopt_b2.OPERATORS:
    np.testing.assert_allclose(one[2][w], loop[2][w], rtol=1e-10)
  # lr 0.001 covers both gate outcomes (Fig 3.2): largeev's cgc is taken and
  # changes the curve, smallev's is skipped and its curve is SGD's exactly.
  assert all(one[1]["largest"]) and not any(one[1]["smallest"])
  assert np.all(one[0]["largest"][:, 51] < one[0]["sgd"][:, 51])
  np.testing.assert_array_equal(one[0]["smallest"], one[0]["sgd"])
  assert np.all(np.isnan(one[2]["sgd"]))
