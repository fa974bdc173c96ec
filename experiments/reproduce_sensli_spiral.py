"""SensLI on the spiral (Kreis §4.3.3): Figs 4.2, 4.3, 4.5a–c, 4.6a, 4.7, 4.9a–c,
4.10a, 4.11a, 4.12a–b, with the settings of spec-sensli §4.1.

Every curve averages the spec's run count (30 or 40 runs; Fig 4.12 one seed).
Run ``r`` uses seed ``r`` for its initialization (PyTorch default) and batch
order in every variant, so the baseline X1 and SensLI share their start and
their full-batch trajectories coincide up to the insertion (the thesis's
"restored seed"); X2 (the final SensLI architecture trained from scratch)
draws its own initialization from the same seed. All runs go through
:func:`nnopt.growth.batched.run_batched` (vmap over runs, scan over epochs),
tested equal to the engine loop with the :class:`nnopt.growth.SensLI` hook.

Claims compare mean final training losses (mini-batch: the mean over the last
epoch's batches) and report the paired fraction of seeds where the claim holds
(spec P19: the thesis gives curves, no numbers). ``quick`` uses 3 runs and a
tenth of the epochs: a smoke test, not a reproduction.

Assumptions (spec P3, P4, P6): Exp13 (Fig 4.7/4.10a/4.11a) is a width-3
ResNet with one block, mini-batch 45, lr 0.01, insertions after 100/200/300 of
500 epochs, ResNet2 = 4 blocks; the ResNets have the thesis form (2.10) and
one candidate after each residual block (the thesis's FLOP tables).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt import growth, losses
from nnopt.data import load_dataset
from nnopt.growth.batched import run_batched
from nnopt.models import FNN, ResNet, init_params
from nnopt.reproduce import Claims, Reproduction

CE = losses.softmax_cross_entropy
B = 45


def fnn(*widths):
  return FNN(tuple(widths), init_scheme="pytorch")


def resnet(blocks):
  return ResNet(3, blocks, 2, activation="tanh", init_scheme="pytorch")


# name: figure items, baseline, epochs, batch, lr, insertion epochs, runs,
# variants {label: (model, insert?, rule, lr_factor)}
EXPERIMENTS = {
    "exp2": dict(items="Fig 4.5a", batch=None, lr=0.2, epochs=1850, at=[450], runs=30,
                 variants={"FNN LI": (fnn(5, 2), "max", 1.0),
                           "FNN1": (fnn(5, 2), None, 1.0),
                           "FNN2": (fnn(5, 5, 2), None, 1.0)}),
    "exp4": dict(items="Fig 4.5b", batch=B, lr=0.01, epochs=1850, at=[450], runs=40,
                 variants={"FNN LI": (fnn(5, 2), "max", 1.0),
                           "FNN1": (fnn(5, 2), None, 1.0),
                           "FNN2": (fnn(5, 5, 2), None, 1.0)}),
    "exp3": dict(items="Fig 4.5c", batch=None, lr=0.1, epochs=1850, at=[450], runs=30,
                 variants={"ResNet LI": (resnet(1), "max", 1.0),
                           "ResNet1": (resnet(1), None, 1.0),
                           "ResNet2": (resnet(2), None, 1.0)}),
    "exp13": dict(items="Fig 4.7, 4.10a, 4.11a", batch=B, lr=0.01, epochs=500,
                  at=[100, 200, 300], runs=30,
                  variants={"ResNet LI": (resnet(1), "max", 1.0),
                            "ResNet1": (resnet(1), None, 1.0),
                            "ResNet2": (resnet(4), None, 1.0),
                            "LI_other": (resnet(1), "min", 1.0),
                            "Random": (resnet(1), "random", 1.0)}),
    "exp6": dict(items="Fig 4.9a", batch=None, lr=0.2, epochs=1850, at=[450], runs=30,
                 variants={"SensLI": (fnn(4, 4, 2), "max", 1.0),
                           "LI_other": (fnn(4, 4, 2), "min", 1.0)}),
    "exp8": dict(items="Fig 4.9b", batch=B, lr=0.01, epochs=550, at=[250], runs=30,
                 variants={"SensLI": (fnn(10, 10, 2), "max", 2.0),
                           "LI_other": (fnn(10, 10, 2), "min", 2.0)}),
    "exp7": dict(items="Fig 4.9c", batch=None, lr=0.1, epochs=1850, at=[450], runs=30,
                 variants={"SensLI": (resnet(2), "max", 0.7),
                           "LI_other": (resnet(2), "min", 0.7)}),
}
TIMING = {  # Fig 4.12: one seed, 8 insertion times
    "exp10": dict(items="Fig 4.12a", batch=None, lr=0.2, epochs=1850,
                  times=list(range(150, 851, 100)), model=fnn(5, 2), lr_factor=0.8,
                  extended=fnn(5, 5, 2), extended_lr=0.16),
    "exp11": dict(items="Fig 4.12b", batch=B, lr=0.01, epochs=1050,
                  times=list(range(50, 401, 50)), model=fnn(10, 10, 2), lr_factor=1.0),
}


def _final(curve: np.ndarray, batch) -> np.ndarray:
  """Per-run final training loss: last step (full batch) or last epoch's mean."""
  steps = 1 if batch is None else 450 // batch
  return curve[:, -steps:].mean(axis=1)


