"""SensLI on the spiral (Kreis §4.3.3): Figs 4.2, 4.3, 4.5a–c, 4.6a, 4.7, 4.9a–c,
4.10a, 4.11a, 4.12a–b, with the settings of spec-sensli §4.1.

Every curve averages the thesis's run count (Fig 4.5 caption: 30 FNN, 40
ResNet runs; Figs 4.7/4.9–4.11: 30). Run ``r`` uses seed ``r`` for its
initialization (PyTorch default) and batch order in every variant, so the
baseline X1 and SensLI share their start (the thesis's "restored seed") and
their comparisons are paired by seed; X2 (the final SensLI architecture
trained from scratch) draws its own initialization, so comparisons with it
are unpaired (Welch). All runs go through the engine's runs axis
(:func:`experiments.sensli_spiral_runs.train`: one
:class:`nnopt.engine.runs.RunsTrainer` per starting architecture, the
:class:`nnopt.growth.SensLI` hook per run; each run equals the same run
alone through the engine). The figures of single runs (Figs 4.2, 4.3, 4.6a,
4.12) are in :mod:`experiments.sensli_spiral_instances`.

Every comparison of methods is :meth:`Claims.compare`: the per-run final
training loss (full batch: the last step; mini-batch: the mean over the last
epoch's batches) and the per-run final test error (mean over the last 10
epochs), a 95 % t interval of the difference, PASS / FAIL / INCONCLUSIVE.
Statements the thesis makes of one run (Fig 4.6a's exemplary run, Fig 4.12's
single instance) are INFO records with the fraction of seeds where they hold
(Fig 4.12 runs 10 seeds).

**Reference statistic** (spec [R], issue 14): the authors' code stops a run
once its test error reaches 0 % and averages the surviving runs (nanmean).
Stopping a run does not change the others, so
:func:`nnopt.growth.surviving_mean` computes that statistic exactly from the
unstopped curves; for Exp2–Exp8 an INFO record gives both the plain mean and
the surviving mean at the end of training (and the figures draw the surviving
mean dashed). :class:`nnopt.growth.StopAtTestError` stops an engine run the
same way.

Assumptions (spec P3, P4, P6): the ResNets have the thesis form (2.10).
Exp3 and Exp7 use the reference code's candidate set, with the slot right
after the input layer (``resnet_positions='after_input_and_each_block'``);
Exp13 (Fig 4.7/4.10a/4.11a, not in the reference code) keeps one candidate
after each block, as the thesis's Table 4.2 FLOPs imply, and its settings are
derived: width 3, one block, mini-batch 45, lr 0.01, insertions after
100/200/300 of 500 epochs, ResNet2 = 4 blocks; "ResNet LI ×1" inserts once
(after 100 epochs) for the three-vs-one comparison.

``quick`` uses 3 runs and a tenth of the epochs: a smoke test, not a
reproduction (its records are smoke records).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from experiments import sensli_spiral_instances as instances
from experiments.sensli_spiral_runs import (B, CE, final_loss, fnn, resnet,
                                            steps_per_epoch, train)
from nnopt import growth
from nnopt.data import load_dataset
from nnopt.models import init_params
from nnopt.reproduce import Claims, Reproduction
from nnopt.reproduce.intervals import difference_interval

AFTER_INPUT = "after_input_and_each_block"
TAIL_EPOCHS = 10  # per-run final test error: mean over the last 10 epochs


# name: figure items, batch, lr, epochs, insertion epochs, runs, candidate
# convention, variants {label: (model, rule or None, lr_factor[, at])}
EXPERIMENTS = {
    "exp2": dict(items="Fig 4.5a", batch=None, lr=0.2, epochs=1850, at=[450], runs=30,
                 variants={"FNN LI": (fnn(5, 2), "max", 1.0),
                           "FNN1": (fnn(5, 2), None, 1.0),
                           "FNN2": (fnn(5, 5, 2), None, 1.0)}),
    "exp4": dict(items="Fig 4.5b", batch=B, lr=0.01, epochs=1850, at=[450], runs=40,
                 variants={"FNN LI": (fnn(5, 2), "max", 1.0),
                           "FNN1": (fnn(5, 2), None, 1.0),
                           "FNN2": (fnn(5, 5, 2), None, 1.0)}),
    "exp3": dict(items="Fig 4.5c", batch=None, lr=0.1, epochs=1850, at=[450], runs=40,
                 positions=AFTER_INPUT,
                 variants={"ResNet LI": (resnet(1), "max", 1.0),
                           "ResNet1": (resnet(1), None, 1.0),
                           "ResNet2": (resnet(2), None, 1.0)}),
    "exp13": dict(items="Fig 4.7, 4.10a, 4.11a", batch=B, lr=0.01, epochs=500,
                  at=[100, 200, 300], runs=30,
                  variants={"ResNet LI": (resnet(1), "max", 1.0),
                            "ResNet1": (resnet(1), None, 1.0),
                            "ResNet2": (resnet(4), None, 1.0),
                            "LI_other": (resnet(1), "min", 1.0),
                            "Random": (resnet(1), "random", 1.0),
                            "ResNet LI ×1": (resnet(1), "max", 1.0, [100])}),
    "exp6": dict(items="Fig 4.9a", batch=None, lr=0.2, epochs=1850, at=[450], runs=30,
                 variants={"SensLI": (fnn(4, 4, 2), "max", 1.0),
                           "LI_other": (fnn(4, 4, 2), "min", 1.0)}),
    "exp8": dict(items="Fig 4.9b", batch=B, lr=0.01, epochs=550, at=[250], runs=30,
                 variants={"SensLI": (fnn(10, 10, 2), "max", 2.0),
                           "LI_other": (fnn(10, 10, 2), "min", 2.0)}),
    "exp7": dict(items="Fig 4.9c", batch=None, lr=0.1, epochs=1850, at=[450], runs=30,
                 positions=AFTER_INPUT,
                 variants={"SensLI": (resnet(2), "max", 0.7),
                           "LI_other": (resnet(2), "min", 0.7)}),
}
Q = {
    "4.5": "Across all architectures, SensLI consistently results in a faster "
           "reduction of the loss w.r.t. iteration count compared to "
           "fixed-architecture training on the baseline network.",
    "4.5b": "The improvement is most notable for FNNs, particularly when using "
            "mini-batch SGD, where SensLI even surpasses the performance of "
            "training on the extended network FNN2.",
    "4.5err": "We show the loss (top) and test error (bottom) averaged over 30 "
              "(FNN), 40 (ResNet) and 10 (CNN) runs, respectively.",
    "4.7": "On average, SensLI achieves better performance than fixed-architecture "
           "training on the baseline ResNet1 and even surpasses the extended "
           "ResNet2 architecture.",
    "4.7multi": "When comparing the results in Figure 4.5 to those in Figure 4.7 "
                "and Figure 4.8, it becomes evident that the benefits of SensLI "
                "are even more pronounced when multiple layers are inserted "
                "during training.",
    "4.9": "we observe that inserting a layer at the position indicated by SensLI "
           "leads slightly to a faster reduction in training loss compared to "
           "inserting the layer at the position with the lowest sensitivity "
           "indicator (LIother) directly after the insertion and also in the "
           "long run.",
    "4.10": "We observe that SensLI is more effective than LIother to reduce the "
            "training loss, even in the presence of noise from mini-batch "
            "training.",
    "4.10err": "Considering multiple layer insertions in Figure 4.10 as a second "
               "step, the advantage of SensLI over LIother becomes more "
               "pronounced again, even when using mini-batch SGD.",
    "4.11": "In Figure 4.11, we observe that SensLI outperforms the random "
            "insertion strategy in both cases.",
}


def _final_error(res) -> np.ndarray:
  """Per-run final test error in %: mean over the last TAIL_EPOCHS epochs."""
  return 100 * res.test_error[:, -TAIL_EPOCHS:].mean(axis=1)


def _run(spec, data, quick):
  scale = 10 if quick else 1
  variants = {label: (model, rule, factor, [a // scale for a in
                                            (more[0] if more else spec["at"])])
              for label, (model, rule, factor, *more) in spec["variants"].items()}
  return train(variants, data, CE, seeds=list(range(3 if quick else spec["runs"])),
               lr=spec["lr"], epochs=spec["epochs"] // scale,
               batch=spec["batch"],
               positions=spec.get("positions", "after_each_block"),
               norms_of="FNN LI" if spec is EXPERIMENTS["exp4"] else None)


def _plot(path, title, results, spec, quick, log=True):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(7, 6), dpi=100)
  FigureCanvasAgg(fig)
  ax1, ax2 = fig.subplots(2, 1)
  steps = steps_per_epoch(spec["batch"])
  scale = 10 if quick else 1
  for k, (label, res) in enumerate(results.items()):
    color = f"C{k}"
    ax1.plot(res.train_loss.mean(0), label=label, lw=0.8, c=color)
    ax2.plot(100 * res.test_error.mean(0), label=label, lw=0.8, c=color)
    ref_loss = growth.surviving_mean(res.train_loss, res.test_error,
                                     steps_per_epoch=steps).mean
    ref_err = growth.surviving_mean(res.test_error, res.test_error).mean
    ax1.plot(ref_loss, lw=0.6, ls="--", c=color)
    ax2.plot(100 * ref_err, lw=0.6, ls="--", c=color)
  for a in spec.get("at", []):
    ax1.axvline(a // scale * steps, ls=":", c="k")
    ax2.axvline(a // scale, ls=":", c="k")
  if log:
    ax1.set_yscale("log")
  ax1.set_xlabel("iteration")
  ax1.set_ylabel("mean training loss")
  ax2.set_xlabel("epoch")
  ax2.set_ylabel("mean test error (%)")
  ax1.legend(fontsize=8)
  ax1.set_title(title + " (dashed: mean over runs not yet at 0 % test error, "
                "reference code)", fontsize=8)
  fig.tight_layout()
  fig.savefig(path)


def _per_run(res, spec, what):
  values = (final_loss(res.train_loss, spec["batch"]) if what == "loss"
            else _final_error(res))
  return {r: float(v) for r, v in enumerate(values)}


def _paired(spec, a, b) -> bool:
  """Runs share their start (same architecture, same seed) until insertion."""
  return spec["variants"][a][0] == spec["variants"][b][0]


QUANTITY = {"loss": "final training loss (full batch: last step; mini-batch: "
                    "mean over the last epoch's batches)",
            "error": f"final test error in % (mean over the last {TAIL_EPOCHS} "
                     "epochs)"}


def _compare(claims, item, claim, results, spec, a, b, *, quote, what="loss",
             relation="<"):
  paired = _paired(spec, a, b)
  claims.compare(item, claim, _per_run(results[a], spec, what),
                 _per_run(results[b], spec, what), relation=relation,
                 quote=quote, names=(a, b), quantity=QUANTITY[what],
                 paired=paired,
                 measured={"pairing": "by seed (shared start)" if paired else
                           "unpaired: different architectures, own inits"})


def _interval_info(claims, item, claim, results, spec, a, b, *, quote,
                   what="error"):
  """An INFO record with the interval, where the thesis states no claim."""
  paired = _paired(spec, a, b)
  xs = list(_per_run(results[a], spec, what).values())
  ys = list(_per_run(results[b], spec, what).values())
  diff = difference_interval(xs, ys, paired=paired)
  claims.info(item, claim, {"quantity": QUANTITY[what], "a": a, "b": b,
                            "difference_a_minus_b": diff.as_record()},
              quote=quote)


def _reference_statistic(claims, name, spec, results):
  """INFO: plain mean vs the reference's mean over the runs not yet at 0 %."""
  steps = steps_per_epoch(spec["batch"])
  table = {}
  for label, res in results.items():
    loss = growth.surviving_mean(res.train_loss, res.test_error,
                                 steps_per_epoch=steps)
    err = growth.surviving_mean(res.test_error, res.test_error)
    stops = loss.stop_epochs
    stopped = stops < res.test_error.shape[1]
    stopped |= res.test_error[:, -1] <= 0.0
    surv_loss = loss.mean[-steps:]
    table[label] = {
        "plain_mean_final_loss": float(final_loss(res.train_loss, spec["batch"]).mean()),
        "reference_mean_final_loss": (float(np.mean(surv_loss))
                                      if np.isfinite(surv_loss).all() else None),
        "plain_mean_final_test_error_pct": float(100 * res.test_error[:, -1].mean()),
        "reference_mean_final_test_error_pct": (
            float(100 * err.mean[-1]) if np.isfinite(err.mean[-1]) else None),
        "runs": int(len(stops)), "runs_stopped_at_0pct": int(stopped.sum()),
        "runs_surviving_to_the_end": int(err.survivors[-1]),
        "median_stop_epoch_of_stopped": (float(np.median(stops[stopped]))
                                         if stopped.any() else None)}
  claims.info(spec["items"], f"{name}: the plain mean over all runs vs the "
              "reference code's statistic (a run stops once its test error "
              "reaches 0 %; the mean is over the surviving runs, None where "
              "none survive), at the end of training", table)


