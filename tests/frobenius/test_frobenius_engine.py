"""The preconditioner in the engine (8 vs 1 devices), on CNNs and ResNets,
and in the hand-written loop of the README."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt import losses
from nnopt.data import load_dataset
from nnopt.models import FNN, VGG, ResNet, init_params
from nnopt.engine.parallel import data_mesh
from nnopt.stats.needs import Needs
from nnopt.engine.trainer import Trainer
from nnopt.preconditioning.frobenius import frobenius_sgd
from nnopt.preconditioning.kfac_preset import kfac


def _fit(devices, optimizer, model, data, steps=3, samples=1):
  trainer = Trainer(model, losses.softmax_cross_entropy, optimizer, data,
                    batch_size=64, num_steps=steps, seed=0, progress=False,
                    needs=Needs(stats=True, fisher_samples=samples),
                    mesh=data_mesh(jax.devices()[:devices]))
  run = trainer.fit()
  return run, trainer


def test_eight_devices_give_the_same_factors_as_one():
  data = load_dataset("digits")
  model = FNN((16, 10), activation="sigmoid")
  assert len(jax.devices()) == 8
  # Two steps: the second mixes the EMA with the first step's factors; the
  # damping is large enough that float32 reduction order cannot be amplified.
  opt = frobenius_sgd(0.05, 0.1, 0.1, estimation="ema_cov", ema_weight=0.5,
                      track_spectra=True)
  run8, trainer8 = _fit(8, opt, model, data, steps=2)
  run1, _ = _fit(1, opt, model, data, steps=2)
  assert trainer8.num_compilations == 1
  s8, s1 = (optax.tree_utils.tree_get(run.state.opt_state, "FrobeniusState")
            for run in (run8, run1))
  for a, b in zip(jax.tree.leaves((s8.factors, s8.spectra)),
                  jax.tree.leaves((s1.factors, s1.spectra))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
  for a, b in zip(jax.tree.leaves(run8.params), jax.tree.leaves(run1.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
  # The statistics are those of the whole (global) batch of 64.
  assert float(jnp.trace(s8.factors["dense_0"][0])) > 0


def test_runs_on_vgg_and_resnet():
  data = load_dataset("digits")
  images = data.x_train.reshape(-1, 8, 8, 1)
  cnn_data = data.__class__(**{**data.__dict__, "x_train": images,
                               "x_test": data.x_test.reshape(-1, 8, 8, 1)})
  for model, d, opt in [
      (VGG(stages=((4,), (8,)), fc=(16,), n_classes=10), cnn_data,
       kfac(0.05, damping=1e-2, inverse_update_period=2)),
      (ResNet(16, 2, 10), data, frobenius_sgd(0.02, 1e-2, 1e-2,
                                              fisher="empirical"))]:
    run, trainer = _fit(8, opt, model, d, steps=4, samples=1)
    history = [float(h["train_loss"]) for h in trainer.history]
    assert np.all(np.isfinite(history))
    state = optax.tree_utils.tree_get(run.state.opt_state, "FrobeniusState")
    assert set(state.factors) == set(
        ["conv_0_0", "conv_1_0", "fc_0", "fc_1"] if isinstance(model, VGG)
        else ["first", "block_0/inner", "block_0/outer", "block_1/inner",
              "block_1/outer", "last"])


def test_readme_hand_written_loop():
  # --- README example (keep in sync) ---
  import jax
  import optax
  from nnopt import losses
  from nnopt.stats.capture import capture
  from nnopt.data import load_dataset
  from nnopt.models import FNN, init_params
  from nnopt.preconditioning.frobenius import frobenius_sgd

  data = load_dataset("digits")
  model = FNN((100, 10), activation="sigmoid")
  loss = losses.softmax_cross_entropy
  optimizer = frobenius_sgd(0.02, damping_x=1e-3, damping_y=1e-3,
                            refresh_period=1, fisher="sampled")
  params = init_params(model, jax.random.key(0), data.x_train[:1])
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, x, y, key):
    captured = capture(model, params, x, y, loss, fisher_samples=1, rng=key)
    updates, opt_state = optimizer.update(captured.grads, opt_state, params,
                                          stats=captured.stats)
    return optax.apply_updates(params, updates), opt_state, captured.loss

  key = jax.random.key(1)
  for i in range(60):
    key, sub = jax.random.split(key)
    idx = (i * 200 + jax.numpy.arange(200)) % len(data.x_train)
    params, opt_state, value = step(params, opt_state, data.x_train[idx],
                                    data.y_train[idx], sub)
  # --- end of README example ---
  first = float(loss(model.apply({"params": init_params(
      model, jax.random.key(0), data.x_train[:1])}, data.x_train),
      data.y_train))
  final = float(loss(model.apply({"params": params}, data.x_train),
                     data.y_train))
  assert final < 0.5 * first
