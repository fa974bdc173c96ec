"""Kreis §5.3.3 Experiment 1: MNIST ReLU classifier 784-100-100-100-10.

Cross-entropy, batch 100, 30 epochs (18 000 steps); SGD and SGD with the
covariance (second-moment) preconditioner, damping γ = 0.01 on both factors,
factors recomputed from every batch with model-sampled labels (Fisher, one
sample). Variants: the two champions (``sgd``: α = 0.304, ``frobenius``:
α = 5.30e-4, spec P4) and the full grid ``np.logspace(0, -5, 30)`` for both
methods (``sgd_lrNN`` / ``frobenius_lrNN``).

    nnopt run configs/frobenius_exp1.py --set variant_order=[sgd,frobenius]
    nnopt run configs/frobenius_exp1.py --quick      # embedded digits
"""

from nnopt.config import base_config

from experiments import kreis_ch5

EXPERIMENT = "exp1"


def get_config():
  config = base_config()
  config.description = "Kreis Exp1: ReLU FNN 784-100-100-100-10 on MNIST"
  config.dataset.name = "mnist"
  config.model.name = "fnn"
  config.model.options = dict(widths=(100, 100, 100, 10), activation="relu",
                              init_scheme="pytorch")
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 100
  config.train.num_epochs = 30
  config.train.log_every = 1
  sgd_lr, pre_lr = kreis_ch5.CHAMPIONS[EXPERIMENT]
  variants = {"sgd": kreis_ch5.sgd_variant(sgd_lr),
              "frobenius": kreis_ch5.frobenius_variant(pre_lr, EXPERIMENT)}
  variants.update(kreis_ch5.grid_variants(kreis_ch5.EXP1_GRID,
                                          kreis_ch5.EXP1_GRID, EXPERIMENT))
  config.variants = variants
  config.variant_order = list(variants)
  config.quick = dict(dataset=dict(name="digits", options=dict(flatten=True)),
                      train=dict(num_epochs=3))
  return config
