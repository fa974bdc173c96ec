"""An MLP on scikit-learn's 8x8 digits (1 437 train / 360 test images).

64-128-64-10 ReLU network, Adam at 1e-3 with mini-batches of 64 for 30
epochs (about 700 steps); reaches about 97 % test accuracy in seconds on a
CPU. No download: the data ship with scikit-learn.

    nnopt run configs/digits_mlp.py
    nnopt run configs/digits_mlp.py --set optimizer.name=sgd --set optimizer.learning_rate=0.1
"""

from nnopt.config import base_config


def get_config():
  config = base_config()
  config.description = "64-128-64-10 ReLU MLP on sklearn digits with Adam"
  config.dataset.name = "digits"
  config.dataset.options = dict(flatten=True)
  config.model.name = "fnn"
  config.model.options = dict(widths=(128, 64, 10), activation="relu")
  config.loss = "softmax_cross_entropy"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.train.batch_size = 64
  config.train.num_epochs = 30
  config.train.eval_every = 50
  config.train.log_every = 10
  config.quick = dict(train=dict(num_epochs=2))
  return config
