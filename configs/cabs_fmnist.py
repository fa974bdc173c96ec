"""CABS in the Fig 4.2 setting on Fashion-MNIST (Balles ch. 4, sibling item).

The MNIST column of Fig 4.2 (``configs/balles_cabs.py``, spec §3.8) on
Fashion-MNIST: conv5×5×32 → maxpool 2×2 → conv5×5×64 → maxpool 2×2 →
FC1024 → FC10 (preset ``mnist_cabs``: SAME padding, ReLU), softmax
cross-entropy, no L2 term, no step decay, pixels standardized as in
``balles_cabs``. Methods: SGD + CABS (Alg. 1, m ∈ [16, 2048], μ = 0.95),
SGD + the competitor rule (θ_c = 1), and SGD with constant m = 32, 128, 512,
all at α = 0.1 (the thesis tunes α ∈ {0.3, 0.1, 0.06, 0.03, 0.01, 0.006}
per method; ``--set`` it, and the CABS hook's ``learning_rate`` with it).
Budget: 10 epochs (600 000 examples, the MNIST budget of
``balles_cabs``); the x-axis is examples seen (``examples_seen``).

    nnopt run configs/cabs_fmnist.py --variant cabs
    nnopt run configs/cabs_fmnist.py --quick      # digits, seconds per variant
"""

from nnopt.config import base_config
from nnopt.data import default_buckets
from nnopt.models.deepobs import PRESETS

M_MIN, M_MAX = 16, 2048
BUCKETS = list(default_buckets(M_MAX, min_batch=M_MIN, multiple_of=8))
LEARNING_RATE = 0.1
EPOCHS = 10
METHODS = ("cabs", "competitor", "m32", "m128", "m512")


def method_variant(method: str, learning_rate: float = LEARNING_RATE):
  """Optimizer, hooks and batch size of one method (as ``balles_cabs``)."""
  if method in ("cabs", "competitor"):
    hook = (dict(name="cabs", options=dict(
        learning_rate=learning_rate, m_min=M_MIN, m_max=M_MAX))
            if method == "cabs" else dict(name="competitor", options=dict(
                theta=1.0, m_min=M_MIN, m_max=M_MAX)))
    return dict(optimizer=dict(name="cabs_sgd", learning_rate=learning_rate),
                hooks=[hook], train=dict(batch_size=M_MIN, buckets=BUCKETS))
  return dict(optimizer=dict(name="sgd", learning_rate=learning_rate),
              train=dict(batch_size=int(method[1:])))


def get_config():
  config = base_config()
  config.description = ("CABS vs competitor vs constant m on Fashion-MNIST "
                        "(Fig 4.2 MNIST-column setting)")
  config.dataset.name = "fashion_mnist"
  config.dataset.options = dict(normalize=True)
  name, options = PRESETS["mnist_cabs"]
  config.model.name = name
  config.model.options = dict(options)
  config.loss = "softmax_cross_entropy"
  config.train.num_epochs = EPOCHS
  config.train.eval_every = 500
  config.train.log_every = 10
  config.variants = {m: method_variant(m) for m in METHODS}
  config.variant_order = list(METHODS)
  config.quick = dict(
      dataset=dict(name="digits", options={}),
      model=dict(name="conv_pool_net", options=dict(
          convs=((8, 3, "SAME"), (16, 3, "SAME")), pool=(2, 2), fc=(32,),
          n_classes=10)),
      train=dict(num_epochs=None, num_steps=60, eval_every=30))
  return config
