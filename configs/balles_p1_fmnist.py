"""Balles P1: Fashion-MNIST 2-conv net, M-SGD / ADAM / M-SSD / M-SVAG (Fig 5.4),
and M-SVAG-mb (Fig B.3).

conv5×5×32 → maxpool 3×3/2 → conv5×5×64 → maxpool 3×3/2 → FC1024 → FC10, ReLU,
no regularization; batch 64, 6 000 steps, constant α. Step sizes are the
thesis' winners (App. B.1.2): M-SGD 0.1, ADAM 1e-3, M-SSD 3e-4, M-SVAG 0.3;
grids in the spec §4.7. β = 0.9 for the noise-aware methods. The train-loss
curve of the thesis is on a fixed train subset of test-set size: run with
``train.eval_train`` or see ``experiments/reproduce_balles_tier_b.py``.

Fashion-MNIST is found without a setting where Debian's or Ubuntu's package
is installed (``apt-get install dataset-fashion-mnist``: the original IDX
files in /usr/share/datasets/fashion-mnist); else give a directory with the
IDX files (or a TFDS data directory) with ``--data_dir`` or ``NNOPT_DATA_DIR``
(look-up order: :mod:`nnopt.data.image_sources`).

    nnopt run configs/balles_p1_fmnist.py                  # Debian package
    nnopt run configs/balles_p1_fmnist.py --data_dir DIR   # IDX files in DIR
    nnopt run configs/balles_p1_fmnist.py --quick          # digits stand-in
"""

from nnopt.config import base_config
from nnopt.models.deepobs import PRESETS


WINNERS = {"msgd": 0.1, "adam": 1e-3, "msign_sgd": 3e-4, "msvag": 0.3,
           "msvag_mb": 0.3}
GRIDS = {
    "msgd": [3, 1, 0.6, 0.3, 0.1, 0.06, 0.03, 0.01, 0.006, 0.003],
    "adam": [0.03, 0.01, 0.006, 0.003, 0.001, 6e-4, 3e-4, 1e-4],
    "msign_sgd": [0.01, 6e-3, 3e-3, 1e-3, 6e-4, 3e-4, 1e-4],
    "msvag": [3, 1, 0.6, 0.3, 0.1, 0.06, 0.03, 0.01, 0.006, 0.003],
}


def get_config():
  config = base_config()
  config.description = "P1 Fashion-MNIST: M-SGD, ADAM, M-SSD, M-SVAG (Fig 5.4)"
  config.dataset.name = "fashion_mnist"
  # Pixels in [0, 1], not standardized: DeepOBS's fmnist reader (the thesis'
  # test-problem code) feeds x/255, and the winning step sizes are for that.
  config.dataset.options = dict(normalize=False)
  name, options = PRESETS["p1_fmnist"]
  config.model.name = name
  config.model.options = dict(options)
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 64
  config.train.num_steps = 6000
  config.train.num_epochs = None
  config.train.eval_every = 250
  config.train.log_every = 50
  variants = {m: dict(optimizer=dict(name=m, learning_rate=lr))
              for m, lr in WINNERS.items()}
  config.variants = variants
  config.variant_order = list(WINNERS)
  config.quick = dict(
      dataset=dict(name="digits", options={}),
      model=dict(name="conv_pool_net", options=dict(
          convs=((8, 3, "SAME"), (16, 3, "SAME")), pool=(3, 2), fc=(64,),
          n_classes=10)),
      train=dict(num_steps=150, eval_every=50))
  return config
