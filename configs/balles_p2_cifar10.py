"""Balles P2: CIFAR-10 3c3d net (Fig 5.4), SVAG / ADAM* (Fig B.2) and M-SVAG-mb
(Fig B.3).

conv5×5×64 VALID → pool → conv3×3×96 VALID → pool → conv3×3×128 SAME → pool
(max 3×3/2) → FC512 → FC256 → FC10 (DeepOBS ``cifar10_3c3d``, 895 210
parameters), ReLU; batch 128, 40 000 steps, constant α; pad-4 crops and
flips (the thesis also distorts colours). The thesis' L2 term (DeepOBS 0.002
on weights) is not applied: nnopt's engine has no weight-decay option for
these methods (add ``optax.add_decayed_weights`` in front to follow it).
Winning α (App. B.1.2): M-SGD 0.03, ADAM 6e-4, M-SSD 1e-4, M-SVAG 0.06; SVAG
and ADAM* have no published α (set like M-SVAG / ADAM here).

    nnopt run configs/balles_p2_cifar10.py --data_dir ~/tensorflow_datasets
    nnopt run configs/balles_p2_cifar10.py --quick
"""

from nnopt.config import base_config
from nnopt.models.deepobs import PRESETS


WINNERS = {"msgd": 0.03, "adam": 6e-4, "msign_sgd": 1e-4, "msvag": 0.06,
           "svag": 0.06, "adam_star": 6e-4, "msvag_mb": 0.06}


def get_config():
  config = base_config()
  config.description = "P2 CIFAR-10 3c3d: Fig 5.4, B.2, B.3"
  config.dataset.name = "cifar10"
  config.dataset.options = dict(normalize=True)
  config.dataset.augment = "crop_flip"
  name, options = PRESETS["p2_cifar10_3c3d"]
  config.model.name = name
  config.model.options = dict(options)
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 128
  config.train.num_steps = 40000
  config.train.num_epochs = None
  config.train.eval_every = 1000
  config.train.log_every = 100
  variants = {m: dict(optimizer=dict(name=m, learning_rate=lr))
              for m, lr in WINNERS.items()}
  config.variants = variants
  config.variant_order = list(WINNERS)
  config.quick = dict(
      dataset=dict(name="digits", options={}, augment=None),
      model=dict(name="conv_pool_net", options=dict(
          convs=((8, 3, "SAME"), (16, 3, "SAME"), (16, 3, "SAME")),
          pool=(3, 2), fc=(32, 16), n_classes=10)),
      train=dict(num_steps=150, eval_every=50))
  return config
