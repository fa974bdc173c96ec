"""Sensitivities at insertion against closed forms (Kreis (4.12), (4.14))."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt import growth, losses
from nnopt.stats.capture import capture
from nnopt.data import load_dataset
from nnopt.models import FNN, VGG, ResNet, init_params

CE = losses.softmax_cross_entropy


@pytest.fixture(scope="module")
def spiral():
  return load_dataset("spiral", seed=0)


def _mean_grad(model, params, x, y):
  return jax.jit(jax.grad(lambda p: CE(model.apply({"params": p}, x), y)))(params)


def test_resnet_inner_gradient_is_exactly_zero_at_insertion(spiral):
  x, y = spiral.x_train, spiral.y_train
  model = ResNet(width=3, n_blocks=1, n_outputs=2, init_scheme="pytorch")
  params = init_params(model, jax.random.key(3), x[:1])
  ext_model, ext_params, (cand,) = growth.fully_extend(model, params)
  grads = _mean_grad(ext_model, ext_params, x, y)
  new = grads[cand.name]
  assert np.all(np.asarray(new["inner"]["kernel"]) == 0.0)
  assert np.all(np.asarray(new["inner"]["bias"]) == 0.0)
  # (4.14c): ∇W2 = Σ_j ∇_{x_i} f_j σ(W1 x_j + b)ᵀ, ∇_{x_i} from the baseline
  cap = jax.jit(lambda p: capture(model, p, x, y, CE))(params)
  stream = cap.stats["last"].inputs                       # x_i (identity block)
  dstream = cap.stats["last"].cotangents @ params["last"]["kernel"].T
  hidden = jnp.tanh(stream @ ext_params[cand.name]["inner"]["kernel"])
  expected = hidden.T @ dstream                           # flax (in, out) layout
  np.testing.assert_allclose(new["outer"]["kernel"], expected, rtol=1e-5,
                             atol=1e-7)
  assert np.abs(expected).max() > 1e-4


def test_fnn_new_layer_gradient_closed_form_per_sample(spiral):
  x, y = spiral.x_train[:32], spiral.y_train[:32]
  model = FNN((5, 5, 2), init_scheme="pytorch")
  params = init_params(model, jax.random.key(1), x[:1])
  ext_model, ext_params, cands = growth.fully_extend(model, params)
  per_sample = jax.jit(jax.vmap(
      lambda xi, yi: jax.grad(lambda p: CE(ext_model.apply({"params": p}, xi[None]),
                                           yi[None]))(ext_params)))(x, y)
  hidden, a = [], x
  for name in model.layer_names()[:-1]:
    a = jax.nn.relu(a @ params[name]["kernel"] + params[name]["bias"])
    hidden.append(a)                                         # x_{i-1} >= 0
  for cand, a in zip(cands, hidden):
    i = ext_model.layer_names().index(cand.name)
    nxt = ext_model.layer_names()[i + 1]
    mask = (a > 0).astype(jnp.float32)                       # 1[y_i > 0]
    k_next = ext_params[nxt]["kernel"]
    g_next = per_sample[nxt]["kernel"]                       # (B, n, m)
    # (4.12) with the mask, flax layout: ∇K_new = ∇K_next K_nextᵀ diag(mask)
    expected = jnp.einsum("bnm,km,bk->bnk", g_next, k_next, mask)
    np.testing.assert_allclose(per_sample[cand.name]["kernel"], expected,
                               rtol=1e-5, atol=1e-7)
    expected_b = jnp.einsum("bm,km,bk->bk", per_sample[nxt]["bias"], k_next, mask)
    np.testing.assert_allclose(per_sample[cand.name]["bias"], expected_b,
                               rtol=1e-5, atol=1e-7)
    # batch mean: the summed per-sample identity
    mean = _mean_grad(ext_model, ext_params, x, y)
    np.testing.assert_allclose(mean[cand.name]["kernel"], expected.mean(0),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["fnn", "resnet"])
def test_epoch_sensitivity_with_equal_batches_is_full_batch_gradient(spiral, kind):
  x, y = spiral.x_train, spiral.y_train
  model = (FNN((5, 5, 2), init_scheme="pytorch") if kind == "fnn" else
           ResNet(width=3, n_blocks=2, n_outputs=2))
  params = init_params(model, jax.random.key(2), x[:1])
  ext_model, ext_params, _ = growth.fully_extend(model, params)
  exact = _mean_grad(ext_model, ext_params, x, y)
  for kwargs in [dict(mode="epoch", batch_size=45), dict(mode="full"),
                 dict(mode="full", chunk_size=100),
                 dict(mode="subset", subset_size=len(x))]:
    sens = growth.sensitivities(ext_model, ext_params, CE, x, y, seed=5, **kwargs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5,
                                                         atol=1e-7),
                 sens.grads, exact)
  assert growth.sensitivities(ext_model, ext_params, CE, x, y, mode="epoch",
                              batch_size=45).num_batches == 10


def test_epoch_sensitivity_with_unequal_batches_averages_batch_means(spiral):
  x, y = spiral.x_train[:100], spiral.y_train[:100]
  model = FNN((5, 2))
  params = init_params(model, jax.random.key(2), x[:1])
  sens = growth.sensitivities(model, params, CE, x, y, mode="epoch",
                              batch_size=40, seed=0)
  perm = np.random.default_rng(0).permutation(100)
  batches = [perm[:40], perm[40:80], perm[80:]]
  expected = jax.tree.map(lambda *g: sum(g) / 3,
                          *[_mean_grad(model, params, x[b], y[b]) for b in batches])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5,
                                                       atol=1e-7),
               sens.grads, expected)


def test_candidate_merits_use_the_right_leaf_and_norm():
  model = VGG(stages=((4,), (5,)), fc=(8,), n_classes=3)
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 2))
  y = jnp.arange(6) % 3
  params = init_params(model, jax.random.key(1), x[:1])
  ext_model, ext_params, cands = growth.fully_extend(model, params)
  grads = _mean_grad(ext_model, ext_params, x, y)
  merits = growth.candidate_merits(ext_model, grads, cands, x.shape[1:])
  for cand, size in zip(cands, [(8, 8), (4, 4)]):
    assert merits[cand.name] == pytest.approx(
        float(growth.conv_operator_sq(grads[cand.name]["kernel"], size)), rel=1e-5)
  fro = growth.candidate_merits(ext_model, grads, cands, x.shape[1:], norm="fro")
  assert fro[cands[1].name] == pytest.approx(
      float(jnp.sum(grads[cands[1].name]["kernel"] ** 2)), rel=1e-5)
  ref = growth.reference_merits(ext_model, grads, cands, x.shape[1:])
  assert set(ref) == {"conv_0_0", "conv_1_0"}
  ref_ext = growth.reference_merits(ext_model, grads, cands, x.shape[1:],
                                    denominator="extended")
  assert set(ref_ext) == {"conv_0_0", "conv_1_0", *[c.name for c in cands]}


def test_bad_sensitivity_arguments():
  model = FNN((3, 2))
  params = init_params(model, jax.random.key(0), jnp.zeros((1, 2)))
  x, y = np.zeros((10, 2), np.float32), np.zeros(10, np.int32)
  with pytest.raises(ValueError, match="mode"):
    growth.sensitivities(model, params, CE, x, y, mode="sgd")
  with pytest.raises(ValueError, match="batch_size"):
    growth.sensitivities(model, params, CE, x, y, mode="epoch")
  with pytest.raises(ValueError, match="subset_size"):
    growth.sensitivities(model, params, CE, x, y, mode="subset", subset_size=11)


@pytest.mark.parametrize("positions", ["after_input_and_each_block",
                                       "before_and_after"])
def test_resnet_after_input_slot_sensitivities_match_hand_written_network(
    spiral, positions):
  """The after-input candidate (reference code, spec P6): its merit is ‖∇W2‖²
  of the fully extended network, here written out by hand in jnp."""
  x, y = spiral.x_train, spiral.y_train
  model = ResNet(width=3, n_blocks=2, n_outputs=2, init_scheme="pytorch")
  params = init_params(model, jax.random.key(4), x[:1])
  ext_model, ext_params, cands = growth.fully_extend(
      model, params, resnet_positions=positions)
  assert [c.after for c in cands] == ["first", "block_0", "block_1"]
  assert cands[0].index == 0
  new = {c.name: ext_params[c.name] for c in cands}

  def block(p, h):
    return h + jnp.tanh(h @ p["inner"]["kernel"] + p["inner"]["bias"]) @ (
        p["outer"]["kernel"])

  def oracle_loss(new_params):
    # thesis form (2.10): x1 = W1 x0; after-input slot; then each block
    # followed by its candidate; x_out = W_{L+1} x_L.
    by_after = {c.after: new_params[c.name] for c in cands}
    h = x @ params["first"]["kernel"]
    h = block(by_after["first"], h)
    for name in ("block_0", "block_1"):
      h = block(by_after[name], block(params[name], h))
    logits = h @ params["last"]["kernel"]
    return jnp.mean(jax.nn.logsumexp(logits, -1)
                    - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])

  expected = jax.grad(oracle_loss)(new)
  sens = growth.sensitivities(ext_model, ext_params, CE, x, y, mode="epoch",
                              batch_size=45, seed=0)
  merits = growth.candidate_merits(ext_model, sens.grads, cands, x.shape[1:])
  for c in cands:
    np.testing.assert_allclose(sens.grads[c.name]["outer"]["kernel"],
                               expected[c.name]["outer"]["kernel"],
                               rtol=1e-4, atol=1e-7)
    assert merits[c.name] == pytest.approx(
        float(jnp.sum(expected[c.name]["outer"]["kernel"] ** 2)), rel=1e-4)
  assert np.abs(expected[cands[0].name]["outer"]["kernel"]).max() > 1e-5
  # the step inserts at the argmax of the three, the after-input slot included
  step = growth.sensli_step(model, params, CE, x, y, resnet_positions=positions)
  best = max(merits, key=merits.get)
  assert step.selection.chosen == (best,)
  assert step.model.n_blocks == 3
  with pytest.raises(growth.GrowthError, match="resnet_positions"):
    growth.candidates(model, resnet_positions="after_input")
