"""The covariance preconditioner's pieces, its needs, optax's wrappers,
dtypes, and the debiased curvature average against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import losses
from nnopt.models import FNN, init_params
from nnopt.preconditioning import (FrobeniusState, damped_inverses,
                                   frobenius_sgd, kfac, kronecker_factors,
                                   scale_by_frobenius, scale_by_kfac,
                                   scale_by_kronecker)
from nnopt.stats.capture import capture
from nnopt.stats.kronecker import FactorError
from nnopt.stats.needs import Needs, required_needs

CE = losses.softmax_cross_entropy
MODEL = FNN((5, 4, 3), activation="tanh")


def _batch(seed, batch=8, dtype=jnp.float64):
  x = jax.random.normal(jax.random.key(seed), (batch, 6), dtype)
  y = jax.random.randint(jax.random.key(seed + 1), (batch,), 0, 3)
  return x, y


def _params(dtype=jnp.float64):
  return init_params(MODEL, jax.random.key(2), _batch(0, dtype=dtype)[0])


def _captures(params, n, samples=1, batch=8):
  """Captures of ``n`` different batches at the same parameters."""
  dtype = jax.tree.leaves(params)[0].dtype
  run = jax.jit(lambda p, x, y, k: capture(MODEL, p, x, y, CE, rng=k,
                                           fisher_samples=samples))
  return [run(params, *_batch(10 + 3 * i, batch, dtype), jax.random.key(i))
          for i in range(n)]


def _run(opt, params, caps):
  state = opt.init(params)
  step = jax.jit(lambda g, s, st: opt.update(g, s, params, stats=st))
  outs = []
  for cap in caps:
    out, state = step(cap.grads, state, cap.stats)
    outs.append(out)
  return outs, state, step


def _sampled_g(stats):
  g = np.asarray(stats.sampled_cotangents) * stats.inputs.shape[0]
  return np.einsum("sbi,sbj->ij", g, g) / (g.shape[1] * g.shape[0])


def _empirical_g(stats):
  g = np.asarray(stats.cotangents) * stats.inputs.shape[0]
  return g.T @ g / g.shape[0]


def test_needs_are_declared_through_optax_wrappers():
  params = _params(jnp.float32)
  sampled = Needs(stats=True, fisher_samples=1)
  empirical = Needs(stats=True)
  cases = [
      (kfac(0.1), sampled),
      (optax.chain(frobenius_sgd(0.1, fisher="empirical"),
                   optax.clip_by_global_norm(1.0)), empirical),
      (optax.inject_hyperparams(kfac)(learning_rate=0.1), sampled),
      (optax.inject_hyperparams(frobenius_sgd)(learning_rate=0.1,
                                               damping_x=1e-2), sampled),
      (optax.MultiSteps(kfac(0.1), 2), sampled),
      (optax.apply_if_finite(frobenius_sgd(0.1, fisher="empirical"), 3),
       empirical),
      (frobenius_sgd(0.1, fisher_samples=3), Needs(stats=True,
                                                   fisher_samples=3)),
      (optax.inject_hyperparams(kfac, static_args=("fisher_samples",))(
          learning_rate=0.1, fisher_samples=2),
       Needs(stats=True, fisher_samples=2)),
  ]
  for opt, expected in cases:
    assert required_needs(opt, params) == expected
  # A traced sample count cannot be declared: one clear error.
  with pytest.raises(FactorError, match="static_args"):
    required_needs(optax.inject_hyperparams(kfac)(learning_rate=0.1,
                                                  fisher_samples=2), params)
  with pytest.raises(FactorError, match="fisher='sampled'"):
    frobenius_sgd(0.1, fisher="empirical", fisher_samples=2)


def test_inject_hyperparams_learning_rate_and_damping():
  with jax.enable_x64(True):
    params = _params()
    caps = _captures(params, 3)
    for factory, kwargs, plain in [
        (kfac, dict(learning_rate=0.1),
         kfac(0.1)),
        (kfac, dict(learning_rate=0.1, damping=1e-2, curvature_ema=0.5),
         kfac(0.1, damping=1e-2, curvature_ema=0.5)),
        (frobenius_sgd, dict(learning_rate=0.1, damping_x=1e-2),
         frobenius_sgd(0.1, damping_x=1e-2)),
        (frobenius_sgd, dict(learning_rate=0.1, damping_x=1e-2,
                             estimation="ema_cov", ema_weight=0.3,
                             refresh_period=2),
         frobenius_sgd(0.1, damping_x=1e-2, estimation="ema_cov",
                       ema_weight=0.3, refresh_period=2))]:
      injected = optax.inject_hyperparams(factory)(**kwargs)
      outs, state, step = _run(injected, params, caps)
      ref, _, _ = _run(plain, params, caps)
      for a, b in zip(jax.tree.leaves(outs), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
      assert step._cache_size() == 1  # no recompilation after the first
    # A damping changed in the injected state acts like a fresh optimizer.
    opt = optax.inject_hyperparams(frobenius_sgd)(learning_rate=0.1,
                                                  damping_x=1e-2)
    state = opt.init(params)
    state.hyperparams["damping_x"] = jnp.asarray(0.3)
    out, _ = opt.update(caps[0].grads, state, params, stats=caps[0].stats)
    ref, _ = _run(frobenius_sgd(0.1, damping_x=0.3), params, caps[:1])[:2]
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref[0])):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_multisteps_apply_if_finite_eval_shape_and_one_compilation():
  params = _params(jnp.float32)
  caps = _captures(params, 3)
  for opt in (optax.MultiSteps(kfac(0.1, inverse_update_period=2), 2),
              optax.apply_if_finite(frobenius_sgd(0.1, refresh_period=2), 2)):
    shapes = jax.eval_shape(opt.init, params)
    state = opt.init(params)
    assert jax.tree.structure(shapes) == jax.tree.structure(state)
    outs, state, step = _run(opt, params, caps)
    assert step._cache_size() == 1
    assert all(np.all(np.isfinite(l)) for l in jax.tree.leaves(outs))
    assert optax.tree_utils.tree_get(state, "FrobeniusState") is not None


@pytest.mark.parametrize("make", [lambda: frobenius_sgd(0.1),
                                  lambda: kfac(0.1, momentum=0.5)])
def test_bfloat16_parameters_float32_algebra(make):
  params = _params(jnp.float32)
  to16 = lambda tree: jax.tree.map(lambda v: v.astype(jnp.bfloat16), tree)
  to32 = lambda tree: jax.tree.map(lambda v: v.astype(jnp.float32), tree)
  caps16 = [c._replace(grads=to16(c.grads), stats=to16(c.stats))
            for c in _captures(params, 2)]
  opt = make()
  outs, state, step = _run(opt, to16(params), caps16)
  assert step._cache_size() == 1
  # Oracle: the float32 transform on the same (bfloat16-rounded) numbers.
  ref, _, _ = _run(opt, to32(to16(params)),
                   [c._replace(grads=to32(c.grads), stats=to32(c.stats))
                    for c in caps16])
  for out, r in zip(outs, ref):
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(r)):
      assert a.dtype == jnp.bfloat16
      np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=1e-2,
                                 atol=1e-2 * np.abs(b).max())
  inner = optax.tree_utils.tree_get(state, "FrobeniusState")
  assert all(f.dtype == jnp.float32 for f in jax.tree.leaves(
      (inner.factors, inner.inverses)))


def test_float64_parameters_keep_float64():
  with jax.enable_x64(True):
    params = _params()
    outs, state, _ = _run(kfac(0.1), params, _captures(params, 1))
    inner = optax.tree_utils.tree_get(state, "FrobeniusState")
    assert isinstance(inner, FrobeniusState)
    assert all(l.dtype == jnp.float64 for l in jax.tree.leaves(
        (outs, inner.factors, inner.inverses)))


def _normalized_average(values, decay):
  """kfac-jax's weighted moving average: Σ d^{k−j} v_j / Σ d^{k−j}."""
  k = len(values)
  weights = [decay ** (k - 1 - j) for j in range(k)]
  return sum(w * v for w, v in zip(weights, values)) / sum(weights)


