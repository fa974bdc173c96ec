"""Kreis §5.3.3 Experiment 1 on Fashion-MNIST: ReLU FNN 784-100-100-100-10.

The thesis's MNIST setting (``configs/frobenius_exp1.py``) on the sibling
dataset: cross-entropy, batch 100, 30 epochs (18 000 steps), plain SGD and
SGD with the covariance (second-moment) preconditioner, γ = 0.01 on both
factors, factors from every batch with model-sampled labels; pixels in
[0, 1], PyTorch-style init. Variants: the thesis's champions (``sgd``
α = 0.304, ``frobenius`` α = 5.30e-4; spec P4) and their neighbours on the
grid ``np.logspace(0, -5, 30)`` (``*_up``: the next larger α, ``*_down``: the
next smaller), then the whole grid (``sgd_lrNN`` / ``frobenius_lrNN``).
Logged every 50 steps (running mean of the mini-batch loss), so the thesis's
MA-200 is the mean of the last 4 records; test accuracy every 1 800 steps.

    nnopt run configs/kreis_fmnist_exp1.py --set variant_order=[sgd,frobenius]
    nnopt run configs/kreis_fmnist_exp1.py --set dataset.name=mnist --data_dir DIR
    nnopt run configs/kreis_fmnist_exp1.py --quick      # embedded digits
"""

from nnopt.config import base_config

from experiments import kreis_ch5

EXPERIMENT = "exp1"
GRID = kreis_ch5.EXP1_GRID
#: (method, grid) → thesis champion index; neighbours are index ∓ 1.
CHAMPION_INDEX = {"sgd": 3, "frobenius": 19}


def get_config():
  config = base_config()
  config.description = ("Kreis Exp1 on Fashion-MNIST: ReLU FNN "
                        "784-100-100-100-10, SGD vs covariance preconditioner")
  config.dataset.name = "fashion_mnist"
  config.dataset.options = dict(normalize=False)
  config.model.name = "fnn"
  config.model.options = dict(widths=(100, 100, 100, 10), activation="relu",
                              init_scheme="pytorch")
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 100
  config.train.num_epochs = 30
  config.train.log_every = 50
  config.train.eval_every = 1800
  make = {"sgd": kreis_ch5.sgd_variant,
          "frobenius": lambda lr: kreis_ch5.frobenius_variant(lr, EXPERIMENT)}
  variants = {}
  for method, i in CHAMPION_INDEX.items():
    variants[method] = make[method](GRID[i])
    variants[f"{method}_up"] = make[method](GRID[i - 1])  # grid descends
    variants[f"{method}_down"] = make[method](GRID[i + 1])
  variants.update(kreis_ch5.grid_variants(GRID, GRID, EXPERIMENT))
  config.variants = variants
  config.variant_order = list(variants)
  config.panels = [("champions", ["sgd", "frobenius"]),
                   ("SGD: champion and grid neighbours",
                    ["sgd_up", "sgd", "sgd_down"]),
                   ("preconditioned: champion and grid neighbours",
                    ["frobenius_up", "frobenius", "frobenius_down"])]
  config.quick = dict(dataset=dict(name="digits", options=dict(flatten=True)),
                      train=dict(num_epochs=3, log_every=5, eval_every=20))
  return config
