"""Balles P4: War and Peace character LSTM (Fig 5.4).

2-layer LSTM, 128 units, 128-d embedding, vocabulary 83, dropout keep-prob
0.8 around every cell (DeepOBS ``tolstoi_char_rnn``); batch 50 sequences × 50
characters, 200 000 steps, α × 0.1 after 125k steps; loss and accuracy per
character. Winning α unknown (spec pitfall 16): the defaults sit mid-grid;
re-tune with ``--set variants.<m>.optimizer.learning_rate.init_value=...``.

War and Peace is read from DATA_DIR/tolstoi/war_and_peace.txt (the loader's
error says how to fetch it). Sequences are non-overlapping 50-character
windows of the first 80 % of the text, shuffled per epoch (DeepOBS feeds
contiguous streams without carrying the LSTM state across batches, so the
two see the same windows up to their offsets). If the file's alphabet is not
83 characters, set ``--set model.options.vocab=N``.

    nnopt run configs/balles_p4_tolstoi.py --data_dir ~/tensorflow_datasets
    nnopt run configs/balles_p4_tolstoi.py --quick     # embedded corpus
"""

from nnopt.config import base_config
from nnopt.models.deepobs import PRESETS

ALPHAS = {"msgd": 1.0, "adam": 1e-3, "msign_sgd": 3e-4, "msvag": 3.0}


def get_config():
  config = base_config()
  config.description = "P4 War and Peace char-LSTM: Fig 5.4"
  config.dataset.name = "tolstoi"
  config.dataset.options = dict(seq_len=50)
  name, options = PRESETS["p4_char_lstm"]
  config.model.name = name
  config.model.options = dict(options)
  config.loss = "softmax_cross_entropy"
  config.train.batch_size = 50
  config.train.num_steps = 200000
  config.train.num_epochs = None
  config.train.eval_every = 2000
  config.train.log_every = 100
  config.variants = {m: dict(optimizer=dict(name=m, learning_rate=dict(
      schedule="piecewise_constant_schedule", init_value=a,
      boundaries_and_scales={"125000": 0.1}))) for m, a in ALPHAS.items()}
  config.variant_order = list(ALPHAS)
  config.quick = dict(
      dataset=dict(name="embedded_text", options=dict(seq_len=20)),
      model=dict(name="char_lstm", options=dict(vocab=96, embed=16,
                                                hidden=(32, 32), dropout=0.2)),
      train=dict(num_steps=30, eval_every=15, log_every=5))
  return config
