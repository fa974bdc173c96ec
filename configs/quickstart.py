"""Quick start: two of nnopt's ideas against their baselines on the spiral.

Both on the two interleaved spirals of Kreis §2.2 (1.5 turns, 450 training /
150 test points, embedded), drawn as two rows of one figure
(``runs/quickstart/curves.png``; the README's ``docs/quickstart.png`` is a
copy):

* **optimizers** — a 2-32-32-2 tanh network, mini-batches of 45, 2 000 steps:
  nnopt's M-SVAG (``msvag``, Balles ch. 5: momentum SGD whose per-weight step
  is damped by its estimated gradient variance) and covariance-preconditioned
  SGD (``frobenius_sgd``, Kreis ch. 5: layer-wise Kronecker factors of the
  sampled Fisher) against optax's SGD and Adam, each at the best rate of a
  coarse grid (SGD {0.1, 0.3, 1}, Adam {0.003, 0.01, 0.03}, M-SVAG
  {0.1, 0.3, 1, 3}, preconditioned SGD {0.01, 0.03, 0.1, 0.3}; final test
  accuracy, seed 0). The preconditioner fits the spiral in about 100 steps;
  M-SVAG reaches 100 % test accuracy, Adam about 98 %, SGD about 93 %.
* **growing a network** — full-batch gradient descent (rate 0.2) on a 2-5-2
  ReLU network for 6 000 epochs; after epoch 450 SensLI (Kreis ch. 4)
  measures how sensitive the loss is to a new layer (the gradient norm of
  its weights at the identity) and inserts the identity layer 5→5, so
  training continues on 2-5-5-2 from the same function. The grown network
  reaches 96 % test accuracy, the fixed 2-5-2 stays near 61 %.

About 16 s on two CPU cores, start-up and compilation included (15.5–16.1 s
measured with ``/usr/bin/time`` while another training job kept the same two
cores busy):

    nnopt run configs/quickstart.py          # -> runs/quickstart/curves.png
    nnopt run configs/quickstart.py --quick  # 200 steps per run, a few seconds
    nnopt run configs/quickstart.py --variant sgd --set optimizer.options.momentum=0.9
"""

from nnopt.config import base_config


def _optimizer(name, learning_rate):
  return dict(optimizer=dict(name=name, learning_rate=learning_rate))


def get_config():
  config = base_config()
  config.description = "nnopt quick start on the spiral"
  config.dataset.name = "spiral"
  config.dataset.options = dict(circles=1.5)
  config.model.name = "fnn"
  config.model.options = dict(widths=(32, 32, 2), activation="tanh")
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 45
  config.train.num_epochs = 200        # 10 steps per epoch
  config.train.eval_every = 50
  config.train.log_every = 10
  # SensLI's runs: full batch (one step per epoch), the thesis's 2-5-2 start.
  small = dict(model=dict(name="fnn", options=dict(widths=(5, 2),
                                                   init_scheme="pytorch")),
               optimizer=dict(name="sgd", learning_rate=0.2),
               train=dict(batch_size=None, num_epochs=6000, eval_every=200))
  config.variants = dict(
      sgd=_optimizer("sgd", 0.3),
      adam=_optimizer("adam", 0.03),
      msvag=_optimizer("msvag", 3.0),
      # eigh: the same inverse as the default Cholesky solve, without its
      # BLAS triangular solve, whose threads stall on a busy 2-core machine.
      frobenius=dict(optimizer=dict(name="frobenius_sgd", learning_rate=0.03,
                                    options=dict(solver="eigh"))),
      fixed=small,
      sensli=dict(small, hooks=[dict(name="sensli",
                                     options=dict(at_epochs=[450]))]),
  )
  config.variant_order = ["sgd", "adam", "msvag", "frobenius", "fixed",
                          "sensli"]
  config.panels = [  # one row of the figure per comparison
      ("Optimizers, 2-32-32-2 tanh, batch 45: nnopt's M-SVAG and "
       "covariance-preconditioned SGD vs optax's SGD and Adam",
       ["sgd", "adam", "msvag", "frobenius"]),
      ("Growing a network, full-batch GD: SensLI inserts a layer into "
       "2-5-2 at epoch 450 vs the fixed 2-5-2",
       ["fixed", "sensli"]),
  ]
  config.quick = dict(train=dict(num_steps=200))
  return config
