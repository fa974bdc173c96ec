"""SensLI on CIFAR-10 (Kreis §4.3.3): Figs 4.1, 4.5d, 4.6b, 4.8, 4.9d, 4.10b,
4.11b, 4.12c, B.1 — from ``configs/sensli_cifar.py``.

Full size needs CIFAR-10 in a TFDS data directory (``$TFDS_DATA_DIR`` or
TFDS's default); without it every claim is NOT RUN naming the path searched.
With it, each variant of the config runs through the engine with the
``sensli`` hook for the thesis's run counts (seeds 0…n−1): 10 runs for Exp5
(Figs 4.5d, 4.6b, B.1), 7 for Exp9 and Exp14 (Figs 4.9d, 4.10b, 4.11b), and
Fig 4.8 / Fig 4.12c, which show one instance, 3 and 1 seeds (INFO records
with the fraction of seeds). Exp1 runs with the reference's ReduceLROnPlateau
(:class:`nnopt.growth.ReduceLROnPlateau`). Comparisons are
:meth:`Claims.compare` on the per-seed final training loss (mean over the last
20 logged records), paired by seed where the runs share their start. About a
GPU-day in all.

``quick`` runs the same pipeline on scikit-learn's 8×8 digits with a tiny VGG
(3 stages of 8 channels): insertion at the largest operator-norm merit vs no
insertion, the five norms of App. B.1 at the three positions, the new
kernel's gradient heatmaps (Fig 4.1). Its B.1 check tests the merits
against the bounds every circular 3×3 convolution satisfies,
``‖K‖_F²/c ≤ ‖A_K‖₂² ≤ 9‖K‖_F²``. It is a smoke test of the machinery, not
the thesis's setting; its records are smoke records.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import optax

from nnopt import growth, losses
from nnopt.data import DatasetError, load_dataset
from nnopt.models import VGG, init_params
from nnopt.reproduce import Claims, Reproduction
from nnopt.engine.trainer import Trainer
from nnopt.hooks import Hook

CE = losses.softmax_cross_entropy
ITEMS = ("Fig 4.1", "Fig 4.5d", "Fig 4.6b", "Fig 4.8", "Fig 4.9d", "Fig 4.10b",
         "Fig 4.11b", "Fig 4.12c", "Fig B.1")
CLAIMS = {
    "Fig 4.1": "the new conv kernel's |gradient| over the first 3 SGD steps after "
               "insertion is heterogeneous (no symmetry problem)",
    "Fig 4.5d": "CNN LI reaches a lower final training loss than CNN1 (10 runs)",
    "Fig 4.6b": "the new conv's gradient norm is in the range of the others "
                "(within a factor 100 of their median), not dominant, per run",
    "Fig 4.8": "threshold τ=1, 3 attempts: 2 accepted (the 2nd rejected) and LI "
               "ends below the extended CNN in training loss, per seed (the "
               "thesis shows one run)",
    "Fig 4.9d": "argmax reaches a lower final training loss than argmin, VGG "
                "[200,200,200], 7 runs",
    "Fig 4.10b": "argmax reaches a lower final training loss than argmin with 3 "
                 "insertions (7 runs)",
    "Fig 4.11b": "argmax reaches a lower final training loss than a random "
                 "position with 3 insertions (7 runs)",
    "Fig 4.12c": "all 8 insertion times end below CNN1 and the same position is "
                 "selected every time, per seed (the thesis shows one instance)",
    "Fig B.1": "position 0 has the largest operator-norm merit, per run (10 runs)",
}


RUNS = {"exp5": 10, "exp9": 7, "exp14": 7, "exp1": 3, "exp12": 1}
QUOTES = {
    "Fig 4.5d": "Across all architectures, SensLI consistently results in a faster "
                "reduction of the loss w.r.t. iteration count compared to "
                "fixed-architecture training on the baseline network.",
    "Fig 4.9d": "At the same time, we also observe that the noise introduced by "
                "mini-batch SGD can dominate the local effects of SensLI, as seen "
                "in Figure 4.9d and to some extent in Figure 4.9b.",
    "Fig 4.10b": "We observe that SensLI is more effective than LIother to reduce "
                 "the training loss, even in the presence of noise from "
                 "mini-batch training.",
    "Fig 4.11b": "In Figure 4.11, we observe that SensLI outperforms the random "
                 "insertion strategy in both cases.",
    "Fig 4.12c": "Notably, inserting a layer at any of the eight tested points "
                 "during training yields better results than omitting the second "
                 "hidden layer altogether (FNN1/CNN1).",
    "Fig 4.6b": "for the CNN, the gradient norm values of the newly inserted "
                "kernel are not dominating.",
    "Fig 4.8": "the second layer insertion is rejected by the threshold",
    "Fig B.1": "the operator norm (B.1c) selects position 0",
    "Fig 4.1": "no symmetry problem",
}
NORMS = ("fro", "fro_scaled", "op", "op_per_out_sum", "op_per_out_l1")
PROBE = 512  # training images whose gradient Fig 4.6b's probe measures


def _full_size_blocker() -> str | None:
  """Only absent data block the full size (the error names the path searched)."""
  data_dir = os.environ.get("TFDS_DATA_DIR")
  try:
    load_dataset("cifar10", data_dir=data_dir)
  except DatasetError as e:
    return (f"CIFAR-10 is not available (searched TFDS_DATA_DIR="
            f"{data_dir or 'unset, TFDS default'}): " + " ".join(str(e).split()))
  return None


class _GradNormProbe(Hook):
  """Fig 4.6b: ‖∇K‖_F of every kernel on a fixed batch of PROBE training
  images after every epoch (the thesis logs mini-batch gradients)."""

  def __init__(self, loss, x, y):
    self.loss, self.x, self.y = loss, x[:PROBE], y[:PROBE]
    self.norms: list[dict[str, float]] = []

  def on_epoch_end(self, run):
    model = run.model
    g = jax.grad(lambda p: self.loss(model.apply({"params": p}, self.x),
                                     self.y))(jax.device_get(run.state.params))
    self.norms.append({k: float(np.sqrt(np.sum(np.square(v["kernel"]))))
                       for k, v in g.items() if "kernel" in v})


def _final_loss(trainer) -> float:
  return float(np.mean([h["train_loss"] for h in trainer.history[-20:]]))


def _full(out_dir: Path, claims: Claims) -> None:
  """Every variant of the config for the thesis's run counts (RUNS)."""
  from nnopt import config as config_lib
  _, config = config_lib.load_config_file(
      Path(__file__).resolve().parent.parent / "configs" / "sensli_cifar.py")
  finals, hooks, probes = {}, {}, {}
  for variant in config_lib.variant_names(config):
    for seed in range(RUNS[variant.split("_")[0]]):
      spec = config_lib.resolve(config, variant, overrides=[f"train.seed={seed}"])
      exp = config_lib.build(spec)
      extra = []
      if variant == "exp5_li":
        extra.append(_GradNormProbe(CE, exp.dataset.x_train, exp.dataset.y_train))
      trainer = exp.trainer(str(out_dir / f"{variant}_s{seed}"), progress=True)
      trainer.hooks = list(trainer.hooks) + extra
      trainer.fit()
      finals.setdefault(variant, {})[seed] = _final_loss(trainer)
      hooks.setdefault(variant, {})[seed] = exp.hooks[0] if exp.hooks else None
      if variant == "exp5_li":
        probes[seed] = extra[-1].norms

  def compare(item, a, b, paired=True):
    claims.compare(item, CLAIMS[item], finals[a], finals[b], relation="<",
                   quote=QUOTES[item], names=(a, b), paired=paired,
                   quantity="final training loss (mean of the last 20 records)")

  compare("Fig 4.5d", "exp5_li", "exp5_cnn1")
  compare("Fig 4.9d", "exp9_max", "exp9_min")
  compare("Fig 4.10b", "exp14_max", "exp14_min")
  compare("Fig 4.11b", "exp14_max", "exp14_random")
  accepted = {s: [bool(a["chosen"]) for a in h.attempts]
              for s, h in hooks["exp1_threshold"].items()}
  claims.fraction("Fig 4.8", CLAIMS["Fig 4.8"], {
      s: accepted[s] == [True, False, True] and finals["exp1_threshold"][s]
      < finals["exp1_extended"][s] for s in accepted}, quote=QUOTES["Fig 4.8"],
      measured={"accepted": accepted, "final_loss": {
          k: finals[k] for k in ("exp1_threshold", "exp1_extended")}})
  times = range(10, 81, 10)
  holds = {}
  for s in finals["exp12_cnn1"]:
    chosen = {tuple(hooks[f"exp12_t{t}"][s].attempts[0]["chosen"]) for t in times}
    holds[s] = len(chosen) == 1 and all(
        finals[f"exp12_t{t}"][s] < finals["exp12_cnn1"][s] for t in times)
  claims.fraction("Fig 4.12c", CLAIMS["Fig 4.12c"], holds, quote=QUOTES["Fig 4.12c"],
                  measured={"final_loss_by_time": {
                      t: finals[f"exp12_t{t}"] for t in times},
                      "final_loss_cnn1": finals["exp12_cnn1"]})
  _full_b1_46b(claims, hooks["exp5_li"], probes)
  exp = config_lib.build(config_lib.resolve(config, "exp5_cnn1"))
  _fig_4_1(claims, exp.model, exp.dataset.x_train, exp.dataset.y_train,
           out_dir / "fig_4_1_heatmaps.png")


