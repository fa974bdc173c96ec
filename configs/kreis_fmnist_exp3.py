"""Kreis §5.3.3 Experiment 3 on Fashion-MNIST: sigmoid FNN 784-100-10.

The thesis's MNIST setting (``configs/frobenius_exp3.py``) on the sibling
dataset: cross-entropy, batch 1000, 30 epochs (1 800 steps, P6), γ = 1e-3,
pixels in [0, 1]. Variants: champions ``sgd`` (α = 1.0, the top of the grid,
P8) and ``frobenius`` (α = 0.0242, index 67 of ``np.logspace(-5, 0, 100)``)
and their neighbours (``*_up`` / ``*_down``: SGD 1.259 (first lr of the
upward extension ``np.logspace(0, 1, 11)``, P8) / 0.890; preconditioned
0.0272 / 0.0215), ``sgd_long``: the SGD champion for 90 epochs (the thesis
ran SGD longer for its wall-clock panel), then the grids. Logged every 20
steps (MA-200 = mean of the last 10 records); test accuracy every 180 steps.

    nnopt run configs/kreis_fmnist_exp3.py --set variant_order=[sgd,frobenius]
    nnopt run configs/kreis_fmnist_exp3.py --set dataset.name=mnist --data_dir DIR
"""

from nnopt.config import base_config

from experiments import kreis_ch5

EXPERIMENT = "exp3"
GRID = kreis_ch5.EXP3_GRID  # ascending
UP = kreis_ch5.EXP3_SGD_EXTENDED
CHAMPION_INDEX = {"sgd": 99, "frobenius": 67}
LONG_EPOCHS = 90


def get_config():
  config = base_config()
  config.description = ("Kreis Exp3 on Fashion-MNIST: sigmoid FNN 784-100-10, "
                        "SGD vs covariance preconditioner")
  config.dataset.name = "fashion_mnist"
  config.dataset.options = dict(normalize=False)
  config.model.name = "fnn"
  config.model.options = dict(widths=(100, 10), activation="sigmoid",
                              init_scheme="pytorch")
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 1000
  config.train.num_epochs = 30
  config.train.log_every = 20
  config.train.eval_every = 180
  sgd = kreis_ch5.sgd_variant
  pre = lambda lr: kreis_ch5.frobenius_variant(lr, EXPERIMENT)
  s, p = CHAMPION_INDEX["sgd"], CHAMPION_INDEX["frobenius"]
  variants = {
      "sgd": sgd(GRID[s]), "sgd_up": sgd(UP[0]), "sgd_down": sgd(GRID[s - 1]),
      "frobenius": pre(GRID[p]), "frobenius_up": pre(GRID[p + 1]),
      "frobenius_down": pre(GRID[p - 1]),
      "sgd_long": dict(sgd(GRID[s]), train=dict(num_epochs=LONG_EPOCHS))}
  variants.update(kreis_ch5.grid_variants(GRID, GRID, EXPERIMENT))
  for i, lr in enumerate(UP):
    variants[f"sgd_up_lr{i:02d}"] = sgd(lr)
  config.variants = variants
  config.variant_order = list(variants)
  config.panels = [("champions", ["sgd", "frobenius", "sgd_long"]),
                   ("SGD: champion and grid neighbours",
                    ["sgd_up", "sgd", "sgd_down"]),
                   ("preconditioned: champion and grid neighbours",
                    ["frobenius_up", "frobenius", "frobenius_down"])]
  config.quick = dict(dataset=dict(name="digits", options=dict(flatten=True)),
                      train=dict(batch_size=250, num_epochs=3, log_every=1,
                                 eval_every=5))
  return config
