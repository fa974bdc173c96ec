"""SensLI's VGG-style CNN on CIFAR-10 (Kreis (2.11), spec-sensli §1.3, Exp5 X1).

Conv 3→64→128→256 (3x3, padding 1, ReLU, 2x2 max-pool after each), then FC
4096-500-500-10 without a last bias: 2 674 816 parameters (Table 4.3).
Training follows the reference code of Exp5: plain SGD at lr 0.01, batch 128,
100 epochs, random crop (padding 4) and horizontal flip, normalized inputs,
PyTorch-default initialization.

CIFAR-10 is read from a local TFDS data directory (``--data_dir`` or
``TFDS_DATA_DIR``); nnopt says how to prepare it when it is missing.
``--quick`` swaps in a small VGG on scikit-learn's 8x8 digits, trained with
Adam for 100 steps (about 75 % test accuracy), so that the config runs
anywhere in seconds:

    nnopt run configs/vgg_cifar10.py --data_dir ~/tensorflow_datasets
    nnopt run configs/vgg_cifar10.py --quick
"""

from nnopt.config import base_config


def get_config():
  config = base_config()
  config.description = "VGG [64,128,256] + FC 500-500-10 on CIFAR-10, plain SGD"
  config.dataset.name = "cifar10"
  config.dataset.data_dir = None       # TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.options = dict(normalize=True)
  config.dataset.augment = "crop_flip"
  config.dataset.augment_options = dict(padding=4, flip=True)
  config.model.name = "vgg"
  config.model.options = dict(stages=((64,), (128,), (256,)), fc=(500, 500),
                              n_classes=10, activation="relu",
                              init_scheme="pytorch")
  config.loss = "softmax_cross_entropy"
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.01
  config.train.batch_size = 128
  config.train.num_epochs = 100
  config.train.eval_every = 391        # once per epoch (50 000 / 128)
  config.train.log_every = 20
  config.train.checkpoint_every = 1955  # every 5 epochs
  config.quick = dict(
      dataset=dict(name="digits", options={}, augment=None,
                   augment_options={}),
      model=dict(options=dict(stages=((8,), (16,), (16,)), fc=(32, 32),
                              n_classes=10, init_scheme="pytorch")),
      optimizer=dict(name="adam", learning_rate=0.01),
      train=dict(num_epochs=None, num_steps=100, batch_size=64, eval_every=25,
                 log_every=5, checkpoint_every=None),
  )
  return config
