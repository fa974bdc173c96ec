"""SensLI with two-weight ResNets on the spiral (Kreis Fig 4.5c, 4.7, 4.10a, 4.11a).

Thesis-form ResNet (2.10) of width 3, tanh, PyTorch init; candidates after
each residual block; the new block starts with ``W1 = 0.8 I``, ``b = 0``,
``W2 = 0`` (reference code).

* ``li`` / ``resnet1`` / ``resnet2`` — Exp3: one block, full-batch GD at lr 0.1,
  insertion after 450 of 1850 iterations; ResNet2 has 2 blocks.
* ``li3`` / ``li3_min`` / ``li3_random`` / ``resnet1_sgd`` / ``resnet2_sgd`` —
  Exp13 (settings derived, spec P3): SGD lr 0.01, batch 45, insertions after
  epochs 100, 200, 300 of 500 at the largest / smallest / a random merit;
  ResNet2 has 4 blocks.

    nnopt run configs/sensli_spiral_resnet.py --variant li
"""

from nnopt.config import base_config


def get_config():
  config = base_config()
  config.description = "SensLI vs fixed ResNets on the spiral"
  config.dataset.name = "spiral"
  config.model.name = "resnet"
  config.model.options = dict(width=3, n_blocks=1, n_outputs=2,
                              activation="tanh", init_scheme="pytorch")
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.1
  config.train.batch_size = None
  config.train.num_epochs = 1850
  config.train.eval_every = 50
  config.train.log_every = 10

  def resnet(blocks):
    return dict(name="resnet", options=dict(width=3, n_blocks=blocks, n_outputs=2,
                                            activation="tanh",
                                            init_scheme="pytorch"))

  sgd = dict(optimizer=dict(learning_rate=0.01),
             train=dict(batch_size=45, num_epochs=500, eval_every=100))

  def three(rule):
    return dict(sgd, hooks=[dict(name="sensli", options=dict(
        at_epochs=[100, 200, 300], rule=rule, mode="epoch", batch_size=45))])

  config.variants = dict(
      li=dict(hooks=[dict(name="sensli", options=dict(at_epochs=[450]))]),
      resnet1=dict(), resnet2=dict(model=resnet(2)),
      li3=three("max"), li3_min=three("min"), li3_random=three("random"),
      resnet1_sgd=dict(sgd), resnet2_sgd=dict(sgd, model=resnet(4)))
  config.variant_order = list(config.variants)
  config.quick = dict(train=dict(num_epochs=600))
  return config