def _full_b1_46b(claims, li_hooks, probes):
  """Fig B.1 (argmax of the operator norm per run) and Fig 4.6b (probe)."""
  b1, norms = {}, {}
  for s, h in li_hooks.items():
    res = h.last_result
    merits = {n: list(growth.candidate_merits(
        res.ext_model, res.sensitivity.grads, res.candidates, (32, 32, 3),
        norm=n).values()) for n in NORMS}
    norms[s] = merits
    b1[s] = int(np.argmax(merits["op"])) == 0
  claims.fraction("Fig B.1", CLAIMS["Fig B.1"], b1, quote=QUOTES["Fig B.1"],
                  measured={"merits_by_run_and_norm": norms})
  in_range, dominant = {}, {}
  for s, series in probes.items():
    after = [r for r in series if any(k.startswith("conv_ins_") for k in r)]
    new = next(k for k in after[0] if k.startswith("conv_ins_"))
    mean = {k: float(np.mean([r[k] for r in after])) for k in after[0]}
    others = [v for k, v in mean.items() if k != new]
    in_range[s] = 0.01 <= mean[new] / float(np.median(others)) <= 100
    dominant[s] = mean[new] > max(others)
  claims.fraction("Fig 4.6b", CLAIMS["Fig 4.6b"], {
      s: in_range[s] and not dominant[s] for s in probes},
      quote=QUOTES["Fig 4.6b"], measured={"in_range": in_range,
                                         "dominant": dominant})


