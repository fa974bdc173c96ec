"""MG/Opt on an ODE-ResNet depth hierarchy (Kreis §3.4, Ex. 3.34/3.35, Algorithm 5).

Not a thesis result: chapter 3 runs no network experiments (spec-mgopt §5.6,
optional item R8: Algorithm 5 on a ResNet depth hierarchy with MNIST; after
[68], expect no wall-clock gain over SGD). The optimizer ``'mgopt'`` wraps
SGD, the smoother, in :func:`nnopt.multilevel.coarse_grid_correction_transform`:
every ``every`` steps it restricts θ and the mini-batch gradient with the
constant-interpolation depth transfer (P repeats each coarse residual layer,
R_p = ½Pᵀ, R_g = Pᵀ), takes ``num_coarse_steps`` coarse SGD steps (same
learning rate) on the first-order-coherent cgc objective
h(θ̄) = f_H(θ̄) + ⟨R_g g − ∇f_H(R_pθ), θ̄⟩ and adds the prolonged coarse step
(α_cgc = 1).

Coarse objective: by default (``coarse_objective='network'``) f_H is the loss
of the coarse ODE-ResNet, half the residual layers per block and step 2h
(Kreis Ex. 3.34 (3.12)–(3.14); spec-mgopt §7.1/§7.2 "a ResNet with half the
blocks and step 2h", the coarse model that R8 asks for), on the current
mini-batch (the engine's ``batch``, the run's loss). The variant
``mgopt_galerkin`` uses instead the Galerkin objective
f_H(θ̄) = f(θ + P(θ̄ − R_pθ)) (the fine network with pairwise-tied residual
layers, through the engine's ``value_fn``): exact, but each coarse step costs
a fine forward/backward pass, and the spec prescribes Galerkin coarse problems
only for quadratics (§3.1). Variants: ``sgd`` (baseline), ``mgopt`` (K = 5, a
cgc every 2nd step), ``mgopt_gated`` (Algorithm 5's gate
‖R_g g‖² > κ‖g‖², κ = 0.5, on the mini-batch gradient), ``mgopt_galerkin``.

Step sizes (the thesis gives no defaults for ᾱ, λ, K in the NN setting):
the network variants use λ = 5 (Algorithm 5's λ-regularized h; the value of
the MLSGD thesis's step-size regularization) and ᾱ = α/2; the Galerkin
variant K = 5, ᾱ = α, λ = 0. With λ = 0 and ᾱ = α the network coarse model
did not lower the loss on the ``--quick`` digits run (≈ 2.31 for 80 steps
while SGD reached ≈ 2.08): along the coarse path h is nearly linear, so K
steps act like one step of size Kᾱ and overshoot; with λ = 5, ᾱ = α/2 it
trains like SGD (≈ 2.07), as [68] leads one to expect (no speed-up from
coarse-network corrections). Not a thesis result.
Needs MNIST in a TFDS data_dir; ``--quick`` runs a tiny network on
scikit-learn's digits.

    nnopt run configs/mgopt_depth.py --variant mgopt --data_dir ~/tensorflow_datasets
    nnopt run configs/mgopt_depth.py --quick
"""

from nnopt.config import base_config


NETWORK_STEPS = dict(lam=5.0, coarse_lr_factor=0.5)


def _mgopt(coarse_objective="network", **options):
  return dict(name="mgopt", options=dict(
      hierarchy="depth", interpolation="constant", num_coarse_steps=5,
      every=2, coarse_objective=coarse_objective, **options))


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
      mgopt=dict(optimizer=_mgopt(**NETWORK_STEPS)),
      mgopt_gated=dict(optimizer=_mgopt(gate_mode="alg5", kappa=0.5,
                                        **NETWORK_STEPS)),
      mgopt_galerkin=dict(optimizer=_mgopt(coarse_objective="galerkin")),
  )
  config.variant_order = ["sgd", "mgopt", "mgopt_gated", "mgopt_galerkin"]
  config.quick = dict(
      dataset=dict(name="digits"),
      optimizer=dict(learning_rate=0.2),
      model=dict(options=dict(channels=(4, 8, 8), layers_per_block=2, h=0.5,
                              connect_norm="tv")),
      train=dict(batch_size=50, num_epochs=None, num_steps=40,
                 eval_every=None, log_every=10))
  return config
