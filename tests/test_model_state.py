"""Models with non-parameter state and dropout in the engine: batch norm's
running averages (P3) and a dropout char-LSTM with per-character losses (P4),
against hand-written flax loops."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt import losses

from nnopt.engine import parallel
from nnopt.stats.capture import capture, layer_gradients, layer_info
from nnopt.data import Dataset, load_dataset
from nnopt.models import apply_model, init_variables
from nnopt.models.deepobs import CharLSTM, WideResNet
from nnopt.engine.step import TrainState, init_train_state, make_train_step
from nnopt.engine.trainer import Trainer

CE = losses.softmax_cross_entropy


def _digits_subset(n=48):
  d = load_dataset("digits")
  return Dataset(d.x_train[:n], d.y_train[:n], d.x_test[:40], d.y_test[:40],
                 "digits_subset", 10)


def _close(a, b, rtol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    assert float(np.max(np.abs(x - y))) <= rtol * max(float(np.max(np.abs(y))),
                                                       1e-12)


WRN = WideResNet(depth=10, width=1, n_classes=10)


def _wrn_trainer(mesh, **kwargs):
  defaults = dict(batch_size=None, num_steps=4, seed=1, progress=False,
                  mesh=mesh)
  defaults.update(kwargs)
  return Trainer(WRN, CE, optax.sgd(0.1, momentum=0.9), _digits_subset(),
                 **defaults)


def test_batch_norm_training_matches_flax_loop_and_eval_uses_averages():
  data = _digits_subset()
  trainer = _wrn_trainer(parallel.data_mesh(jax.devices()[:1]))
  run = trainer.fit()

  variables = WRN.init(jax.random.key(1), jnp.asarray(data.x_train[:1]),
                       train=False)
  params, stats = variables["params"], variables["batch_stats"]
  opt = optax.sgd(0.1, momentum=0.9)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, stats, opt_state):
    def loss_fn(p):
      out, upd = WRN.apply({"params": p, "batch_stats": stats}, data.x_train,
                           train=True, mutable=["batch_stats"])
      return CE(out, data.y_train), upd["batch_stats"]

    (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state

  for _ in range(4):
    params, stats, opt_state = step(params, stats, opt_state)
  _close(run.params, params, 1e-5)
  _close(run.state.model_state["batch_stats"], stats, 1e-5)
  # The running averages moved away from their initial (0, 1).
  mean = np.asarray(stats["s0_b0_bn0"]["mean"])
  assert np.max(np.abs(mean)) > 1e-3

  logits = WRN.apply({"params": params, "batch_stats": stats}, data.x_test,
                     train=False)
  want = float(CE(logits, data.y_test))
  got = trainer.evaluate(run)["test_loss"]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # ... and not batch statistics of the test set.
  batch_logits = WRN.apply({"params": params, "batch_stats": stats},
                           data.x_test, train=True, mutable=["batch_stats"])[0]
  assert abs(float(CE(batch_logits, data.y_test)) - want) > 1e-4


def test_given_params_get_the_models_batch_norm_state():
  params = WRN.init(jax.random.key(7), jnp.zeros((1, 8, 8, 1)))["params"]
  trainer = _wrn_trainer(parallel.data_mesh(jax.devices()[:1]), num_steps=1,
                         params=params)
  run = trainer._initial_run()  # pylint: disable=protected-access
  stats = run.state.model_state["batch_stats"]["bn_out"]
  np.testing.assert_array_equal(stats["var"], np.ones(64))
  assert run.params is not None and trainer.fit().step == 1


def test_batch_norm_eight_devices_match_one_device():
  assert jax.device_count() == 8
  runs = [_wrn_trainer(mesh, batch_size=16, num_steps=3).fit()
          for mesh in (parallel.data_mesh(jax.devices()[:1]),
                       parallel.data_mesh())]
  _close(runs[1].params, runs[0].params, 1e-5)
  _close(runs[1].state.model_state, runs[0].state.model_state, 1e-5)


def test_batch_norm_resume_equals_uninterrupted(tmp_path):
  mesh = parallel.data_mesh(jax.devices()[:1])
  full = _wrn_trainer(mesh, batch_size=16, num_steps=6).fit()
  _wrn_trainer(mesh, batch_size=16, num_steps=3, checkpoint_every=3,
               workdir=str(tmp_path)).fit()
  resumed = _wrn_trainer(mesh, batch_size=16, num_steps=6, checkpoint_every=3,
                         workdir=str(tmp_path)).fit(resume=True)
  _close(resumed.params, full.params, 0.0)
  _close(resumed.state.model_state, full.state.model_state, 0.0)


def test_per_character_loss_and_accuracy_against_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 5, 7)).astype(np.float32)
  labels = rng.integers(0, 7, size=(3, 5))
  logp = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
  np.testing.assert_allclose(CE.per_example(logits, labels), nll.mean(1),
                             rtol=1e-5)
  weights = np.array([1.0, 0.0, 1.0], np.float32)
  np.testing.assert_allclose(CE(logits, labels, weights),
                             nll[[0, 2]].mean(), rtol=1e-5)
  hits = np.argmax(logits, -1) == labels
  np.testing.assert_allclose(losses.accuracy(logits, labels, weights),
                             hits[[0, 2]].mean(), rtol=1e-6)


LSTM = CharLSTM(vocab=11, embed=6, hidden=(8, 8), dropout=0.3)


def _tokens(shape=(4, 9), seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.integers(0, 11, shape), jnp.float32),
          jnp.asarray(rng.integers(0, 11, shape), jnp.int32))


def test_dropout_capture_matches_flax_apply_and_layer_statistics():
  x, y = _tokens()
  params, state = init_variables(LSTM, jax.random.key(0), x[:1])
  assert state == {}
  key = jax.random.key(5)

  def manual(p, k):
    return CE(LSTM.apply({"params": p}, x, train=True, rngs={"dropout": k}), y)

  got = jax.jit(lambda p: capture(LSTM, p, x, y, CE, train=True,
                                  dropout_rng=key))(params)
  want, want_grads = jax.value_and_grad(manual)(params, key)
  np.testing.assert_allclose(got.loss, want, rtol=1e-6)
  _close(got.grads, want_grads, 1e-5)
  # Dropout is active in training and off in evaluation.
  assert abs(float(manual(params, jax.random.key(6))) - float(want)) > 1e-4
  eval_loss = CE(apply_model(LSTM, params, x)[0], y)
  np.testing.assert_allclose(
      eval_loss, CE(LSTM.apply({"params": params}, x), y), rtol=1e-6)
  assert abs(float(eval_loss) - float(want)) > 1e-4
  # Sequence layer statistics rebuild the output layer's gradient.
  stats = jax.jit(lambda p: capture(LSTM, p, x, y, CE, train=True,
                                    dropout_rng=key).stats)(params)
  info = layer_info(LSTM, params, x)
  _close(layer_gradients(stats["out"], info["out"]), want_grads["out"], 1e-5)


def test_step_value_fn_sees_the_steps_dropout_masks():
  x, y = _tokens()
  params, state = init_variables(LSTM, jax.random.key(0), x[:1])

  def probe():
    def init(p):
      return jnp.zeros(()), jnp.zeros(())

    def update(updates, s, params=None, *, value=None, value_fn=None,
               batch=None, **kw):
      del s, kw
      # The batch extra arg is the step's batch.
      batch_error = jnp.max(jnp.abs(batch["x"] - x))
      return (jax.tree.map(jnp.zeros_like, updates),
              (value_fn(params) - value, batch_error))

    return optax.GradientTransformationExtraArgs(init, update)

  step = jax.jit(make_train_step(LSTM, CE, probe()))
  train_state = init_train_state(params, probe(), 3, state)
  batch = {"x": x, "y": y, "weights": jnp.ones(x.shape[0])}
  new_state, metrics = step(train_state, batch)
  assert float(new_state.opt_state[0]) == 0.0
  assert float(new_state.opt_state[1]) == 0.0
  # Different steps draw different masks.
  _, metrics2 = step(new_state, batch)
  assert abs(float(metrics["loss"]) - float(metrics2["loss"])) > 1e-5


def test_missing_dropout_key_is_a_clear_error():
  x, _ = _tokens()
  params, _ = init_variables(LSTM, jax.random.key(0), x[:1])
  with pytest.raises(ValueError, match="dropout"):
    apply_model(LSTM, params, x, train=True)


def test_p4_quick_config_trains_per_character():
  from nnopt import config as C
  _, config = C.load_config_file("configs/balles_p4_tolstoi.py")
  exp = C.build(C.resolve(
      config, "adam", quick=True,
      overrides=["train.num_steps=20", "train.eval_every=20",
                 "variants.adam.optimizer.learning_rate.init_value=0.01"]))
  trainer = exp.trainer(progress=False)
  trainer.fit()
  last = trainer.history[-1]
  assert exp.dataset.num_classes == 96
  # Per-character cross-entropy below the uniform log(96) and accuracy in
  # [0, 1] per character (a per-sequence count would be 0 here).
  assert last["test_loss"] < np.log(96) - 0.3
  assert 0.05 < last["test_accuracy"] < 1.0
