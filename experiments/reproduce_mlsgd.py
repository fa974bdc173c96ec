"""MLSGD thesis: Tables 4.1/4.4 (exact), Tables/Figs 4.2–4.8 (CIFAR-10, NOT RUN
here) with quick stand-ins on digits, and the Table 3.1 behaviour experiment.

* Tables 4.1/4.4: ODE-ResNet parameter counts, checked for equality.
* Tables 4.2/4.3/4.5/4.6 + Figs 4.3/4.4/4.7/4.8: the full runs need CIFAR-10
  (TFDS data_dir) and hours of accelerator time (configs
  ``configs/mlsgd_depth.py``, ``configs/mlsgd_resolution.py``); they are
  reported NOT RUN with the reason when CIFAR-10 is absent. The quick stand-in
  runs every variant (none, det, det_vr, stoch, stoch_vr; angle check; gates;
  both hierarchies) on scikit-learn's 8×8 digits with a small ODE-ResNet and
  reports what it can: finite training, the epoch schedule per level, and the
  measured cost of each gradient-correction variant relative to none (the
  thesis's 1.3–1.95×).
* Table 3.1 (spec-mlsgd §8.5 item 7): multinomial logistic regression on
  digits, a two-level resolution hierarchy (8×8 ↔ 4×4 pooled inputs, the
  fc-image transfer of §5.4), fixed α; the T̄-weighted mean of ‖∇F_L‖² at the
  cycle starts is tracked per variant. Thesis: det+VR drives it to 0 (no
  residual), the others plateau, stochastic GC without VR plateaus highest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.models.odenet import ODEResNet, odenet_regularizer
from nnopt.multilevel import (LevelProblem, MLSGDConfig, depth_transfer,
                              full_gradient, mlsgd, resolution_transfer)
from nnopt.reproduce import Claims, Reproduction

COUNTS = {
    "Table 4.1": [(dict(layers_per_block=8), 433162),
                  (dict(layers_per_block=4), 238730),
                  (dict(layers_per_block=2), 141514)],
    "Table 4.4": [(dict(channels=(32, 64, 112), layers_per_block=3,
                        res_param="mlsgd_basis"), 560570),
                  (dict(channels=(32, 64, 112), layers_per_block=3, res_kernel=2,
                        input_pool=1), 241850)],
}
CIFAR_ITEMS = {
    "Table 4.2": "depth, no GC: MLSGD reaches 80/84/85 % val in 0.34-0.57x of "
                 "SGD's time; test 86.1-86.6 % vs 85.1 %",
    "Fig 4.3": "depth, no GC: MLSGD train/val curves above SGD at equal time",
    "Table 4.3": "depth, GC variants: all worse than SGD; det+VR best (~71 % "
                 "test), others 48-52 %; 1.65-1.95x the no-GC time",
    "Fig 4.4": "depth, GC variants vs SGD over time",
    "Fig 4.5": "CIFAR images at 32x32 and 16x16 average pooled",
    "Table 4.5": "resolution, no GC: decay run val 86.3/test 84.5 vs SGD 84.0/"
                 "83.0; 84 % val in 0.55x of SGD's time; SGD never 85 %",
    "Fig 4.7": "resolution, no GC: MLSGD vs SGD over time",
    "Table 4.6": "resolution, GC variants: val 83.2-84.4 %, comparable to SGD; "
                 "1.3-1.6x the no-GC time",
    "Fig 4.8": "resolution, GC variants vs SGD over time",
}


def count(kwargs):
  model = ODEResNet(**kwargs)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"])
  return int(sum(x.size for x in jax.tree.leaves(shapes)))


def cifar_available() -> str | None:
  data_dir = os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
  if not os.path.isdir(os.path.join(data_dir, "cifar10")):
    return (f"CIFAR-10 is not prepared under {data_dir} (prepare it on a machine "
            "with internet: `tfds build cifar10 --data_dir DIR`) and the full "
            "runs take 2-4.5 CPU/accelerator hours each; run "
            "`nnopt run configs/mlsgd_depth.py` / `configs/mlsgd_resolution.py`")
  return None


def digits():
  from sklearn.datasets import load_digits
  d = load_digits()
  x = (d.images / 16.0 - 0.5).astype(np.float32)[..., None]  # (1797, 8, 8, 1)
  y = d.target.astype(np.int32)
  return x[:1500], y[:1500], x[1500:], y[1500:]


def classification_loss(model, l2=2e-3, smooth=2e-3):
  def loss(p, x, y, w):
    ce = optax.softmax_cross_entropy_with_integer_labels(
        model.apply({"params": p}, x), y)
    return jnp.sum(w * ce) / jnp.sum(w) + odenet_regularizer(p, l2, smooth)
  return loss


def accuracy(model, p, x, y):
  return float(jnp.mean(jnp.argmax(model.apply({"params": p}, x), -1) == y))


def quick_hierarchies(claims: Claims, quick: bool):
  x, y, xt, yt = digits()
  n_cycles = 2 if quick else 4
  depth = [ODEResNet(channels=(4, 8, 8), layers_per_block=n, h=4 / n,
                     n_classes=10, connect_norm="tv") for n in (1, 2, 4)]
  res = [ODEResNet(channels=(4, 8, 8), layers_per_block=2, res_kernel=2,
                   input_pool=1, connect_norm="tv"),
         ODEResNet(channels=(4, 8, 8), layers_per_block=2,
                   res_param="mlsgd_basis", connect_norm="tv")]
  setups = {
      "depth": (depth, [depth_transfer(), depth_transfer()], (2, 1, 1)),
      "resolution": (res, [resolution_transfer(fc_channels=8)], (2, 1)),
  }
  for name, (models, transfers, epochs) in setups.items():
    problems = [LevelProblem(classification_loss(m), x, y) for m in models]
    p0 = models[-1].init(jax.random.key(0), x[:2])["params"]
    times, finals, schedule_ok = {}, {}, True
    for variant in ("none", "det", "det_vr", "stoch", "stoch_vr"):
      cfg = MLSGDConfig(epochs=epochs, n_cycles=n_cycles, batch_size=50,
                        lr=0.05 if variant == "none" else 0.01, variant=variant,
                        stoch_fraction=0.1, first_cycle_no_gc=True,
                        angle_check="per_epoch" if variant == "det" else "off",
                        eta=1e-3 if variant == "det_vr" else None)
      mlsgd(problems, transfers, p0, MLSGDConfig(
          epochs=epochs, n_cycles=1, batch_size=50, variant=variant))  # compile
      t0 = time.perf_counter()
      out = mlsgd(problems, transfers, p0, cfg)
      times[variant] = time.perf_counter() - t0
      finals[variant] = accuracy(models[-1], out.params, xt, yt)
      finite = all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(out.params))
      expected = [n_cycles * e for e in epochs]
      schedule_ok &= finite and (out.level_epochs == expected or variant == "det")
    rel = {v: times[v] / times["none"] for v in times}
    claims.check(f"{'Table 4.3' if name == 'depth' else 'Table 4.6'} (quick)",
                 f"{name} hierarchy on digits: every variant trains finitely "
                 "with the T_l epoch schedule (quick stand-in; not the thesis "
                 "numbers)", schedule_ok, test_accuracy=finals,
                 time_relative_to_no_gc=rel, thesis_gc_time_factor="1.3-1.95x")


def table_3_1(claims: Claims, out_dir: Path, quick: bool):
  """Logistic regression, 2-level resolution hierarchy, fixed α."""
  x, y, _, _ = digits()
  x_coarse = x.reshape(-1, 4, 2, 4, 2, 1).mean((2, 4))

  def make(side):
    def loss(p, xb, yb, w):
      logits = xb.reshape(xb.shape[0], -1) @ p["fc"]["kernel"] + p["fc"]["bias"]
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
      return jnp.sum(w * ce) / jnp.sum(w) + 1e-3 * jnp.sum(p["fc"]["kernel"] ** 2)
    return loss

  fine_loss, coarse_loss = make(8), make(4)
  problems = [LevelProblem(coarse_loss, x_coarse, y), LevelProblem(fine_loss, x, y)]
  transfer = resolution_transfer(fc_channels=1)
  p0 = {"fc": {"kernel": jnp.zeros((64, 10)), "bias": jnp.zeros(10)}}
  n_cycles = 15 if quick else 120
  results = {}
  for variant in ("none", "det", "det_vr", "stoch", "stoch_vr"):
    grads = []

    def evaluate(w):
      g = full_gradient(fine_loss, w, jnp.asarray(x), jnp.asarray(y), 1500)
      grads.append(float(sum(jnp.sum(v ** 2) for v in jax.tree.leaves(g))))
      return {"grad_norm2": grads[-1]}

    cfg = MLSGDConfig(epochs=(1, 1), n_cycles=n_cycles, batch_size=50, lr=0.05,
                      variant=variant, lam=0.0, stoch_fraction=0.03125,
                      first_cycle_no_gc=False)
    mlsgd(problems, [transfer], p0, cfg, seed=1, evaluate=evaluate)
    g = np.asarray(grads)
    weighted = np.cumsum(g) / np.arange(1, len(g) + 1)  # T̄_k constant
    results[variant] = dict(final_avg=float(weighted[-1]),
                            tail_mean=float(g[-len(g) // 4:].mean()),
                            mid_mean=float(g[len(g) // 4:len(g) // 2].mean()),
                            curve=g)
  summary = {v: {k: r[k] for k in ("tail_mean", "mid_mean", "final_avg")}
             for v, r in results.items()}
  vr = results["det_vr"]
  others = [v for v in results if v != "det_vr"]
  claims.check("Table 3.1", "det GC + VR (no residual): |∇F_L|² at the cycle "
               "starts keeps falling (last quarter < 0.5 x second quarter) and "
               "ends below every other variant",
               vr["tail_mean"] < 0.5 * vr["mid_mean"] and all(
                   vr["tail_mean"] < results[v]["tail_mean"] for v in others),
               summary=summary)
  plateau = [v for v in others
             if results[v]["tail_mean"] > 0.5 * results[v]["mid_mean"]]
  claims.check("Table 3.1", "the other variants plateau (last quarter > 0.5 x "
               "second quarter of |∇F_L|²)", len(plateau) == len(others),
               plateaued=plateau, summary=summary)
  claims.check("Table 3.1", "stochastic GC without VR plateaus highest",
               results["stoch"]["tail_mean"] == max(r["tail_mean"]
                                                   for r in results.values()),
               summary=summary)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for v, r in results.items():
    ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], label=v)
  ax.set_yscale("log")
  ax.set_xlabel("V-cycle k")
  ax.set_ylabel("|∇F_L(w_{L,k,0})|²")
  ax.set_title("Table 3.1 behaviour: logistic regression, 2 levels, fixed α")
  ax.legend()
  fig.tight_layout()
  fig.savefig(out_dir / "table_3_1_behaviour.png", dpi=120)
  plt.close(fig)


def run(out_dir: Path, quick: bool):
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  claims = Claims("mlsgd")
  for item, rows in COUNTS.items():
    for kwargs, expected in rows:
      claims.equal(item, f"ODE-ResNet {kwargs} has {expected} parameters",
                   count(kwargs), expected, name="params")
  reason = cifar_available() or ("CIFAR-10 is present but the full runs need "
                                 "2-4.5 h each on an accelerator; run the configs")
  for item, claim in CIFAR_ITEMS.items():
    claims.not_run(item, claim, reason)
  quick_hierarchies(claims, quick)
  table_3_1(claims, out_dir, quick)
  return claims


REPRODUCTION = Reproduction(
    id="mlsgd", thesis="mlsgd",
    items=("Table 4.1", "Table 4.4", *CIFAR_ITEMS, "Table 3.1"),
    run=run, title="MLSGD: parameter counts, CIFAR tables (configs), Table 3.1 "
    "behaviour", cost="~15 min CPU (quick: ~3 min); CIFAR runs: hours, accelerator",
    smoke=("scikit-learn digits 8×8 with a small ODE-ResNet; 15 Table 3.1 "
           "cycles"))
