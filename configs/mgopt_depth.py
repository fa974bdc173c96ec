"""MG/Opt on an ODE-ResNet depth hierarchy (Kreis §3.4, Ex. 3.34/3.35, Algorithm 5).

Not a thesis result: chapter 3 runs no network experiments (spec-mgopt §5.6,
optional item R8: Algorithm 5 on a ResNet depth hierarchy with MNIST; after
[68], expect no wall-clock gain over SGD). The optimizer ``'mgopt'`` wraps
SGD, the smoother, in :func:`nnopt.multilevel.coarse_grid_correction_transform`:
every ``every`` steps it restricts θ and the mini-batch gradient with the
constant-interpolation depth transfer (P repeats each coarse residual layer,
R_p = ½Pᵀ, R_g = Pᵀ), takes ``num_coarse_steps`` coarse SGD steps (same learning rate) on the cgc
objective h and adds the prolonged coarse step (α_cgc = 1).

Deviation: the coarse objective is the Galerkin one on the current batch,
f_H(θ̄) = f(θ + P(θ̄ − R_pθ)) (the fine network with pairwise-tied residual
layers, evaluated through the engine's ``value_fn``), not a separate
half-depth network with step 2h, because the engine hands the optimizer the
batch only through ``value_fn``. Variants: ``sgd`` (baseline), ``mgopt``
(K = 5, a cgc every 2nd step), ``mgopt_gated`` (Algorithm 5's gate
‖R_g g‖² > κ‖g‖², κ = 0.5, on the mini-batch gradient). Needs MNIST in a
TFDS data_dir; ``--quick`` runs a tiny network on scikit-learn's digits.

    nnopt run configs/mgopt_depth.py --variant mgopt --data_dir ~/tensorflow_datasets
    nnopt run configs/mgopt_depth.py --quick
"""

import nnopt.multilevel  # noqa: F401  (registers 'odenet' and 'mgopt')
from nnopt.config import base_config


def _mgopt(**options):
  return dict(name="mgopt", options=dict(
      hierarchy="depth", interpolation="constant", num_coarse_steps=5,
      every=2, **options))  # coarse steps at the smoother's learning rate


def get_config():
  config = base_config()
  config.description = "MG/Opt (coarse-grid correction) on an ODE-ResNet depth hierarchy"
  config.dataset.name = "mnist"
  config.model.name = "odenet"
  config.model.options = dict(channels=(8, 16, 32), layers_per_block=4, h=0.5)
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.05
  config.train.batch_size = 128
  config.train.num_epochs = 10
  config.train.eval_every = 469  # one epoch of 60 000 / 128
  config.train.log_every = 50
  config.variants = dict(
      sgd=dict(),
      mgopt=dict(optimizer=_mgopt()),
      mgopt_gated=dict(optimizer=_mgopt(gate_mode="alg5", kappa=0.5)),
  )
  config.variant_order = ["sgd", "mgopt", "mgopt_gated"]
  config.quick = dict(
      dataset=dict(name="digits"),
      optimizer=dict(learning_rate=0.2),
      model=dict(options=dict(channels=(4, 8, 8), layers_per_block=2, h=0.5,
                              connect_norm="tv")),
      train=dict(batch_size=50, num_epochs=None, num_steps=40,
                 eval_every=None, log_every=10))
  return config
