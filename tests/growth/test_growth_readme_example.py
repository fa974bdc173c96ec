"""The README's "growing a network by hand" example, verbatim (keep in sync)."""

import numpy as np


def test_readme_growing_by_hand():
  # --- README example begins ---
  import jax
  import optax
  from nnopt import growth, losses
  from nnopt.data import load_dataset
  from nnopt.models import FNN, init_params

  data = load_dataset("spiral")
  x, y = data.x_train, data.y_train
  loss = losses.softmax_cross_entropy
  model = FNN((5, 2), init_scheme="pytorch")           # 2-5-2 ReLU
  params = init_params(model, jax.random.key(0), x[:1])
  opt = optax.adam(1e-2)
  opt_state = opt.init(params)

  def make_step(model):
    @jax.jit
    def step(params, opt_state):
      value, g = jax.value_and_grad(
          lambda p: loss(model.apply({"params": p}, x), y))(params)
      updates, opt_state = opt.update(g, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, value
    return step

  step = make_step(model)
  for it in range(300):
    if it == 150:
      # 1. sensitivities of the fully extended network (all candidates)
      ext_model, ext_params, cands = growth.fully_extend(model, params)
      sens = growth.sensitivities(ext_model, ext_params, loss, x, y, mode="full")
      # 2. merits (squared Frobenius norm of each candidate's gradient), select
      merits = growth.candidate_merits(ext_model, sens.grads, cands, x.shape[1:])
      chosen = growth.select(merits, "max").chosen
      # 3. insert the chosen identity layer: same function, one more layer
      model, params = growth.insert(model, params, chosen)
      # 4. keep Adam's moments of the old layers, fresh state for the new one
      opt_state = growth.graft(opt_state, opt.init(params))
      step = make_step(model)
    params, opt_state, value = step(params, opt_state)
  # --- README example ends ---
  assert model.widths == (5, 5, 2)
  assert np.isfinite(float(value)) and float(value) < 0.69