def _fig_4_1(claims, model, x, y, path, prefix=""):
  """Fig 4.1: |∇K| of a conv inserted at position 0 of the freshly
  initialized network over its first 3 SGD steps (batches of 64)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  cand = growth.candidates(model)[0]
  grown, params = growth.insert(
      model, init_params(model, jax.random.key(0), x[:1]), [cand])
  grad = jax.jit(jax.grad(lambda p, x, y: CE(grown.apply({"params": p}, x), y)))
  fig = Figure(figsize=(9, 3), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, 3)
  cv = []
  for k in range(3):
    g = grad(params, x[k * 64:(k + 1) * 64], y[k * 64:(k + 1) * 64])
    params = jax.tree.map(lambda p, d: p - 0.1 * d, params, g)
    m = np.abs(np.asarray(g[cand.name]["kernel"])).reshape(9 * cand.width,
                                                           cand.width)
    cv.append(float(m.std() / m.mean()))
    axes[k].imshow(m.T, cmap="Greys", aspect="auto")
  fig.savefig(path)
  claims.check("Fig 4.1", prefix + "the new kernel's |gradient| is "
               "heterogeneous (coefficient of variation > 0.1) in each of the "
               "3 steps after insertion", min(cv) > 0.1,
               coefficient_of_variation=cv, quote=QUOTES["Fig 4.1"])


def _quick(out_dir: Path, claims: Claims) -> None:
  data = load_dataset("digits", seed=0)
  model = VGG(stages=((8,), (8,), (8,)), fc=(32,), n_classes=10,
              init_scheme="pytorch")
  finals = {"LI": [], "CNN1": []}
  merits_by_norm = {n: [] for n in NORMS}
  for seed in range(2):
    for label in finals:
      hooks = ([growth.SensLI(CE, data.x_train, data.y_train, at_epochs=[3],
                              norm="op", mode="epoch", batch_size=64, seed=seed)]
               if label == "LI" else [])
      trainer = Trainer(model, CE, optax.sgd(0.05, momentum=0.9), data,
                        batch_size=64, num_epochs=8, seed=seed, hooks=hooks,
                        progress=False)
      trainer.fit()
      finals[label].append(float(np.mean([h["train_loss"] for h in trainer.history[-22:]])))
      if hooks:
        res = hooks[0].last_result
        for norm in merits_by_norm:
          merits_by_norm[norm].append(list(growth.candidate_merits(
              res.ext_model, res.sensitivity.grads, res.candidates,
              data.x_train.shape[1:], norm=norm).values()))
  claims.check("Fig 4.5d", "quick smoke (digits 8×8, tiny VGG, 2 seeds, not the "
               "thesis setting): CNN LI ends below CNN1",
               np.mean(finals["LI"]) < np.mean(finals["CNN1"]), final_loss=finals)
  # B.1c against the bounds of any circular 3×3 convolution A_K with c
  # channels at resolution n ≥ 3: ‖A_K‖_F² = n²‖K‖_F² and rank ≤ n²c give
  # ‖K‖_F²/c ≤ ‖A_K‖₂²; A_K = Σ_taps S_t ⊗ K_t (S_t shifts) gives
  # ‖A_K‖₂² ≤ 9‖K‖_F². Positions at resolution 8, 4 (2 < 3 aliases taps:
  # only the upper bound).
  op, fro = np.array(merits_by_norm["op"]), np.array(merits_by_norm["fro"])
  resolutions, channels = np.array([8, 4, 2]), 8
  upper = bool(np.all(op <= 9 * fro * (1 + 1e-5)))
  lower = bool(np.all((op >= fro / channels * (1 - 1e-5))[:, resolutions >= 3]))
  claims.check("Fig B.1", "the operator-norm merits (B.1c) of the three "
               "positions lie within the bounds of a circular 3×3 convolution, "
               "‖K‖_F²/c ≤ ‖A_K‖₂² ≤ 9‖K‖_F², in every run",
               upper and lower and np.all(fro > 0), merits=merits_by_norm,
               upper_bound_holds=upper, lower_bound_holds=lower,
               argmax_op=np.argmax(op, 1).tolist())
  _fig_4_1(claims, model, data.x_train, data.y_train,
           out_dir / "fig_4_1_quick_heatmaps.png", "quick smoke: ")
  # the other items have no stand-in here: a quick run writes smoke records
  # only for what it ran


def run(out_dir: Path, quick: bool) -> Claims:
  claims = Claims("kreis")
  if quick:
    _quick(Path(out_dir), claims)
    return claims
  blocker = _full_size_blocker()
  if blocker:
    for item in ITEMS:
      claims.not_run(item, CLAIMS[item], blocker)
    return claims
  _full(Path(out_dir), claims)
  return claims


REPRODUCTION = Reproduction(
    id="sensli_cifar", thesis="kreis", items=ITEMS, run=run,
    title="SensLI CNN experiments on CIFAR-10 (config configs/sensli_cifar.py)",
    cost="about a GPU-day (quick: ~2 min CPU on digits)",
    smoke="scikit-learn digits 8×8, a tiny VGG, 2 seeds")
