"""Balles Tier B: Fig 4.2 / 4.3 (CABS, B1/B2), Fig 5.4 (P2–P4, B3), Fig B.2
(SVAG, ADAM*, B4), Fig B.3 (M-SVAG-mb on P2, B5), from the configs
``configs/balles_*.py``. Fig 5.4's and Fig B.3's P1 panels are the
reproduction ``balles_p1_fmnist``.

Full size runs at the thesis's settings whenever a problem's data are found
(MNIST, SVHN, CIFAR-10/100 by :mod:`nnopt.data`'s lookup: ``data_dir``,
``$NNOPT_DATA_DIR``, ``$TFDS_DATA_DIR``, ``~/tensorflow_datasets``; War and
Peace as ``DATA_DIR/tolstoi/war_and_peace.txt``): it trains the runs missing
under ``experiments/results/balles_tier_b/runs/`` (``NNOPT_TIER_B_RUNS``
overrides; one ``<config>/<variant>_a<α>_s<seed>/metrics.jsonl`` per run, so
an interrupted reproduction resumes; a method's missing seeds and α values
train as one program on the engine's runs axis, each run checkpointed under
``<config>/partial/``) with the engine's progress bar, then
decides every claim from the runs with an interval over seeds
(:meth:`Claims.compare`, paired by seed: one seed gives the methods the same
initialization and data order). A problem whose data are absent makes its
claims NOT RUN, naming the data and every place searched.

Settings: Fig 5.4/B.2/B.3 replicate each method at its winning α ten times
("Experiments with the best step size have been replicated ten times with
different random seeds."); P3's and P4's winning α are unpublished, so their
configs' mid-grid defaults are used. Fig 4.2 tunes α ∈ {0.3, 0.1, 0.06, 0.03,
0.01, 0.006} per method on seed 0 (best final test accuracy) and replicates
the winner on seeds 0–2; Fig 4.3 runs α ∈ {0.1, 0.06, 0.03, 0.01, 0.006} for
CABS, the competitor and m = 128 on CIFAR-10 (the thesis names neither the
problem nor the constant m) on seeds 0–2.

The runs are :mod:`experiments.balles_tier_b_runs`, the smoke records
:mod:`experiments.balles_tier_b_quick`, the quoted sentences
:mod:`experiments.balles_tier_b_quotes`.

``quick`` trains every method of each config on scikit-learn's digits (the
configs' ``quick`` sections) and writes only smoke records.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from experiments.balles_tier_b_quick import quick_cabs, quick_p
from experiments.balles_tier_b_quotes import (
    QUOTE_42, QUOTE_42_MNIST, QUOTE_43,
    QUOTE_SIGN, QUOTE_P2, QUOTE_P4,
    QUOTE_VA, QUOTE_B2_P2, QUOTE_B2_P3,
    QUOTE_B2_ADAM, QUOTE_B2_ADAM_P2, QUOTE_B3)
from experiments.balles_tier_b_runs import (
    ROOT, data_missing, ensure_run, ensure_runs, final, load_config)
from nnopt.reproduce import Claims, Reproduction

RUNS = Path(os.environ.get("NNOPT_TIER_B_RUNS",
                           ROOT / "experiments" / "results" / "balles_tier_b"
                           / "runs"))
SEEDS = tuple(range(10))
CABS_SEEDS = (0, 1, 2)
ALPHAS_42 = (0.3, 0.1, 0.06, 0.03, 0.01, 0.006)
ALPHAS_43 = (0.1, 0.06, 0.03, 0.01, 0.006)
CABS_METHODS = ("cabs", "competitor", "m32", "m128", "m512")
#: Final values: the mean over the last 5 % of the steps' logged records.
LABELS = {"msgd": "M-SGD", "adam": "ADAM", "msign_sgd": "M-SSD",
          "msvag": "M-SVAG", "svag": "SVAG", "adam_star": "ADAM*",
          "msvag_mb": "M-SVAG-mb", "cabs": "CABS", "competitor": "Competitor",
          "m32": "m=32", "m128": "m=128", "m512": "m=512"}
#: "≈" and "at least as good as" margins, as in ``balles_p1_fmnist``: final
#: train losses within 10 % (log 1.1), test accuracies within 0.5 pp.
LOSS_MARGIN, ACC_MARGIN = math.log(1.10), 0.005


# -- full size: claims ---------------------------------------------------------


class Problem:
  """One thesis problem: its config, data and the methods' final values."""

  def __init__(self, name: str, config_name: str, variant: str, data: str):
    self.name, self.config_name, self.data = name, config_name, data
    self.missing = data_missing(load_config(config_name), variant)

  def reason(self) -> str:
    return (f"{self.data} not found: {self.missing}")


