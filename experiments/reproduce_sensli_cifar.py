"""SensLI on CIFAR-10 (Kreis §4.3.3): Figs 4.1, 4.5d, 4.6b, 4.8, 4.9d, 4.10b,
4.11b, 4.12c, B.1 — from ``configs/sensli_cifar.py``.

Full size needs CIFAR-10 in a TFDS data directory and an accelerator: 100–200
epochs of a 2.7 M-parameter VGG per variant, 7–10 runs per curve (about a
GPU-day in all). Without them every claim is reported NOT RUN with the reason.
With them, each variant of the config runs through the engine with the
``sensli`` hook and the claims compare final training losses (mean over the
last logged steps) averaged over runs.

``quick`` runs the same pipeline on scikit-learn's 8×8 digits with a tiny VGG
(3 stages of 8 channels): insertion at the largest operator-norm merit vs no
insertion, the five norms of App. B.1 at the three positions, the new
kernel's gradient heatmaps (Fig 4.1) and the threshold rule. It is a smoke
test of the machinery, not the thesis's setting; its claims say so.
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

CE = losses.softmax_cross_entropy
ITEMS = ("Fig 4.1", "Fig 4.5d", "Fig 4.6b", "Fig 4.8", "Fig 4.9d", "Fig 4.10b",
         "Fig 4.11b", "Fig 4.12c", "Fig B.1")
CLAIMS = {
    "Fig 4.1": "the new conv kernel's |gradient| over the first 3 SGD steps after "
               "insertion is heterogeneous (no symmetry problem)",
    "Fig 4.5d": "CNN LI reaches a lower loss than CNN1 after insertion (10 runs); "
                "small gain; cheaper than CNN2",
    "Fig 4.6b": "the new conv's gradient norm is in the range of the others, not "
                "dominant",
    "Fig 4.8": "threshold τ=1, 3 attempts: 2 accepted (the 2nd rejected); LI lower "
               "loss and higher accuracy than the extended CNN at ≈70 % of its "
               "wall time (1659 s vs 2320 s)",
    "Fig 4.9d": "argmax ≤ argmin loss (noisy), VGG [200,200,200], 7 runs",
    "Fig 4.10b": "argmax clearly better than argmin with 3 insertions (7 runs)",
    "Fig 4.11b": "argmax better than a random position with 3 insertions (7 runs)",
    "Fig 4.12c": "all 8 insertion times beat CNN1; late insertion worse; the same "
                 "position is selected every time",
    "Fig B.1": "position 0 has the largest operator-norm merit in all 10 runs; the "
               "operator norm separates the positions most clearly",
}


def _full_size_blocker() -> str | None:
  data_dir = os.environ.get("TFDS_DATA_DIR")
  try:
    load_dataset("cifar10", data_dir=data_dir)
  except DatasetError as e:
    return "CIFAR-10 is not available locally: " + " ".join(str(e).split())
  if jax.default_backend() == "cpu":
    return ("needs an accelerator: 100-200 epochs of a 2.7 M-parameter VGG per "
            "variant, 7-10 runs per curve (about a GPU-day); this machine is CPU")
  return None


def _full(out_dir: Path, claims: Claims) -> None:
  """Runs the config's variants (one seed each, to keep it a GPU-hours job)."""
  from nnopt import config as config_lib
  _, config = config_lib.load_config_file(
      Path(__file__).resolve().parent.parent / "configs" / "sensli_cifar.py")
  finals, hooks = {}, {}
  for variant in config_lib.variant_names(config):
    exp = config_lib.build(config_lib.resolve(config, variant))
    trainer = exp.trainer(str(out_dir / variant), progress=False)
    trainer.fit()
    tail = [h["train_loss"] for h in trainer.history[-20:]]
    finals[variant] = float(np.mean(tail))
    hooks[variant] = exp.hooks[0] if exp.hooks else None
  lt = lambda a, b: finals[a] < finals[b]
  claims.check("Fig 4.5d", CLAIMS["Fig 4.5d"], lt("exp5_li", "exp5_cnn1"),
               final_loss=finals, runs=1)
  claims.check("Fig 4.9d", CLAIMS["Fig 4.9d"], finals["exp9_max"] <= finals["exp9_min"],
               final_loss=finals, runs=1)
  claims.check("Fig 4.10b", CLAIMS["Fig 4.10b"], lt("exp14_max", "exp14_min"),
               final_loss=finals, runs=1)
  claims.check("Fig 4.11b", CLAIMS["Fig 4.11b"], lt("exp14_max", "exp14_random"),
               final_loss=finals, runs=1)
  accepted = [bool(a["chosen"]) for a in hooks["exp1_threshold"].attempts]
  claims.check("Fig 4.8", CLAIMS["Fig 4.8"], accepted == [True, False, True] and
               lt("exp1_threshold", "exp1_extended"), accepted=accepted,
               final_loss=finals)
  timing = [finals[f"exp12_t{t}"] for t in range(10, 81, 10)]
  chosen = {tuple(hooks[f"exp12_t{t}"].attempts[0]["chosen"]) for t in range(10, 81, 10)}
  claims.check("Fig 4.12c", CLAIMS["Fig 4.12c"], all(
      v < finals["exp12_cnn1"] for v in timing) and len(chosen) == 1,
               final_loss_by_time=timing, chosen=sorted(chosen))
  for item in ("Fig 4.1", "Fig 4.6b", "Fig B.1"):
    claims.not_run(item, CLAIMS[item], "per-step gradient logging of the new "
                   "kernel is done in quick mode only")