def test_debiased_curvature_ema_is_the_weight_normalized_average():
  with jax.enable_x64(True):
    params = _params()
    caps = _captures(params, 4)
    layer, decay = "dense_1", 0.8
    x_aug = [np.hstack([np.asarray(c.stats[layer].inputs), np.ones((8, 1))])
             for c in caps]
    a_hat = [xa.T @ xa / 8 for xa in x_aug]
    g_hat = [_sampled_g(c.stats[layer]) for c in caps]
    tx = scale_by_kfac(1e-2, curvature_ema=decay, inverse_update_period=1)
    state = tx.init(params)
    for k, cap in enumerate(caps, start=1):
      _, state = tx.update(cap.grads, state, stats=cap.stats)
      np.testing.assert_allclose(state.factors[layer][0],
                                 _normalized_average(a_hat[:k], decay),
                                 rtol=1e-12)
      np.testing.assert_allclose(state.factors[layer][1],
                                 _normalized_average(g_hat[:k], decay),
                                 rtol=1e-10, atol=1e-15)
    # After two steps the two conventions differ by the first weight.
    thesis = scale_by_kfac(1e-2, curvature_ema=decay, ema_debias=False)
    state = thesis.init(params)
    for cap in caps[:2]:
      _, state = thesis.update(cap.grads, state, stats=cap.stats)
    np.testing.assert_allclose(state.factors[layer][0],
                               decay * a_hat[0] + (1 - decay) * a_hat[1],
                               rtol=1e-12)
    # The thesis's EMA of covariances and of inverses, debiased on request.
    beta = 0.3
    tx = scale_by_frobenius(0.1, 0.2, estimation="ema_cov", ema_weight=beta,
                            ema_debias=True, fisher="empirical")
    state = tx.init(params)
    for cap in caps[:3]:
      _, state = tx.update(cap.grads, state, stats=cap.stats)
    g_emp = [_empirical_g(c.stats["dense_2"]) for c in caps[:3]]
    np.testing.assert_allclose(state.factors["dense_2"][1],
                               _normalized_average(g_emp, 1 - beta),
                               rtol=1e-10, atol=1e-15)
    tx = scale_by_frobenius(0.1, 0.2, estimation="ema_inverse",
                            ema_weight=beta, ema_debias=True,
                            fisher="empirical")
    state = tx.init(params)
    for cap in caps[:3]:
      _, state = tx.update(cap.grads, state, stats=cap.stats)
    inverses = [np.linalg.inv(g + 0.2 * np.eye(3)) for g in g_emp]
    np.testing.assert_allclose(state.inverses["dense_2"][1],
                               _normalized_average(inverses, 1 - beta),
                               rtol=1e-9)
    with pytest.raises(FactorError, match="running"):
      scale_by_frobenius(estimation="ema_cov", ema_weight=0.5,
                         ema_debias=True, ema_reference="last_batch")


