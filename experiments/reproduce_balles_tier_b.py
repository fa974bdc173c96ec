"""Balles Tier B: Fig 4.2 / 4.3 (CABS, B1/B2), Fig 5.4 (P1–P4, B3), Fig B.2
(SVAG, ADAM*, B4), Fig B.3 (M-SVAG-mb, B5), from the configs
``configs/balles_*.py``.

Full size needs MNIST, SVHN, CIFAR-10/100, Fashion-MNIST (TFDS data_dir) and
War and Peace, 10 seeds per method and 6k–200k steps per run: hours to days
on an accelerator. Without the data (or with ``quick``) the full-size claims
are NOT RUN with the reason; ``quick`` trains every method of each config on
scikit-learn's digits (the configs' ``quick`` sections) and checks what the
stand-in can show.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from nnopt import config as C  # pylint: disable=wrong-import-position
from nnopt.data import DatasetError  # pylint: disable=wrong-import-position
from nnopt.reproduce import Claims, Reproduction  # pylint: disable=wrong-import-position

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FULL_REASON = ("full size needs {data} from a local TFDS data_dir and an "
               "accelerator ({cost}); {why}")


def _config(name):
  return C.load_config_file(CONFIGS / f"{name}.py")[1]


def _fit(config, variant, quick, overrides=()):
  overrides = ["train.log_every=1", *overrides]  # one record per step
  exp = C.build(C.resolve(config, variant, quick=quick, overrides=overrides))
  trainer = exp.trainer(progress=False)
  trainer.fit()
  return trainer


def _data_missing(config, variant) -> str | None:
  try:
    C.load_dataset(C.resolve(config, variant))
  except DatasetError as e:
    return str(e).splitlines()[0]
  return None


def _full(claims, item, claim, config, variant, data, cost):
  missing = _data_missing(config, variant)
  why = (f"data absent here: {missing}" if missing else
         "data present, but this CPU-only machine cannot run it in time")
  claims.not_run(item, claim, FULL_REASON.format(data=data, cost=cost, why=why))


def b1_b2(claims: Claims, out: Path, quick: bool) -> None:
  config = _config("balles_cabs")
  for problem in ("mnist", "svhn", "cifar10", "cifar100"):
    _full(claims, "Fig 4.2", f"{problem}: CABS vs competitor vs m=32/128/512 "
          "(CABS best on SVHN/C10/C100, +0.4 pp C10, +1.4 pp C100; loses on "
          "MNIST; batch size grows)", config, f"{problem}_cabs", problem,
          "6 α × 5 methods × tens of epochs")
  _full(claims, "Fig 4.3", "CABS curves over α ∈ {.1,.06,.03,.01,.006} "
        "cluster more tightly than competitor and constant m", config,
        "cifar10_cabs", "cifar10", "15 runs")
  if not quick:
    return
  trainer = _fit(config, "mnist_cabs", True)
  sizes = [h["cabs_batch_size"] for h in trainer.history]
  claims.check("Fig 4.2 (quick, digits stand-in)", "CABS runs from a config "
               "and compiles at most once per batch-size bucket",
               trainer.num_compilations <= len(C.resolve(config, "mnist_cabs")
                                               ["train"]["buckets"]),
               compilations=trainer.num_compilations, sizes_first_last=(
                   sizes[0], sizes[-1]), examples_seen=trainer.history[-1][
                       "examples_seen"])
  spreads, curves = {}, {}
  for method in ("cabs", "m128"):
    finals = []
    for lr in (0.1, 0.03, 0.01):
      over = [f"optimizer.learning_rate={lr}"]
      if method == "cabs":
        over.append("hooks=" + repr([dict(name="cabs", options=dict(
            learning_rate=lr, m_min=16, m_max=2048))]))
      t = _fit(config, f"mnist_{method}", True, over)
      curves[(method, lr)] = [(h["examples_seen"], h["train_loss"])
                              for h in t.history]
      finals.append(t.history[-1]["train_loss"])
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
  claims.check("Fig 4.3 (quick, digits stand-in)", "final train losses over "
               "α ∈ {0.1, 0.03, 0.01} spread less for CABS than for m = 128 "
               "(log max/min)", spreads["cabs"] < spreads["m128"], **spreads)


def _quick_runs(name, variants):
  config = _config(name)
  out = {}
  for v in variants:
    t = _fit(config, v, True)
    out[v] = [h["train_loss"] for h in t.history]
  return out


def b3_b5(claims: Claims, out: Path, quick: bool) -> None:
  problems = {
      "balles_p1_fmnist": ("P1", "fashion_mnist", "6 000 steps × 4 methods × 10 seeds"),
      "balles_p2_cifar10": ("P2", "cifar10", "40 000 steps × 4 methods × 10 seeds"),
      "balles_p3_cifar100": ("P3", "cifar100", "80 000 steps of a WRN-40-4 × 4 × 10"),
      "balles_p4_tolstoi": ("P4", "War and Peace", "200 000 LSTM steps × 4 × 10"),
  }
  for name, (p, data, cost) in problems.items():
    config = _config(name)
    _full(claims, "Fig 5.4", f"{p}: the four observations of §4.8 (sign "
          "dominates; problem-dependent; variance adaptation helps; "
          "generalization from the sign)", config, "msgd", data, cost)
  _full(claims, "Fig B.2", "SVAG > M-SVAG on P2; ADAM* ≥ ADAM at the end of "
        "P2; on par on P3", _config("balles_p2_cifar10"), "svag", "cifar10",
        "P2 and P3 runs")
  _full(claims, "Fig B.3", "EMA and mini-batch M-SVAG are almost identical on "
        "P1 and P2", _config("balles_p1_fmnist"), "msvag_mb", "fashion_mnist",
        "P1 and P2 runs")
  if not quick:
    return
  runs = {}
  for name, variants in (("balles_p1_fmnist", ("msgd", "adam", "msign_sgd",
                                               "msvag", "msvag_mb")),
                         ("balles_p2_cifar10", ("svag", "adam_star")),
                         ("balles_p3_cifar100", ("msvag", "adam_star")),
                         ("balles_p4_tolstoi", ("msgd", "adam", "msign_sgd",
                                                "msvag"))):
    for v, losses in _quick_runs(name, variants).items():
      runs[f"{name}/{v}"] = losses
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
  claims.check("Fig 5.4 (quick, digits and embedded-text stand-ins)",
               "every method of P1–P4 (M-SGD, ADAM, M-SSD, M-SVAG, SVAG, "
               "ADAM*, M-SVAG-mb; P4 a small char-LSTM with dropout) lowers "
               "the training loss from its configs", all(tail[k] < head[k] for k in
                                                     tail), first=head, last=tail)
  a, b = tail["balles_p1_fmnist/msvag"], tail["balles_p1_fmnist/msvag_mb"]
  assert len(runs["balles_p1_fmnist/msvag"]) > 25, "need per-step records"
  claims.check("Fig B.3 (quick, digits stand-in)", "M-SVAG with EMA and with "
               "mini-batch variance estimates end within 20% of each other",
               abs(a - b) < 0.2 * max(a, b), msvag=a, msvag_mb=b)


def run(out_dir: Path, quick: bool) -> Claims:
  out = Path(out_dir)
  claims = Claims("balles")
  b1_b2(claims, out, quick)
  b3_b5(claims, out, quick)
  return claims


REPRODUCTION = Reproduction(
    id="balles_tier_b", thesis="balles",
    items=("Fig 4.2", "Fig 4.3", "Fig 5.4", "Fig B.2", "Fig B.3"), run=run,
    title="Balles Tier B: CABS and P1–P4 experiments (configs)",
    cost="days on an accelerator (quick: 5 min CPU)",
    smoke=("scikit-learn digits 8×8 with the configs' quick sections (small "
           "nets, 150 steps)"))
