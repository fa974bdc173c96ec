"""Balles P4: War and Peace character LSTM (Fig 5.4) — model and schedule.

2-layer LSTM, 128 units, 128-d embedding, vocabulary 83 (DeepOBS
``tolstoi_char_rnn``), batch 50 sequences × 50 characters, 200 000 steps,
α × 0.1 after 125k steps. Winning α unknown (spec pitfall 16).

NOT RUNNABLE with the current engine: War and Peace is not a registered
dataset and the engine's losses and accuracy are per example, not per
character. The config documents the problem; ``experiments/
reproduce_balles_tier_b.py`` reports P4 as NOT RUN with this reason. The
``tolstoi`` dataset (registered by nnopt.transforms.noise_aware_registry)
reads DATA_DIR/tolstoi/war_and_peace.txt. There is no embedded text corpus:
the quick variant only smoke-tests the optimizers on digits with a small CNN.
"""

from nnopt.config import base_config
from nnopt.transforms.noise_aware_registry import register

register()

ALPHAS = {"msgd": 1.0, "adam": 1e-3, "msign_sgd": 3e-4, "msvag": 3.0}


def get_config():
  config = base_config()
  config.description = "P4 War and Peace char-LSTM (needs a text loader)"
  config.dataset.name = "tolstoi"
  config.model.name = "char_lstm"
  config.model.options = dict(vocab=83, embed=128, hidden=(128, 128))
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 50
  config.train.num_steps = 200000
  config.train.num_epochs = None
  config.variants = {m: dict(optimizer=dict(name=m, learning_rate=dict(
      schedule="piecewise_constant_schedule", init_value=a,
      boundaries_and_scales={"125000": 0.1}))) for m, a in ALPHAS.items()}
  config.variant_order = list(ALPHAS)
  config.quick = dict(dataset=dict(name="digits", options={}),
                      model=dict(name="conv_pool_net", options=dict(
                          convs=((8, 3, "SAME"),), pool=(2, 2), fc=(16,),
                          n_classes=10)),
                      train=dict(num_steps=20))
  return config