def _quick(out_dir: Path, claims: Claims) -> None:
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  data = load_dataset("digits", seed=0)
  model = VGG(stages=((8,), (8,), (8,)), fc=(32,), n_classes=10,
              init_scheme="pytorch")
  finals = {"LI": [], "CNN1": []}
  merits_by_norm = {n: [] for n in ("fro", "fro_scaled", "op", "op_per_out_sum",
                                    "op_per_out_l1")}
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
  op = np.array(merits_by_norm["op"])
  claims.check("Fig B.1", "quick smoke: all five norms are computed at the three "
               "positions; report which position the operator norm favours",
               all(np.all(np.isfinite(v)) for v in merits_by_norm.values()),
               merits=merits_by_norm, argmax_op=np.argmax(op, 1).tolist())
  # Fig 4.1: gradient of the new kernel in 3 steps after insertion
  cand = growth.candidates(model)[0]
  grown, params = growth.insert(
      model, init_params(model, jax.random.key(0), data.x_train[:1]), [cand])
  grad = jax.jit(jax.grad(lambda p, x, y: CE(grown.apply({"params": p}, x), y)))
  fig = Figure(figsize=(9, 3), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, 3)
  cv = []
  for k in range(3):
    g = grad(params, data.x_train[k * 64:(k + 1) * 64], data.y_train[k * 64:(k + 1) * 64])
    params = jax.tree.map(lambda p, d: p - 0.1 * d, params, g)
    m = np.abs(np.asarray(g[cand.name]["kernel"])).reshape(9 * 8, 8)
    cv.append(float(m.std() / m.mean()))
    axes[k].imshow(m.T, cmap="Greys", aspect="auto")
  fig.savefig(out_dir / "fig_4_1_quick_heatmaps.png")
  claims.check("Fig 4.1", "quick smoke: the new kernel's |gradient| is "
               "heterogeneous in each of the 3 steps", min(cv) > 0.1,
               coefficient_of_variation=cv)
  for item in ("Fig 4.6b", "Fig 4.8", "Fig 4.9d", "Fig 4.10b", "Fig 4.11b",
               "Fig 4.12c"):
    claims.not_run(item, CLAIMS[item], "quick mode runs the Fig 4.5d/4.1/B.1 "
                   "smoke tests only; full size needs CIFAR-10 and an accelerator")


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
