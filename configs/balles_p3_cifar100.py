"""Balles P3: CIFAR-100 WRN-40-4 (Fig 5.4, B.2).

Wide ResNet 40-4 (8.97 M parameters; batch norm with running averages for
evaluation, see :mod:`nnopt.models.deepobs`), batch 128, 80 000 steps, α × 0.2
after 24k, 48k and 64k steps. Winning α are unknown (spec pitfall 16): the defaults below sit
mid-grid (M-SGD/M-SVAG grid 6…0.01, ADAM/M-SSD grid 1e-2…3e-5); re-tune with
``--set variants.<m>.optimizer.learning_rate.init_value=...``.

    nnopt run configs/balles_p3_cifar100.py --data_dir ~/tensorflow_datasets
    nnopt run configs/balles_p3_cifar100.py --quick
"""

from nnopt.config import base_config
from nnopt.models.deepobs import PRESETS


ALPHAS = {"msgd": 0.3, "adam": 1e-3, "msign_sgd": 3e-4, "msvag": 0.6,
          "svag": 0.6, "adam_star": 1e-3}


def schedule(alpha: float, steps=(24000, 48000, 64000), factor=0.2):
  return dict(schedule="piecewise_constant_schedule", init_value=alpha,
              boundaries_and_scales={str(s): factor for s in steps})


def get_config():
  config = base_config()
  config.description = "P3 CIFAR-100 WRN-40-4: Fig 5.4, B.2"
  config.dataset.name = "cifar100"
  config.dataset.options = dict(normalize=True)
  config.dataset.augment = "crop_flip"
  name, options = PRESETS["p3_wrn404"]
  config.model.name = name
  config.model.options = dict(options)
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 128
  config.train.num_steps = 80000
  config.train.num_epochs = None
  config.train.eval_every = 2000
  config.train.log_every = 100
  config.variants = {m: dict(optimizer=dict(name=m, learning_rate=schedule(a)))
                     for m, a in ALPHAS.items()}
  config.variant_order = list(ALPHAS)
  config.quick = dict(
      dataset=dict(name="digits", options={}, augment=None),
      model=dict(name="wide_resnet", options=dict(depth=10, width=1,
                                                  n_classes=10)),
      train=dict(num_steps=60, eval_every=30))
  return config