def _run(spec, data, quick, variants=None):
  runs = 3 if quick else spec["runs"]
  scale = 10 if quick else 1
  out = {}
  for label, (model, rule, lr_factor) in (variants or spec["variants"]).items():
    out[label] = run_batched(
        model, CE, data, seeds=list(range(runs)), learning_rate=spec["lr"],
        num_epochs=spec["epochs"] // scale, batch_size=spec["batch"],
        insert_at=[a // scale for a in spec["at"]] if rule else [],
        rule=rule or "max", lr_factor=lr_factor,
        record_grad_norms=(spec is EXPERIMENTS["exp4"] and label == "FNN LI"))
  return out


def _plot(path, title, results, spec, quick, log=True):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(7, 6), dpi=100)
  FigureCanvasAgg(fig)
  ax1, ax2 = fig.subplots(2, 1)
  steps = 1 if spec["batch"] is None else 450 // spec["batch"]
  scale = 10 if quick else 1
  for label, res in results.items():
    ax1.plot(res.train_loss.mean(0), label=label, lw=0.8)
    ax2.plot(100 * res.test_error.mean(0), label=label, lw=0.8)
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
  ax1.set_title(title)
  fig.tight_layout()
  fig.savefig(path)


def _compare(claims, item, claim, results, spec, better, worse, *, strict=True):
  a = _final(results[better].train_loss, spec["batch"])
  b = _final(results[worse].train_loss, spec["batch"])
  ok = a.mean() < b.mean() if strict else a.mean() <= b.mean()
  claims.check(item, claim, ok, {
      f"mean_final_loss_{better}": float(a.mean()),
      f"mean_final_loss_{worse}": float(b.mean()),
      "paired_fraction_better": float(np.mean(a < b)),
      "mean_final_test_error_pct": {
          better: float(100 * results[better].test_error[:, -1].mean()),
          worse: float(100 * results[worse].test_error[:, -1].mean())},
      "runs": len(a)})


