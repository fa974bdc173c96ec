"""MLSGD on CIFAR-10, depth hierarchy (MLSGD thesis §4.2, Tables 4.2/4.3, Figs 4.3/4.4).

ODE-ResNet c = (16, 32, 64), 8/4/2 residual layers per block with h = 1/2/4,
constant interpolation, T = (7, 5, 3) epochs (coarsest → finest), 12 V-cycles,
batch 250, plain SGD on every level. Variants: ``mlsgd_const`` (lr 0.05),
``mlsgd_decay`` (×0.7 every 45 global epochs), ``sgd_const`` / ``sgd_decay``
(100 epochs), and the gradient-correction runs ``gc_det`` (0.001), ``gc_det_vr``
(0.01), ``gc_stoch`` (0.001), ``gc_stoch_vr`` (0.0005), λ = 5, q = 3.125 %.
Deviations: the test split stands in for the thesis's 10 000-image validation
split; batch statistics in the normalization layers (see nnopt.models.odenet).
Needs CIFAR-10 in a TFDS data_dir and an accelerator; ``--quick`` runs a tiny
network on scikit-learn's digits.

    nnopt run configs/mlsgd_depth.py --variant mlsgd_const --data_dir ~/tensorflow_datasets
"""

from nnopt.config import base_config


def _mlsgd(**options):
  """An MLSGD variant: the hook, and the engine's evaluation only at the end
  (between level switches it would evaluate whichever level is current; the
  reproduction evaluates the fine model after each fine epoch through
  ``MLSGDHook.evaluate``)."""
  return dict(train=dict(eval_every=None), hooks=[dict(
      name="mlsgd", options=dict(hierarchy="depth", epochs=(7, 5, 3),
                                 n_cycles=12, **options))])


def get_config():
  config = base_config()
  config.description = "MLSGD depth hierarchy on CIFAR-10"
  config.dataset.name = "cifar10"
  config.dataset.augment = "crop_flip"
  config.dataset.augment_options = dict(padding=2, flip=True)
  config.model.name = "odenet"
  config.model.options = dict(channels=(16, 32, 64), layers_per_block=8, h=1.0)
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.05
  config.train.batch_size = 250
  config.train.num_epochs = 1000  # the hook stops after n_cycles
  config.train.eval_every = 200  # one epoch of 50 000 / 250
  config.train.log_every = 50
  config.variants = dict(
      mlsgd_const=_mlsgd(lr=0.05),
      mlsgd_decay=_mlsgd(lr=0.05, decay_every=45),
      sgd_const=dict(train=dict(num_epochs=100)),
      sgd_decay=dict(train=dict(num_epochs=100), optimizer=dict(learning_rate=dict(
          schedule="exponential_decay", init_value=0.05, transition_steps=45 * 200,
          decay_rate=0.7, staircase=True))),
      gc_det=_mlsgd(lr=0.001, variant="det"),
      gc_det_vr=_mlsgd(lr=0.01, variant="det_vr"),
      gc_stoch=_mlsgd(lr=0.001, variant="stoch"),
      gc_stoch_vr=_mlsgd(lr=0.0005, variant="stoch_vr"),
  )
  config.variant_order = list(config.variants)
  # --quick: the same schedules (cycles, epochs per level, step sizes) on
  # scikit-learn's digits with a tiny network and 3 batches per epoch; the
  # hooks stay the variants' own.
  config.quick = dict(
      dataset=dict(name="digits", augment=None, augment_options={}),
      model=dict(options=dict(channels=(4, 8, 8), layers_per_block=4, h=1.0,
                              connect_norm="tv")),
      train=dict(batch_size=479, log_every=10))
  return config
