"""Kreis §5.3.3 Experiment 2 on Fashion-MNIST: sigmoid autoencoder.

The thesis's MNIST setting (``configs/frobenius_exp2.py``) on the sibling
dataset: 784-1000-500-250-30-250-500-1000-784 (B.4; P5), sigmoid hidden
layers, linear output, batch 1000, 30 epochs (1 800 steps), γ = 1e-3, pixels
in [0, 1]. The thesis's loss is torch-mean MSE with BackPACK's G scaling
(P11); here it is ``squared_error`` (½‖·‖² per example) with the learning
rate and G scaled by 2/D, the same iterates
(:func:`experiments.kreis_ch5.torch_mse_equivalent`): the logged loss is
D/2 = 392 times the torch-mean MSE. The lrs named below are the thesis's.

Variants: champions ``sgd`` (α = 0.1, P8) and ``frobenius`` (α = 0.1) and
their grid neighbours (``*_up`` / ``*_down``: SGD 0.1207 / 0.0954 on
``np.logspace(0, -5, 50)``; preconditioned 0.11 / 0.09 on 0.2, 0.19, …,
0.05), then the grids (``sgd_lrNN`` / ``frobenius_lrNN``). Logged every 20
steps (MA-200 = mean of the last 10 records); test loss every 180 steps.

    nnopt run configs/kreis_fmnist_exp2.py --set variant_order=[sgd,frobenius]
    nnopt run configs/kreis_fmnist_exp2.py --set dataset.name=mnist --data_dir DIR
"""

from nnopt.config import base_config

from experiments import kreis_ch5

EXPERIMENT = "exp2"
WIDTHS = (1000, 500, 250, 30, 250, 500, 1000)
SGD_GRID = kreis_ch5.EXP2_SGD_GRID
PRE_GRID = kreis_ch5.EXP2_PRECOND_GRID


def _variants(dim):
  make = {"sgd": lambda lr: kreis_ch5.sgd_variant(lr, output_dim=dim),
          "frobenius": lambda lr: kreis_ch5.frobenius_variant(
              lr, EXPERIMENT, output_dim=dim)}
  variants = {}
  for method, grid in (("sgd", SGD_GRID), ("frobenius", PRE_GRID)):
    i = grid.index(0.1)  # both champions are 0.1; both grids descend
    variants[method] = make[method](grid[i])
    variants[f"{method}_up"] = make[method](grid[i - 1])
    variants[f"{method}_down"] = make[method](grid[i + 1])
  variants.update(kreis_ch5.grid_variants(SGD_GRID, PRE_GRID, EXPERIMENT,
                                          output_dim=dim))
  return variants


def get_config():
  config = base_config()
  config.description = ("Kreis Exp2 on Fashion-MNIST: sigmoid autoencoder, "
                        "SGD vs covariance preconditioner")
  config.dataset.name = "fashion_mnist"
  config.dataset.options = dict(normalize=False)
  config.dataset.targets = "inputs"  # an autoencoder
  config.model.name = "fnn"
  config.model.options = dict(widths=WIDTHS + (784,), activation="sigmoid",
                              init_scheme="pytorch")
  config.loss = "squared_error"
  config.train.batch_size = 1000
  config.train.num_epochs = 30
  config.train.log_every = 20
  config.train.eval_every = 180
  config.variants = _variants(784)
  config.variant_order = list(config.variants)
  config.panels = [("champions", ["sgd", "frobenius"]),
                   ("SGD: champion and grid neighbours",
                    ["sgd_up", "sgd", "sgd_down"]),
                   ("preconditioned: champion and grid neighbours",
                    ["frobenius_up", "frobenius", "frobenius_down"])]
  config.quick = dict(
      dataset=dict(name="digits", options={}),
      model=dict(options=dict(widths=(200, 100, 50, 30, 50, 100, 200, 64),
                              activation="sigmoid", init_scheme="pytorch")),
      train=dict(batch_size=250, num_epochs=3, log_every=1, eval_every=5))
  return config