def test_kfac_jax_empirical_fisher_scale_conversion():
  # kfac-jax's fisher_empirical G is B times smaller: damping B·λ and
  # learning rate B·α here give its directions (G scaled by 1/B at λ, α).
  with jax.enable_x64(True):
    params = _params()
    batch = 8
    caps = _captures(params, 3, samples=0, batch=batch)
    lam, lr = 1e-3, 0.05
    ours, _, _ = _run(kfac(batch * lr, damping=batch * lam, fisher="empirical",
                           inverse_update_period=1), params, caps)
    theirs, _, _ = _run(kfac(lr, damping=lam, fisher="empirical",
                             cotangent_scale=1.0 / batch,
                             inverse_update_period=1), params, caps)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
      np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-14)


def test_pieces_compose_to_the_presets():
  with jax.enable_x64(True):
    params = _params()
    caps = _captures(params, 3)
    custom = scale_by_kronecker(
        kronecker_factors(fisher="sampled", ema_weight=0.4, ema_debias=True),
        damped_inverses(0.05, 0.02, solver="eigh", track_spectra=True),
        bias="homogeneous", curvature_period=1, refresh_period=2,
        layer_rules={"dense_0": "diagonal"})
    preset = scale_by_frobenius(
        0.05, 0.02, estimation="ema_cov", ema_weight=0.4, ema_debias=True,
        solver="eigh", track_spectra=True, bias="homogeneous",
        curvature_period=1, refresh_period=2,
        layer_rules={"dense_0": "diagonal"})
    a, sa, _ = _run(custom, params, caps)
    b, sb, _ = _run(preset, params, caps)
    for x, y in zip(jax.tree.leaves((a, sa)), jax.tree.leaves((b, sb))):
      np.testing.assert_array_equal(x, y)
    assert sa.factors["dense_0"][0].shape == (7,)  # diagonal, with the 1
    assert sa.spectra["dense_1"][0].shape == (6,)