def _compare(claims, item, text, values, a, b, relation, *, quote,
             margin=0.0, is_loss=True):
  quantity = ("log final train loss (mean of the last 5 % of the steps' "
              "logged loss)" if is_loss else "final test accuracy (mean of "
              "the evaluations in the last 5 % of the steps)")
  claims.compare(item, text, values[a], values[b], relation=relation,
                 margin=margin, names=(LABELS.get(a, a), LABELS.get(b, b)),
                 quantity=quantity, quote=quote)


def _method_values(runs_dir, problem: Problem, methods, seeds, quick=False):
  """Final train loss (log) and test accuracy per method and seed; a
  method's missing seeds train as one runs-axis program."""
  loss, acc = {}, {}
  for m in methods:
    recs = ensure_runs(runs_dir, problem.config_name, m, (None,), seeds,
                       quick=quick)
    loss[m] = {s: math.log(final(recs[(None, s)], "train_loss"))
               for s in seeds}
    acc[m] = {s: final(recs[(None, s)], "test_accuracy") for s in seeds}
  return loss, acc


FIG54 = {  # problem: (config, data, statement kind)
    "P2": ("balles_p2_cifar10", "CIFAR-10 (TFDS cifar10)", "non_sign"),
    "P3": ("balles_p3_cifar100", "CIFAR-100 (TFDS cifar100)", "sign"),
    "P4": ("balles_p4_tolstoi", "War and Peace (tolstoi/war_and_peace.txt)",
           "non_sign"),
}
FIG54_TEXT = {
    "P2": ("train loss: M-SGD and M-SVAG undercut ADAM and M-SSD by the end",
           QUOTE_P2),
    "P3": ("train loss: the sign-based ADAM and M-SSD end below M-SGD and "
           "M-SVAG", QUOTE_SIGN),
    "P4": ("train loss: the non-sign-based M-SGD and M-SVAG end below ADAM "
           "and M-SSD", QUOTE_P4),
}


def _not_run_all(claims, items_texts, reason):
  for item, text, quote in items_texts:
    claims.not_run(item, text, reason, quote=quote)


def fig5_4(claims: Claims, runs_dir: Path, seeds=SEEDS, quick=False,
           problems: dict | None = None) -> None:
  claims.info("Fig 5.4 (P1)", "P1 (Fashion-MNIST) is the reproduction "
              "balles_p1_fmnist (its verdicts are counted there)",
              {"see": "experiments/results/balles_p1_fmnist"})
  for p, (config_name, data, kind) in (problems or FIG54).items():
    problem = Problem(p, config_name, "msgd", data)
    sign, non = ("adam", "msign_sgd"), ("msgd", "msvag")
    what, quote = FIG54_TEXT[p]
    item = f"Fig 5.4 ({p})"
    pairs = [(s, n) if kind == "sign" else (n, s) for s in sign for n in non]
    texts = [(item, f"{p} {what}: {LABELS[a]} < {LABELS[b]} (final train "
              "loss, 10 seeds, paired)", quote) for a, b in pairs]
    texts += [(item, f"{p}: {LABELS[va]} at least as good as {LABELS[base]} "
               f"({q}, within {'10 %' if q == 'train loss' else '0.5 pp'})",
               QUOTE_VA) for va, base in (("adam", "msign_sgd"),
                                          ("msvag", "msgd"))
              for q in ("train loss", "test accuracy")]
    if problem.missing:
      _not_run_all(claims, texts, problem.reason())
      continue
    loss, acc = _method_values(runs_dir, problem, sign + non, seeds, quick)
    for (a, b), (_, text, q) in zip(pairs, texts):
      _compare(claims, item, text, loss, a, b, "<", quote=q)
    rest = texts[len(pairs):]
    for i, (va, base) in enumerate((("adam", "msign_sgd"), ("msvag", "msgd"))):
      _compare(claims, item, rest[2 * i][1], loss, va, base, "≤",
               margin=LOSS_MARGIN, quote=QUOTE_VA)
      _compare(claims, item, rest[2 * i + 1][1], acc, va, base, "≥",
               margin=ACC_MARGIN, quote=QUOTE_VA, is_loss=False)


