"""Kreis §5.3.3 Experiment 3: MNIST shallow sigmoid classifier 784-100-10.

Cross-entropy, batch 1000, 30 epochs (1 800 steps, P6), damping γ = 1e-3.
Champions: SGD α = 1.0 (top of the grid, P8), preconditioned α = 0.0242.
Grid ``np.logspace(-5, 0, 100)`` for both (``sgd_lrNN`` /
``frobenius_lrNN``) and, beyond the thesis, SGD lrs up to 10
(``sgd_up_lrNN``).

    nnopt run configs/frobenius_exp3.py --set variant_order=[sgd,frobenius]
"""

from nnopt.config import base_config

from experiments import kreis_ch5

EXPERIMENT = "exp3"


def get_config():
  config = base_config()
  config.description = "Kreis Exp3: sigmoid FNN 784-100-10 on MNIST"
  config.dataset.name = "mnist"
  config.model.name = "fnn"
  config.model.options = dict(widths=(100, 10), activation="sigmoid",
                              init_scheme="pytorch")
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 1000
  config.train.num_epochs = 30
  sgd_lr, pre_lr = kreis_ch5.CHAMPIONS[EXPERIMENT]
  variants = {"sgd": kreis_ch5.sgd_variant(sgd_lr),
              "frobenius": kreis_ch5.frobenius_variant(pre_lr, EXPERIMENT)}
  variants.update(kreis_ch5.grid_variants(kreis_ch5.EXP3_GRID,
                                          kreis_ch5.EXP3_GRID, EXPERIMENT))
  for i, lr in enumerate(kreis_ch5.EXP3_SGD_EXTENDED):
    variants[f"sgd_up_lr{i:02d}"] = kreis_ch5.sgd_variant(lr)
  config.variants = variants
  config.variant_order = list(variants)
  config.quick = dict(dataset=dict(name="digits", options=dict(flatten=True)),
                      train=dict(batch_size=250, num_epochs=3))
  return config
