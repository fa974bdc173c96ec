"""Balles Tier B smoke (``quick``): the CABS and P1–P4 configs' quick
sections on scikit-learn digits and an embedded text, one seed each, as smoke
records of :mod:`experiments.reproduce_balles_tier_b`. Fig 4.3's α values
train as one runs-axis program per method.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from experiments.balles_tier_b_quotes import QUOTE_43, QUOTE_B3  # pylint: disable=wrong-import-position
from experiments.balles_tier_b_runs import (  # pylint: disable=wrong-import-position
    fit, fit_group, load_config, lr_overrides)
from nnopt import config as C  # pylint: disable=wrong-import-position
from nnopt.reproduce import Claims  # pylint: disable=wrong-import-position


def quick_cabs(claims: Claims, out: Path) -> None:
  config = load_config("balles_cabs")
  trainer = fit(config, "mnist_cabs", True, ["train.log_every=1"])
  sizes = [h["cabs_batch_size"] for h in trainer.history]
  claims.check("Fig 4.2", "digits: CABS runs from a config and compiles at "
               "most once per batch-size bucket",
               trainer.num_compilations <= len(C.resolve(config, "mnist_cabs")
                                               ["train"]["buckets"]),
               compilations=trainer.num_compilations, sizes_first_last=(
                   sizes[0], sizes[-1]), examples_seen=trainer.history[-1][
                       "examples_seen"])
  spreads, curves = {}, {}
  for method in ("cabs", "m128"):
    lrs = (0.1, 0.03, 0.01)  # one runs-axis program per method
    runs = fit_group(config, f"mnist_{method}", True, {
        f"a{lr:g}": ["train.log_every=1", *lr_overrides(method, lr)]
        for lr in lrs})
    finals = []
    for lr in lrs:
      history = runs[f"a{lr:g}"]
      curves[(method, lr)] = [(h["examples_seen"], h["train_loss"])
                              for h in history]
      finals.append(history[-1]["train_loss"])
    spreads[method] = float(np.log(max(finals) / min(finals)))
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for (method, lr), c in curves.items():
    c = np.array(c)
    ax.plot(c[:, 0], c[:, 1], label=f"{method} α={lr}",
            ls="-" if method == "cabs" else "--")
  ax.set_xlabel("examples seen")
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out / "fig4_3_quick.png", dpi=80)
  plt.close(fig)
  claims.info("Fig 4.3", "digits, one seed: log(max/min) of the final train "
              "losses over α ∈ {0.1, 0.03, 0.01} for CABS and m = 128",
              spreads, quote=QUOTE_43)


def quick_p(claims: Claims, out: Path) -> None:
  runs = {}
  for name, variants in (("balles_p1_fmnist", ("msgd", "adam", "msign_sgd",
                                               "msvag", "msvag_mb")),
                         ("balles_p2_cifar10", ("svag", "adam_star")),
                         ("balles_p3_cifar100", ("msvag", "adam_star")),
                         ("balles_p4_tolstoi", ("msgd", "adam", "msign_sgd",
                                                "msvag"))):
    config = load_config(name)
    for v in variants:
      t = fit(config, v, True, ["train.log_every=1"])
      runs[f"{name}/{v}"] = [h["train_loss"] for h in t.history]
  fig, ax = plt.subplots(figsize=(6, 4))
  for k, v in runs.items():
    ax.plot(np.convolve(v, np.ones(10) / 10, mode="valid"), label=k)
  ax.set_yscale("log")
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out / "fig5_4_quick.png", dpi=80)
  plt.close(fig)
  tail = {k: float(np.mean(v[-20:])) for k, v in runs.items()}
  head = {k: float(np.mean(v[:5])) for k, v in runs.items()}
  claims.check("Fig 5.4", "every method of P1–P4 (M-SGD, ADAM, M-SSD, "
               "M-SVAG, SVAG, ADAM*, M-SVAG-mb; P4 a small char-LSTM with "
               "dropout on embedded text) lowers the training loss from its "
               "configs' quick sections", all(tail[k] < head[k] for k in tail),
               first=head, last=tail)
  a, b = tail["balles_p1_fmnist/msvag"], tail["balles_p1_fmnist/msvag_mb"]
  claims.info("Fig B.3", "digits, one seed: final train loss of M-SVAG (EMA) "
              "and M-SVAG-mb", {"msvag": a, "msvag_mb": b}, quote=QUOTE_B3)