def fig_b2_b3(claims: Claims, runs_dir: Path, seeds=SEEDS, quick=False,
              problems: dict | None = None) -> None:
  problems = problems or {p: FIG54[p] for p in ("P2", "P3")}
  claims.info("Fig B.3 (P1)", "B.3's P1 panel is the reproduction "
              "balles_p1_fmnist (its verdicts are counted there)",
              {"see": "experiments/results/balles_p1_fmnist"})
  for p, (config_name, data, _) in problems.items():
    problem = Problem(p, config_name, "svag", data)
    if p == "P2":
      texts = [("Fig B.2 (P2)", "P2: SVAG ends below M-SVAG in train loss "
                "(10 seeds, paired)", QUOTE_B2_P2),
               ("Fig B.3 (P2)", "P2: M-SVAG ≈ M-SVAG-mb in final train loss "
                "(within 10 %)", QUOTE_B3),
               ("Fig B.3 (P2)", "P2: M-SVAG ≈ M-SVAG-mb in final test "
                "accuracy (within 0.5 pp)", QUOTE_B3),
               ("Fig B.2 (P2)", "P2: ADAM* reaches a lower minimal train loss "
                "than ADAM (10 seeds, paired)", QUOTE_B2_ADAM_P2)]
    else:
      texts = [("Fig B.2 (P3)", "P3: SVAG ends slightly worse than M-SVAG in "
                "train loss (10 seeds, paired)", QUOTE_B2_P3),
               ("Fig B.2 (P3)", "P3: SVAG ends slightly worse than M-SVAG in "
                "test accuracy (10 seeds, paired)", QUOTE_B2_P3),
               ("Fig B.2 (P3)", "P3: ADAM* ≈ ADAM in final train loss "
                "(within 10 %)", QUOTE_B2_ADAM)]
    if problem.missing:
      _not_run_all(claims, texts, problem.reason())
      continue
    methods = (("svag", "msvag", "msvag_mb", "adam", "adam_star") if p == "P2"
               else ("svag", "msvag", "adam", "adam_star"))
    loss, acc = _method_values(runs_dir, problem, methods, seeds, quick)
    min_loss = {m: {s: math.log(min(
        r["train_loss"] for r in ensure_run(runs_dir, config_name, m, None, s,
                                            quick=quick)
        if r.get("train_loss") is not None)) for s in seeds}
        for m in ("adam", "adam_star")}
    if p == "P2":
      _compare(claims, *texts[0][:2], loss, "svag", "msvag", "<",
               quote=texts[0][2])
      _compare(claims, *texts[1][:2], loss, "msvag", "msvag_mb", "≈",
               margin=LOSS_MARGIN, quote=QUOTE_B3)
      _compare(claims, *texts[2][:2], acc, "msvag", "msvag_mb", "≈",
               margin=ACC_MARGIN, quote=QUOTE_B3, is_loss=False)
      claims.compare(*texts[3][:2], min_loss["adam_star"], min_loss["adam"],
                     relation="<", names=("ADAM*", "ADAM"),
                     quantity="log minimal logged train loss",
                     quote=texts[3][2])
    else:
      _compare(claims, *texts[0][:2], loss, "svag", "msvag", ">",
               quote=texts[0][2])
      _compare(claims, *texts[1][:2], acc, "svag", "msvag", "<",
               quote=texts[1][2], is_loss=False)
      _compare(claims, *texts[2][:2], loss, "adam_star", "adam", "≈",
               margin=LOSS_MARGIN, quote=QUOTE_B2_ADAM)


# -- full size: CABS (Figs 4.2, 4.3) --------------------------------------------

CABS_PROBLEMS = {"mnist": "MNIST", "svhn": "SVHN (TFDS svhn_cropped)",
                 "cifar10": "CIFAR-10 (TFDS cifar10)",
                 "cifar100": "CIFAR-100 (TFDS cifar100)"}
THETAS = (0.6, 0.8, 1.0)


def _cabs_runs(runs_dir, problem, method, alphas, seeds, theta=None,
               quick=False):
  """{(α, seed): records} of one method (and θ): one runs-axis program."""
  extra = []
  name = f"{problem}_{method}"
  if method == "competitor":
    theta = 1.0 if theta is None else theta
    extra = ["hooks=" + repr([dict(name="competitor", options=dict(
        theta=theta, m_min=16, m_max=2048))])]
    name_dir = f"{name}_t{theta:g}"
  else:
    name_dir = name
  return ensure_runs(runs_dir, "balles_cabs", name, alphas, seeds,
                     quick=quick, extra=extra, dir_name=name_dir)


def _tuned(runs_dir, problem, method, alphas, quick=False):
  """(α, θ) with the best final test accuracy on seed 0 (the thesis: "tuned
  for maximum test accuracy given the fixed budget")."""
  thetas = THETAS if method == "competitor" else (None,)
  recs = {t: _cabs_runs(runs_dir, problem, method, alphas, (0,), t, quick)
          for t in thetas}
  acc = {(a, t): final(recs[t][(a, 0)], "test_accuracy") for a in alphas
         for t in thetas}
  return max(acc, key=acc.get), acc


