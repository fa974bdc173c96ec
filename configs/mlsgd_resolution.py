"""MLSGD on CIFAR-10, resolution hierarchy (MLSGD thesis §4.3, Tables 4.5/4.6, Figs 4.7/4.8).

Level 1: 32×32 inputs, 3×3 residual kernels in the (a, b) basis; level 0:
2×2 average-pooled inputs, 2×2 kernels; c = (32, 64, 112), 3 layers per block,
h = 1, 23 V-cycles. T as printed (T1 = 7, T0 = 3: ``epochs=(3, 7)`` coarsest
first) and swapped (spec-mlsgd §7 item 1: ``*_swapped``). lr: MLSGD 0.05 / SGD
0.1 constant, or 0.1 ×0.7 every 50 global epochs; GC variants at 0.1.
Deviations as in ``mlsgd_depth.py``. Needs CIFAR-10 and an accelerator.
"""

from nnopt.config import base_config


def _mlsgd(epochs=(3, 7), **options):
  """An MLSGD variant (engine evaluation only at the end, as in
  ``mlsgd_depth.py``)."""
  return dict(train=dict(eval_every=None), hooks=[dict(
      name="mlsgd", options=dict(hierarchy="resolution", epochs=epochs,
                                 n_cycles=23, **options))])


def get_config():
  config = base_config()
  config.description = "MLSGD resolution hierarchy on CIFAR-10"
  config.dataset.name = "cifar10"
  config.dataset.augment = "crop_flip"
  config.dataset.augment_options = dict(padding=2, flip=True)
  config.model.name = "odenet"
  config.model.options = dict(channels=(32, 64, 112), layers_per_block=3,
                              res_param="mlsgd_basis")
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.1
  config.train.batch_size = 250
  config.train.num_epochs = 1000
  config.train.eval_every = 200
  config.train.log_every = 50
  decay = dict(schedule="exponential_decay", init_value=0.1,
               transition_steps=50 * 200, decay_rate=0.7, staircase=True)
  config.variants = dict(
      mlsgd_const=_mlsgd(lr=0.05),
      mlsgd_const_swapped=_mlsgd(epochs=(7, 3), lr=0.05),
      mlsgd_decay=_mlsgd(lr=0.1, decay_every=50),
      mlsgd_decay_swapped=_mlsgd(epochs=(7, 3), lr=0.1, decay_every=50),
      sgd_const=dict(train=dict(num_epochs=100)),
      sgd_decay=dict(train=dict(num_epochs=100), optimizer=dict(learning_rate=decay)),
      gc_det=_mlsgd(lr=0.1, variant="det"),
      gc_det_vr=_mlsgd(lr=0.1, variant="det_vr"),
      gc_stoch=_mlsgd(lr=0.1, variant="stoch"),
      gc_stoch_vr=_mlsgd(lr=0.1, variant="stoch_vr"),
  )
  config.variant_order = list(config.variants)
  # --quick: the same schedules (cycles, epochs per level, step sizes) on
  # scikit-learn's digits with a tiny network and 3 batches per epoch; the
  # hooks stay the variants' own.
  config.quick = dict(
      dataset=dict(name="digits", augment=None, augment_options={}),
      model=dict(options=dict(channels=(4, 8, 8), layers_per_block=2,
                              res_param="mlsgd_basis", connect_norm="tv")),
      train=dict(batch_size=479, log_every=10))
  return config
