"""The README example of the noise-aware family: nnopt.msvag and the batch
variance estimates inside a hand-written JAX loop, and CABS from a config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt import losses
from nnopt.stats.capture import capture
from nnopt.models import FNN, init_params
from nnopt.noise_aware import msvag, msvag_mb
from nnopt.stats.captured_moments import moments_from_stats


def test_hand_written_loop_with_msvag_and_variance():
  # --- README example start ---
  model = FNN((32, 2), activation="tanh")
  x = jax.random.normal(jax.random.key(0), (256, 2))
  y = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)
  params = init_params(model, jax.random.key(1), x)
  opt = msvag(learning_rate=0.3)             # or msvag_mb(0.3): see below
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, xb, yb):
    cap = capture(model, params, xb, yb, losses.softmax_cross_entropy)
    moments = moments_from_stats(cap.stats, cap.grads)   # fast path, no vmap
    updates, opt_state = opt.update(cap.grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, cap.loss,
            moments.trace)

  for t in range(200):
    idx = np.random.default_rng(t).choice(256, 32, replace=False)
    params, opt_state, loss, trace = step(params, opt_state, x[idx], y[idx])
  # --- README example end ---
  assert float(loss) < 0.45 and float(trace) > 0.0
  # msvag_mb takes the batch variance as an extra argument
  opt = msvag_mb(0.3)
  state = opt.init(params)
  cap = capture(model, params, x[:32], y[:32], losses.softmax_cross_entropy)
  moments = moments_from_stats(cap.stats, cap.grads)
  updates, state = jax.jit(opt.update)(cap.grads, state, params,
                                        variance=moments.mean_variance)
  assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates))


def test_cabs_from_config():
  from nnopt import config as C
  from pathlib import Path
  path = Path(__file__).resolve().parents[2] / "configs" / "balles_cabs.py"
  _, config = C.load_config_file(path)
  exp = C.build(C.resolve(config, "mnist_cabs", quick=True,
                          overrides=["train.num_steps=5"]))
  trainer = exp.trainer(progress=False)
  trainer.fit()
  assert [h["cabs_batch_size"] for h in trainer.history][0] == 16
  assert trainer.num_compilations == 1