def fig4_2(claims: Claims, runs_dir: Path, seeds=CABS_SEEDS, quick=False,
           problems: Iterable[str] = tuple(CABS_PROBLEMS),
           alphas=ALPHAS_42) -> None:
  config = load_config("balles_cabs")
  for problem in problems:
    item = "Fig 4.2"
    others = [m for m in CABS_METHODS if m != "cabs"]
    if problem == "mnist":
      texts = [(f"mnist: {LABELS[m]} beats CABS in final test accuracy (each "
                f"method at its tuned α; seeds {list(seeds)}, paired)",
                QUOTE_42_MNIST, m) for m in ("m32", "competitor")]
    else:
      texts = [(f"{problem}: CABS beats {LABELS[m]} in final {q} (each method "
                f"at its tuned α; seeds {list(seeds)}, paired)", QUOTE_42, m)
               for m in others for q in ("train loss", "test accuracy")]
    missing = data_missing(config, f"{problem}_cabs")
    if missing:
      reason = f"{CABS_PROBLEMS[problem]} not found: {missing}"
      for text, quote, _ in texts:
        claims.not_run(item, text, reason, quote=quote)
      continue
    tuned = {m: _tuned(runs_dir, problem, m, alphas, quick)
             for m in CABS_METHODS}
    loss, acc = {}, {}
    for m in CABS_METHODS:
      (alpha, theta), _ = tuned[m]
      recs = _cabs_runs(runs_dir, problem, m, (alpha,), seeds, theta, quick)
      recs = {s: recs[(alpha, s)] for s in seeds}
      loss[m] = {s: math.log(final(r, "train_loss")) for s, r in recs.items()}
      acc[m] = {s: final(r, "test_accuracy") for s, r in recs.items()}
    claims.info(item, f"{problem}: tuned (α, θ) per method (seed 0, best final "
                "test accuracy)", {LABELS[m]: {"alpha": t[0][0], "theta":
                                               t[0][1], "grid": {str(k): v for
                                                                 k, v in
                                                                 t[1].items()}}
                                   for m, t in tuned.items()})
    for text, quote, m in texts:
      if problem == "mnist":
        _compare(claims, item, text, acc, m, "cabs", ">", quote=quote,
                 is_loss=False)
      elif "train loss" in text:
        _compare(claims, item, text, loss, "cabs", m, "<", quote=quote)
      else:
        _compare(claims, item, text, acc, "cabs", m, ">", quote=quote,
                 is_loss=False)


def fig4_3(claims: Claims, runs_dir: Path, seeds=CABS_SEEDS, quick=False,
           problem: str = "cifar10", alphas=ALPHAS_43) -> None:
  item = "Fig 4.3"
  texts = [(f"{problem}: the final train losses over α ∈ {set(alphas)} spread "
            f"less for CABS than for {LABELS[m]} (log max/min per seed; seeds "
            f"{list(seeds)}, paired)", m) for m in ("competitor", "m128")]
  missing = data_missing(load_config("balles_cabs"), f"{problem}_cabs")
  if missing:
    for text, _ in texts:
      claims.not_run(item, text, f"{CABS_PROBLEMS[problem]} not found: "
                     f"{missing}", quote=QUOTE_43)
    return
  spread = {}
  for m in ("cabs", "competitor", "m128"):
    spread[m] = {}
    recs = _cabs_runs(runs_dir, problem, m, alphas, seeds, quick=quick)
    for s in seeds:
      finals = [final(recs[(a, s)], "train_loss") for a in alphas]
      spread[m][s] = float(np.log(max(finals) / min(finals)))
  for text, m in texts:
    claims.compare(item, text, spread["cabs"], spread[m], relation="<",
                   names=("CABS", LABELS[m]), quote=QUOTE_43,
                   quantity="log(max/min) of the final train losses over α")


# -- quick (smoke on digits) ----------------------------------------------------



STAND_IN = ("scikit-learn digits 8×8 and an embedded text with the configs' "
            "quick sections (small nets, 30–150 steps, one seed)")


def run(out_dir: Path, quick: bool) -> Claims:
  out = Path(out_dir)
  if quick:
    claims = Claims("balles", scope="smoke", stand_in=STAND_IN,
                    dataset="digits")
    quick_cabs(claims, out)
    quick_p(claims, out)
    return claims
  claims = Claims("balles")
  fig4_2(claims, RUNS)
  fig4_3(claims, RUNS)
  fig5_4(claims, RUNS)
  fig_b2_b3(claims, RUNS)
  return claims


REPRODUCTION = Reproduction(
    id="balles_tier_b", thesis="balles",
    items=("Fig 4.2", "Fig 4.3", "Fig 5.4", "Fig B.2", "Fig B.3"), run=run,
    title="Balles Tier B: CABS and P2–P4 experiments at the thesis's settings "
    "(configs); runs trained when their data are present",
    cost="about 1 s when the data are absent (NOT RUN, 0.9 s measured); "
    "with the data, days on a CPU, hours to days on an accelerator: Fig "
    "5.4/B.2/B.3 are 10 seeds × 4–7 methods × 40k–200k steps per problem, "
    "Fig 4.2 is 6 α (× 3 θ) × 5 methods tuned, then 3 seeds (quick: about 5 "
    "min CPU)",
    smoke=STAND_IN)
