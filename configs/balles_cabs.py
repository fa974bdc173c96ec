"""CABS vs the competitor and constant batch sizes (Balles Fig 4.2, 4.3).

Four problems of Balles App. A.2 (ReLU, softmax, cross-entropy; nnopt model
presets ``*_cabs`` of :mod:`nnopt.models.deepobs`): MNIST, SVHN, CIFAR-10 and
CIFAR-100. Methods (variants ``<problem>_<method>``): SGD + CABS (Alg. 1,
m ∈ [16, 2048], μ = 0.95), SGD + competitor rule (θ_c = 1; the thesis tunes
θ_c ∈ {0.6, 0.8, 1.0}), and SGD with constant m = 32, 128, 512. No step
decay; the x-axis is examples seen. The thesis tunes α ∈ {0.3, 0.1, 0.06,
0.03, 0.01, 0.006} per method (``--set optimizer.learning_rate=...`` and, for
CABS, the hook's ``learning_rate`` as well); 0.1 is the default here.

Choices the thesis leaves open (spec §3.8): SAME padding, Glorot init,
example budgets (epochs below), no L2 term; CIFAR-10 is trained on 32×32 with
pad-4 random crops and flips (the engine's augmentation; the thesis crops to
24×24 and distorts colours).

    nnopt run configs/balles_cabs.py --variant mnist_cabs --data_dir ~/tensorflow_datasets
    nnopt run configs/balles_cabs.py --quick       # digits, seconds per variant
"""

from nnopt.config import base_config
from nnopt.data import default_buckets
from nnopt.models.deepobs import PRESETS


M_MIN, M_MAX = 16, 2048
BUCKETS = list(default_buckets(M_MAX, min_batch=M_MIN, multiple_of=8))
PROBLEMS = {
    # problem: (dataset, preset, epochs, augment)
    "mnist": ("mnist", "mnist_cabs", 10, None),
    "svhn": ("svhn_cropped", "svhn_cabs", 20, None),
    "cifar10": ("cifar10", "cifar10_cabs", 40, "crop_flip"),
    "cifar100": ("cifar100", "cifar100_cabs", 40, "crop_flip"),
}
LEARNING_RATE = 0.1


def method_variant(method: str, learning_rate: float = LEARNING_RATE):
  """Optimizer, hooks and batch size of one method."""
  if method == "cabs":
    return dict(optimizer=dict(name="cabs_sgd", learning_rate=learning_rate),
                hooks=[dict(name="cabs", options=dict(
                    learning_rate=learning_rate, m_min=M_MIN, m_max=M_MAX))],
                train=dict(batch_size=M_MIN, buckets=BUCKETS))
  if method == "competitor":
    return dict(optimizer=dict(name="cabs_sgd", learning_rate=learning_rate),
                hooks=[dict(name="competitor", options=dict(
                    theta=1.0, m_min=M_MIN, m_max=M_MAX))],
                train=dict(batch_size=M_MIN, buckets=BUCKETS))
  m = int(method[1:])
  return dict(optimizer=dict(name="sgd", learning_rate=learning_rate),
              train=dict(batch_size=m))


METHODS = ("cabs", "competitor", "m32", "m128", "m512")


def get_config():
  config = base_config()
  config.description = "CABS vs competitor vs constant batch sizes (Fig 4.2)"
  config.loss = "softmax_cross_entropy"
  config.train.eval_every = 500
  config.train.log_every = 10
  variants, order = {}, []
  for problem, (dataset, preset, epochs, augment) in PROBLEMS.items():
    model_name, options = PRESETS[preset]
    for method in METHODS:
      v = method_variant(method)
      v["dataset"] = dict(name=dataset, options=dict(normalize=True),
                          augment=augment)
      v["model"] = dict(name=model_name, options=dict(options))
      v["train"] = dict(v["train"], num_epochs=epochs)
      name = f"{problem}_{method}"
      variants[name] = v
      order.append(name)
  config.variants = variants
  config.variant_order = order
  config.quick = dict(
      dataset=dict(name="digits", options={}, augment=None),
      model=dict(name="conv_pool_net", options=dict(
          convs=((8, 3, "SAME"), (16, 3, "SAME")), pool=(2, 2), fc=(32,),
          n_classes=10)),
      train=dict(num_epochs=None, num_steps=60, eval_every=30))
  return config
