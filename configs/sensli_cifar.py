"""SensLI on CIFAR-10 with the VGG of Kreis (2.11) (spec-sensli §4.1, Exp1/5/9/12/14).

Needs CIFAR-10 in a local TFDS data directory and an accelerator (100–200
epochs of a 2.7 M-parameter CNN per variant). Variants:

* ``exp5_li`` / ``exp5_cnn1`` / ``exp5_cnn2`` — Fig 4.5d, 4.6b, B.1: insert after
  50 of 100 epochs at the largest operator-norm merit (B.1c), sensitivities
  over one lr-0 epoch of augmented mini-batches; CNN2 = a 64→64 conv at
  position 0 from the start.
* ``exp1_threshold`` / ``exp1_extended`` — Fig 4.8: attempts after 50, 100, 150
  of 200 epochs with the threshold τ = 1 (reference variant: ``>``, the
  denominator over all conv kernels of the fully extended network), and the
  reference's ReduceLROnPlateau (test accuracy, ×0.5, patience 10; see
  ``PLATEAU``).
* ``exp9_max`` / ``exp9_min`` — Fig 4.9d: VGG m = [200, 200, 200], argmax vs argmin.
* ``exp14_max`` / ``exp14_min`` / ``exp14_random`` — Figs 4.10b, 4.11b: three
  insertions every 50 epochs (settings not in the thesis, spec P3).
* ``exp12_t10`` … ``exp12_t80``, ``exp12_cnn1`` — Fig 4.12c: one insertion at
  epoch 10, 20, …, 80 of 200.

Optimizer: plain SGD at lr 0.01 as the reference code actually runs (spec P2);
``--set optimizer.options.momentum=0.9`` gives the thesis's "SGD with
momentum". ``--quick`` runs a tiny VGG on scikit-learn's 8×8 digits.

    nnopt run configs/sensli_cifar.py --variant exp5_li --data_dir ~/tensorflow_datasets
    nnopt run configs/sensli_cifar.py --quick
"""

from nnopt.config import base_config

STEPS_PER_EPOCH = 390  # 50 000 // 128
#: Exp1's ReduceLROnPlateau (spec-sensli P2/P16): PyTorch's rule on the test
#: accuracy, factor 0.5, patience 10, counter reset after an insertion
#: (:class:`nnopt.growth.ReduceLROnPlateau`, the config hook
#: ``reduce_on_plateau``).
PLATEAU = dict(name="reduce_on_plateau", options=dict(factor=0.5, patience=10))


def _sensli(at, **options):
  return [dict(name="sensli", options=dict(
      at_epochs=list(at), norm="op", mode="epoch", batch_size=128, **options))]


def _plateau():
  return [PLATEAU]


def get_config():
  config = base_config()
  config.description = "SensLI on CIFAR-10, VGG [64,128,256] + FC 500-500-10"
  config.dataset.name = "cifar10"
  config.dataset.options = dict(normalize=True)
  config.dataset.augment = "crop_flip"
  config.dataset.augment_options = dict(padding=4, flip=True)
  config.model.name = "vgg"
  config.model.options = dict(stages=((64,), (128,), (256,)), fc=(500, 500),
                              n_classes=10, init_scheme="pytorch")
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.01
  config.train.batch_size = 128
  config.train.num_epochs = 100
  config.train.eval_every = STEPS_PER_EPOCH
  config.train.log_every = 50
  vgg2 = dict(stages=((64, 64), (128,), (256,)), fc=(500, 500), n_classes=10,
              init_scheme="pytorch")
  vgg200 = dict(stages=((200,), (200,), (200,)), fc=(500, 500), n_classes=10,
                init_scheme="pytorch")
  variants = dict(
      exp5_li=dict(hooks=_sensli([50])),
      exp5_cnn1=dict(),
      exp5_cnn2=dict(model=dict(name="vgg", options=vgg2)),
      exp1_threshold=dict(train=dict(num_epochs=200), hooks=_sensli(
          [50, 100, 150], threshold=1.0, strict=True, denominator="extended")
          + _plateau()),
      exp1_extended=dict(train=dict(num_epochs=200), hooks=_plateau(), model=dict(
          name="vgg", options=dict(vgg2, stages=((64, 64, 64), (128,), (256,))))),
      exp9_max=dict(model=dict(name="vgg", options=vgg200), hooks=_sensli([50])),
      exp9_min=dict(model=dict(name="vgg", options=vgg200),
                    hooks=_sensli([50], rule="min")),
      exp12_cnn1=dict(train=dict(num_epochs=200)),
  )
  for rule in ("max", "min", "random"):
    variants[f"exp14_{rule}"] = dict(train=dict(num_epochs=200),
                                     hooks=_sensli([50, 100, 150], rule=rule))
  for t in range(10, 81, 10):
    variants[f"exp12_t{t}"] = dict(train=dict(num_epochs=200), hooks=_sensli([t]))
  config.variants = variants
  config.variant_order = list(variants)
  config.quick = dict(
      dataset=dict(name="digits", options={}, augment=None, augment_options={}),
      model=dict(options=dict(stages=((8,), (8,), (8,)), fc=(32,),
                              n_classes=10, init_scheme="pytorch")),
      optimizer=dict(learning_rate=0.05),
      train=dict(num_epochs=4, batch_size=64, eval_every=22, log_every=5),
  )
  return config
