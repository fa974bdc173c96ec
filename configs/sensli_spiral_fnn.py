"""SensLI with FNNs on the spiral (Kreis Fig 4.5a/b, spec-sensli §4.1 Exp2/Exp4).

One run per variant through the engine with the ``sensli`` hook (the
reproduction ``nnopt reproduce sensli_spiral`` averages 30–40 seeds on the
engine's runs axis, each run equal to the engine run alone; here
``--set sweep.seeds=30`` does the same):

* ``li`` — FNN 2-5-2 (ReLU, PyTorch init), full-batch GD at lr 0.2; after 450
  of 1850 iterations SensLI inserts the identity layer 5→5 (the only
  candidate); ``fnn1`` without insertion (same seed, same start); ``fnn2`` the
  2-5-5-2 network from scratch.
* ``li_minibatch`` / ``fnn1_minibatch`` / ``fnn2_minibatch`` — Exp4: SGD lr 0.01,
  batch 45 (10 steps per epoch), insertion after epoch 450 of 1850, with the
  sensitivities of one lr-0 epoch.

    nnopt run configs/sensli_spiral_fnn.py
    nnopt run configs/sensli_spiral_fnn.py --variant li --set train.seed=3
"""

from nnopt.config import base_config


def get_config():
  config = base_config()
  config.description = "SensLI vs fixed FNNs on the spiral"
  config.dataset.name = "spiral"
  config.model.name = "fnn"
  config.model.options = dict(widths=(5, 2), init_scheme="pytorch")
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.2
  config.train.batch_size = None
  config.train.num_epochs = 1850
  config.train.eval_every = 50
  config.train.log_every = 10
  fnn2 = dict(name="fnn", options=dict(widths=(5, 5, 2), init_scheme="pytorch"))
  mini = dict(optimizer=dict(learning_rate=0.01),
              train=dict(batch_size=45, eval_every=100))
  sensli = [dict(name="sensli", options=dict(at_epochs=[450]))]
  sensli_epoch = [dict(name="sensli", options=dict(
      at_epochs=[450], mode="epoch", batch_size=45))]
  config.variants = dict(
      li=dict(hooks=sensli), fnn1=dict(), fnn2=dict(model=fnn2),
      li_minibatch=dict(mini, hooks=sensli_epoch), fnn1_minibatch=dict(mini),
      fnn2_minibatch=dict(mini, model=fnn2))
  config.variant_order = list(config.variants)
  config.quick = dict(train=dict(num_epochs=600))
  return config