def _heatmaps(data, out_dir, claims, quick):
  """Figs 4.2/4.3: |∇| of the new layer over the first 3 steps after insertion."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  x, y = data.x_train, data.y_train
  fig = Figure(figsize=(9, 8), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(4, 3)
  rows = []
  for row, (model, batch, lr, pre) in enumerate([
      (fnn(5, 2), None, 0.2, 450), (fnn(5, 2), B, 0.01, 450),
      (resnet(1), None, 0.1, 450)]):
    pre = pre // (10 if quick else 1)
    res = run_batched(model, CE, data, seeds=[0], learning_rate=lr,
                      num_epochs=pre, batch_size=batch)
    params = res.params[0]
    cand = growth.candidates(model)[0]
    model2, params = growth.insert(model, params, [cand])
    grad = jax.jit(jax.grad(lambda p, xb, yb: CE(model2.apply({"params": p}, xb), yb)))
    opt = optax.sgd(lr)
    state = opt.init(params)
    perm = np.random.default_rng([0, pre]).permutation(450)
    grads = []
    for k in range(3):
      idx = np.arange(450) if batch is None else perm[k * batch:(k + 1) * batch]
      g = grad(params, x[idx], y[idx])
      grads.append(g[cand.name])
      updates, state = opt.update(g, state, params)
      params = optax.apply_updates(params, updates)
    rows.append((model2, grads))
    for k, g in enumerate(grads):
      leaves = ([g["kernel"]] if "kernel" in g else
                [g["inner"]["kernel"], g["outer"]["kernel"]])
      for j, leaf in enumerate(leaves):
        ax = axes[row + j, k]
        ax.imshow(np.abs(np.asarray(leaf)).T, cmap="Greys")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[row, 0].set_ylabel(["FNN full", "FNN mini", "ResNet W1", ""][row])
  axes[3, 0].set_ylabel("ResNet W2")
  fig.suptitle("|gradient| of the new layer, 3 steps after insertion")
  fig.savefig(out_dir / "fig_4_2_4_3_heatmaps.png")

  def distinct_rows(m):
    m = np.abs(np.asarray(m))
    rows_ = m[np.abs(m).sum(1) > 0]
    if len(rows_) < 2:
      return True
    d = min(np.abs(rows_[i] - rows_[j]).max() for i in range(len(rows_))
            for j in range(i + 1, len(rows_)))
    return d > 1e-3 * m.max()

  for label, (_, grads) in zip(["full-batch", "mini-batch"], rows[:2]):
    stats = [float(np.std(np.abs(g["kernel"])) / np.mean(np.abs(g["kernel"])))
             for g in grads]
    ok = all(distinct_rows(g["kernel"]) and s > 0.05 for g, s in zip(grads, stats))
    claims.check("Fig 4.2", f"FNN ({label}): the new layer's gradient over the "
                 "first 3 steps is non-uniform, no two new neurons get the same "
                 "update (no symmetry problem)", ok,
                 coefficient_of_variation=stats)
  g = rows[2][1]
  w1 = [float(np.abs(np.asarray(s["inner"]["kernel"])).max()) for s in g]
  w2 = [float(np.abs(np.asarray(s["outer"]["kernel"])).max()) for s in g]
  claims.check("Fig 4.3", "ResNet: ∇W1 of the new block is exactly 0 at the "
               "first step and non-zero from the second; ∇W2 non-zero at step 1",
               w1[0] == 0.0 and w1[1] > 0 and w2[0] > 0, max_abs_grad_W1=w1,
               max_abs_grad_W2=w2)


def _grad_norm_claims(res, spec, claims, out_dir, quick):
  """Fig 4.6a: per-leaf ‖∇W‖_F over one run (run 0 of Exp4's SensLI)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  norms = res.grad_norms[0]
  new = [p for p in norms if p.startswith("dense_ins_")][0]
  start = spec["at"][0] // (10 if quick else 1) * (450 // B)
  fig = Figure(figsize=(7, 4), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  for path, series in norms.items():
    ax.plot(series, lw=0.5, label=path, c="tab:blue" if path == new else None)
  ax.set_yscale("log")
  ax.legend(fontsize=8)
  ax.set_xlabel("iteration")
  ax.set_ylabel("‖∇W‖_F (mini-batch)")
  fig.savefig(out_dir / "fig_4_6a_grad_norms.png")
  after = {p: float(np.nanmean(s[start:])) for p, s in norms.items()}
  others = [v for p, v in after.items() if p != new]
  ratio = after[new] / float(np.median(others))
  claims.check("Fig 4.6a", "the new layer's gradient norm is in the same range as "
               "the other layers' (within a factor 100 of their median)",
               0.01 <= ratio <= 100, mean_norm_after_insertion=after,
               ratio_to_median=ratio)
  claims.check("Fig 4.6a", "FNN: the new layer's gradient norm exceeds the "
               "others' after insertion", after[new] > max(others),
               mean_norm_after_insertion=after)


def _timing(spec, data, quick, claims, out_dir):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  scale = 10 if quick else 1
  epochs = spec["epochs"] // scale
  base = run_batched(spec["model"], CE, data, seeds=[0], learning_rate=spec["lr"],
                     num_epochs=epochs, batch_size=spec["batch"])
  finals = {}
  fig = Figure(figsize=(7, 4), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  ax.plot(base.train_loss[0], c="k", lw=1, label="no insertion")
  for t in spec["times"]:
    res = run_batched(spec["model"], CE, data, seeds=[0], learning_rate=spec["lr"],
                      num_epochs=epochs, batch_size=spec["batch"],
                      insert_at=[t // scale], lr_factor=spec["lr_factor"])
    finals[t] = float(_final(res.train_loss, spec["batch"])[0])
    ax.plot(res.train_loss[0], lw=0.6, label=f"insert at {t}")
  if "extended" in spec:
    ext = run_batched(spec["extended"], CE, data, seeds=[0],
                      learning_rate=spec["extended_lr"], num_epochs=epochs,
                      batch_size=spec["batch"])
    ax.plot(ext.train_loss[0], c="gray", ls="--", lw=1, label="FNN2")
  ax.set_yscale("log")
  ax.legend(fontsize=6)
  item = spec["items"]
  fig.savefig(out_dir / f"fig_{item.split()[-1].replace('.', '_')}_timing.png")
  base_final = float(_final(base.train_loss, spec["batch"])[0])
  claims.check(item, "every one of the 8 insertion times ends below the "
               "no-insertion baseline", all(v < base_final for v in finals.values()),
               final_loss_by_time=finals, final_loss_no_insertion=base_final)
  times = sorted(finals)
  best = min(finals, key=finals.get)
  claims.check(item, "inserting late reduces the benefit (the latest time is "
               "worse than the best)", finals[times[-1]] > finals[best],
               best_time=best, latest_time=times[-1])
  rank = np.corrcoef(np.argsort(np.argsort(times)),
                     np.argsort(np.argsort([finals[t] for t in times])))[0, 1]
  if item.endswith("a"):
    claims.check(item, "full batch: the best time in the thesis's single "
                 "instance is after 450 iterations (curves non-monotone)",
                 best == 450, best_time=best, spearman_time_vs_loss=float(rank))
  else:
    claims.check(item, "mini-batch: roughly monotone, earlier insertion gives "
                 "lower loss (Spearman(time, final loss) > 0.5)", rank > 0.5,
                 spearman_time_vs_loss=float(rank))


def run(out_dir: Path, quick: bool) -> Claims:
  out_dir = Path(out_dir)
  data = load_dataset("spiral", seed=0)
  claims = Claims("kreis")
  _heatmaps(data, out_dir, claims, quick)
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
    _compare(claims, item, f"{li} reaches a lower loss than {x1} after insertion",
             res, spec, li, x1)
    if name == "exp4":
      _compare(claims, item, "mini-batch FNN: SensLI even beats FNN2", res, spec,
               li, x2, strict=False)
    model1, model2 = spec["variants"][x1][0], spec["variants"][x2][0]
    at, epochs = spec["at"][0], spec["epochs"]
    ext = growth.fully_extend(model1, init_params(model1, jax.random.key(0),
                                                  data.x_train[:1]))[0]
    li_flops = growth.run_flops([(at, model1), (epochs - at, model2)], [ext], (2,))
    x2_flops = growth.run_flops([(epochs, model2)], [], (2,))
    claims.check(item, f"{li} is cheaper than {x2} (FLOPs per sample, Table 4.4)",
                 li_flops["total"] < x2_flops["total"], li=li_flops["total"],
                 x2=x2_flops["total"])
  _grad_norm_claims(results["exp4"]["FNN LI"], EXPERIMENTS["exp4"], claims,
                    out_dir, quick)
  spec13, r13 = EXPERIMENTS["exp13"], results["exp13"]
  _compare(claims, "Fig 4.7", "ResNet LI (3 insertions) beats ResNet1", r13,
           spec13, "ResNet LI", "ResNet1")
  _compare(claims, "Fig 4.7", "ResNet LI (3 insertions) beats even ResNet2",
           r13, spec13, "ResNet LI", "ResNet2")
  _compare(claims, "Fig 4.10a", "argmax clearly better than argmin with 3 "
           "insertions", r13, spec13, "ResNet LI", "LI_other")
  _compare(claims, "Fig 4.11a", "argmax better than a random position with 3 "
           "insertions", r13, spec13, "ResNet LI", "Random")
  for name, item in [("exp6", "Fig 4.9a"), ("exp8", "Fig 4.9b"), ("exp7", "Fig 4.9c")]:
    spec, res = EXPERIMENTS[name], results[name]
    same = float(np.mean([a["chosen"] == b["chosen"] for a, b in zip(
        [r[0] for r in res["SensLI"].attempts], [r[0] for r in res["LI_other"].attempts])]))
    _compare(claims, item, "inserting at the largest merit ends at a loss ≤ the "
             "smallest merit's", res, spec, "SensLI", "LI_other", strict=False)
    claims[-1].measured["fraction_runs_same_position"] = same
  for spec in TIMING.values():
    _timing(spec, data, quick, claims, out_dir)
  return claims


REPRODUCTION = Reproduction(
    id="sensli_spiral", thesis="kreis",
    items=("Fig 4.2", "Fig 4.3", "Fig 4.5a", "Fig 4.5b", "Fig 4.5c", "Fig 4.6a",
           "Fig 4.7", "Fig 4.9a", "Fig 4.9b", "Fig 4.9c", "Fig 4.10a",
           "Fig 4.11a", "Fig 4.12a", "Fig 4.12b"),
    run=run, title="SensLI spiral experiments (FNN, ResNet): insertion vs "
    "baselines, position rules, timing", cost="~20 min CPU (quick: ~2 min)",
    smoke="the spiral data with 3 runs per curve and a tenth of the epochs")
