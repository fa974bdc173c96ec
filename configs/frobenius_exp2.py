"""Kreis §5.3.3 Experiment 2: MNIST sigmoid autoencoder.

784-1000-500-250-30-250-500-1000-784 (B.4; P5), sigmoid hidden layers,
linear output, batch 1000, 30 epochs (1 800 steps), damping γ = 1e-3.
The thesis's loss is torch-mean MSE with BackPACK's G scaling (P11); here it
is nnopt's ``squared_error`` (½‖·‖² per example) with the learning rate and
G both scaled by 2/D (exactly the same iterates; see
:func:`experiments.kreis_ch5.torch_mse_equivalent`). The lrs in
the variant names are the thesis's. Grids: SGD ``np.logspace(0, -5, 50)``
plus 0.1 (P8); preconditioned 0.2, 0.19, …, 0.05.

    nnopt run configs/frobenius_exp2.py --set variant_order=[sgd,frobenius]
"""

from nnopt.config import base_config

from experiments import kreis_ch5

EXPERIMENT = "exp2"
WIDTHS = (1000, 500, 250, 30, 250, 500, 1000)


def _variants(dim):
  sgd_lr, pre_lr = kreis_ch5.CHAMPIONS[EXPERIMENT]
  variants = {"sgd": kreis_ch5.sgd_variant(sgd_lr, output_dim=dim),
              "frobenius": kreis_ch5.frobenius_variant(
                  pre_lr, EXPERIMENT, output_dim=dim)}
  variants.update(kreis_ch5.grid_variants(
      kreis_ch5.EXP2_SGD_GRID, kreis_ch5.EXP2_PRECOND_GRID, EXPERIMENT,
      output_dim=dim))
  return variants


def get_config():
  config = base_config()
  config.description = "Kreis Exp2: sigmoid autoencoder on MNIST, torch-mean MSE"
  config.dataset.name = "mnist"
  config.dataset.targets = "inputs"  # an autoencoder
  config.model.name = "fnn"
  config.model.options = dict(widths=WIDTHS + (784,), activation="sigmoid",
                              init_scheme="pytorch")
  config.loss = "squared_error"
  config.train.batch_size = 1000
  config.train.num_epochs = 30
  config.variants = _variants(784)
  config.variant_order = list(config.variants)
  config.quick = dict(
      dataset=dict(name="digits", options={}),
      model=dict(options=dict(widths=(200, 100, 50, 30, 50, 100, 200, 64),
                              activation="sigmoid", init_scheme="pytorch")),
      train=dict(batch_size=250, num_epochs=3))
  return config