def _chosen_after_input(res, model):
  """Per run: did the first insertion pick the slot after the input layer?"""
  first = growth.candidates(model, resnet_positions=AFTER_INPUT)[0].name
  return {r: a[0]["chosen"] == [first] for r, a in enumerate(res.attempts)}


def _flops_claim(claims, item, spec, li, x2, data):
  model1, model2 = spec["variants"][li][0], spec["variants"][x2][0]
  at, epochs = spec["at"][0], spec["epochs"]
  ext = growth.fully_extend(model1, init_params(model1, jax.random.key(0),
                                                data.x_train[:1]),
                            resnet_positions=spec.get("positions",
                                                      "after_each_block"))[0]
  li_flops = growth.run_flops([(at, model1), (epochs - at, model2)], [ext], (2,))
  x2_flops = growth.run_flops([(epochs, model2)], [], (2,))
  claims.check(item, f"{li} is cheaper than {x2} (FLOPs per sample, Table 4.4)",
               li_flops["total"] < x2_flops["total"], li=li_flops["total"],
               x2=x2_flops["total"],
               quote="Nevertheless, SensLI is more computationally efficient in "
               "all cases, as shown in Table 4.4.")


def run(out_dir: Path, quick: bool) -> Claims:
  out_dir = Path(out_dir)
  data = load_dataset("spiral", seed=0)
  claims = Claims("kreis")
  instances.heatmaps(data, out_dir, claims, quick)
  titles = {"exp2": "Fig 4.5a FNN full batch", "exp4": "Fig 4.5b FNN mini-batch",
            "exp3": "Fig 4.5c ResNet full batch", "exp13": "Fig 4.7/4.10a/4.11a ResNet ×3",
            "exp6": "Fig 4.9a FNN full batch", "exp8": "Fig 4.9b FNN mini-batch",
            "exp7": "Fig 4.9c ResNet full batch"}
  results = {}
  for name, spec in EXPERIMENTS.items():
    results[name] = res = _run(spec, data, quick)
    _plot(out_dir / f"{name}.png", titles[name], res, spec, quick)
  for name, item, li, x1, x2 in [("exp2", "Fig 4.5a", "FNN LI", "FNN1", "FNN2"),
                                 ("exp4", "Fig 4.5b", "FNN LI", "FNN1", "FNN2"),
                                 ("exp3", "Fig 4.5c", "ResNet LI", "ResNet1", "ResNet2")]:
    spec, res = EXPERIMENTS[name], results[name]
    _compare(claims, item, f"{li} reaches a lower training loss than {x1}",
             res, spec, li, x1, quote=Q["4.5"])
    if name == "exp4":
      _compare(claims, item, "mini-batch FNN: SensLI even reaches a lower "
               "training loss than FNN2", res, spec, li, x2, quote=Q["4.5b"])
    for other in (x1, x2):
      _interval_info(claims, item, f"test-error panel: {li} vs {other} (the "
                     "thesis states no test-error claim for Fig 4.5)", res,
                     spec, li, other, quote=Q["4.5err"])
    _flops_claim(claims, item, spec, li, x2, data)
  spec3 = EXPERIMENTS["exp3"]
  claims.fraction("Fig 4.5c", "ResNet LI (reference candidate set): the "
                  "argmax picks the slot right after the input layer (the "
                  "reference code: 23 of 30 Exp3 runs)",
                  _chosen_after_input(results["exp3"]["ResNet LI"],
                                      spec3["variants"]["ResNet1"][0]),
                  quote=Q["4.5"])
  instances.grad_norm_claims(results["exp4"]["FNN LI"], claims, out_dir)
  spec13, r13 = EXPERIMENTS["exp13"], results["exp13"]
  for what, noun in (("loss", "training loss"), ("error", "test error")):
    _compare(claims, "Fig 4.7", f"ResNet LI (3 insertions) reaches a lower "
             f"{noun} than ResNet1", r13, spec13, "ResNet LI", "ResNet1",
             quote=Q["4.7"], what=what)
    _compare(claims, "Fig 4.7", f"ResNet LI (3 insertions) reaches a lower "
             f"{noun} than even ResNet2", r13, spec13, "ResNet LI", "ResNet2",
             quote=Q["4.7"], what=what)
    _compare(claims, "Fig 4.7", f"three insertions beat one: ResNet LI (3 "
             f"insertions) reaches a lower {noun} than ResNet LI ×1 (one "
             "insertion after 100 epochs, same settings)", r13, spec13,
             "ResNet LI", "ResNet LI ×1", quote=Q["4.7multi"], what=what)
    _compare(claims, "Fig 4.10a", f"argmax reaches a lower {noun} than argmin "
             "with 3 insertions", r13, spec13, "ResNet LI", "LI_other",
             quote=Q["4.10"] if what == "loss" else Q["4.10err"], what=what)
    _compare(claims, "Fig 4.11a", f"argmax reaches a lower {noun} than a "
             "random position with 3 insertions", r13, spec13, "ResNet LI",
             "Random", quote=Q["4.11"], what=what)
  for name, item in [("exp6", "Fig 4.9a"), ("exp8", "Fig 4.9b"), ("exp7", "Fig 4.9c")]:
    spec, res = EXPERIMENTS[name], results[name]
    same = float(np.mean([a[0]["chosen"] == b[0]["chosen"] for a, b in zip(
        res["SensLI"].attempts, res["LI_other"].attempts)]))
    _compare(claims, item, "inserting at the largest merit reaches a lower "
             "training loss than at the smallest", res, spec, "SensLI",
             "LI_other", quote=Q["4.9"])
    claims[-1].measured["fraction_runs_same_position"] = same
  claims.fraction("Fig 4.9c", "Exp7 (reference candidate set): the argmax "
                  "picks the slot right after the input layer",
                  _chosen_after_input(results["exp7"]["SensLI"],
                                      EXPERIMENTS["exp7"]["variants"]["SensLI"][0]),
                  quote=Q["4.9"])
  for name in ("exp2", "exp4", "exp3", "exp6", "exp8", "exp7"):
    _reference_statistic(claims, name, EXPERIMENTS[name], results[name])
  for spec in instances.TIMING.values():
    instances.timing(spec, data, quick, claims, out_dir)
  return claims


REPRODUCTION = Reproduction(
    id="sensli_spiral", thesis="kreis",
    items=("Fig 4.2", "Fig 4.3", "Fig 4.5a", "Fig 4.5b", "Fig 4.5c", "Fig 4.6a",
           "Fig 4.7", "Fig 4.9a", "Fig 4.9b", "Fig 4.9c", "Fig 4.10a",
           "Fig 4.11a", "Fig 4.12a", "Fig 4.12b"),
    run=run, title="SensLI spiral experiments (FNN, ResNet): insertion vs "
    "baselines, position rules, timing, with intervals over runs",
    cost="~16 min on 2 shared CPU cores, ~6 min CPU time (quick: ~2 min CPU)",
    smoke="the spiral data with 3 runs per curve (2 for Fig 4.12) and a tenth "
    "of the epochs")
