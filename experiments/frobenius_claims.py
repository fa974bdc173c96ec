"""Kreis ch. 5: the checked claims of each experiment's champions and grids
(Figs 5.1–5.12), one function per experiment."""

from __future__ import annotations

import numpy as np

from experiments.frobenius_figures import (_plot_grid, _plot_losses,
                                           _plot_norms, _plot_spectra)
from experiments.frobenius_setting import ma


def _spread(norms):
  """Mean over the last tenth of steps of the std of log10 layer norms."""
  tail = norms[-max(1, len(norms) // 10):]
  return float(np.mean(np.std(np.log10(tail + 1e-30), axis=1)))


def claims_exp1(claims, res, setting, out):
  _plot_losses(res, setting, out / "fig5_1_exp1_loss.png", "Exp1 champions")
  _plot_norms(res, setting, out / "fig5_2_exp1_norms.png")
  _plot_spectra(res, setting, out / "fig5_3_exp1_spectra.png", setting.layers)
  sgd, pre = res["sgd"], res["frobenius"]
  if not setting.quick:
    claims.check("Fig 5.1", "champions: SGD ≈ 0.304 (grid index 3) and "
                 "preconditioned ≈ 5.3e-4 (index 19), ±2 grid points",
                 abs(sgd["best"] - 3) <= 2 and abs(pre["best"] - 19) <= 2,
                 sgd_index=sgd["best"], pre_index=pre["best"])
  ratio = pre["finals"][pre["best"]] / sgd["finals"][sgd["best"]]
  claims.check("Fig 5.1", "no clear win for the preconditioner: final MA loss "
               "ratio precond/SGD ≳ 0.8", ratio >= 0.8, ratio=ratio)
  claims.check("Fig 5.1", "the preconditioner is slower per iteration",
               pre["time"] > sgd["time"], time_pre=pre["time"],
               time_sgd=sgd["time"])
  e_sgd = sgd["diag"]["euclidean"]
  claims.check("Fig 5.2", "SGD: layer 1 has the largest Euclidean gradient "
               "norm (median over the run)",
               int(np.argmax(np.median(e_sgd, 0))) == 0,
               medians=np.median(e_sgd, 0))
  e_pre = pre["diag"]["euclidean"]
  claims.check("Fig 5.2", "preconditioned run: Euclidean norms generally "
               "smaller than SGD's (median over run and layers)",
               np.median(e_pre) < np.median(e_sgd), pre=np.median(e_pre),
               sgd=np.median(e_sgd))
  rough = lambda n: float(np.median(np.abs(np.diff(np.log10(n + 1e-30), axis=0))))
  claims.check("Fig 5.2", "preconditioned norms are noisier (median |Δlog10| "
               "between steps larger than SGD's)", rough(e_pre) > rough(e_sgd),
               pre=rough(e_pre), sgd=rough(e_sgd))
  spectra = pre["diag"]["spectra"]
  frac = np.mean([np.mean(spectra[l][1][-1] < setting.damping)
                  for l in setting.layers])
  claims.check("Fig 5.3", "G: most eigenvalues ≈ 0 (< γ = 0.01 at the end, "
               "fraction over layers > 0.5)", frac > 0.5, fraction=frac)
  dom = [float(spectra[l][0][-1][-1] / max(spectra[l][0][-1][-2], 1e-30))
         for l in setting.layers[1:]]
  claims.check("Fig 5.3", "A (hidden layers): one dominant eigenvalue, ≥ 3× "
               "the second", min(dom) >= 3, ratios=dom)
  top = [float(spectra[l][0][-1][-1] / spectra[l][0][0][-1])
         for l in setting.layers]
  claims.check("Fig 5.3", "A: magnitudes stable (top eigenvalue end/start "
               "within 10×)", all(0.1 < t < 10 for t in top), ratios=top)


def claims_exp2(claims, res, setting, out):
  _plot_losses(res, setting, out / "fig5_4_exp2_loss.png", "Exp2 champions")
  _plot_norms(res, setting, out / "fig5_5_exp2_norms.png")
  half = len(setting.layers) // 2
  _plot_spectra(res, setting, out / "fig5_6_exp2_spectra_encoder.png",
                setting.layers[:half])
  _plot_spectra(res, setting, out / "fig5_7_exp2_spectra_decoder.png",
                setting.layers[half:])
  sgd, pre = res["sgd"], res["frobenius"]
  s_final, p_final = sgd["finals"][sgd["best"]], pre["finals"][pre["best"]]
  claims.check("Fig 5.4", "preconditioned champion ends much lower than SGD "
               "(ratio ≲ 0.5)", p_final / s_final <= 0.5,
               ratio=p_final / s_final, sgd=s_final, pre=p_final)
  curve = ma(pre["diag"]["loss"], setting.window)
  below = np.nonzero(curve < s_final)[0]
  escape = int(below[0] + setting.window) if len(below) else None
  claims.check("Fig 5.4", "the preconditioned run leaves the SGD plateau "
               "(its MA loss drops below SGD's final loss)", escape is not None,
               escape_iteration=escape)
  t_pre = pre["time"] * setting.steps
  n_sgd = min(setting.steps, int(t_pre / sgd["time"]))
  s_curve = ma(sgd["diag"]["loss"], setting.window)
  s_at = s_curve[min(len(s_curve) - 1, max(0, n_sgd - setting.window))]
  claims.check("Fig 5.4", "better at equal wall-clock time (SGD loss at the "
               "preconditioned run's total time is higher)", curve[-1] < s_at,
               pre=curve[-1], sgd_at_same_time=s_at)
  claims.check("Fig 5.5", "preconditioned layers' norms become more similar "
               "than SGD's (smaller spread of log10 norms at the end)",
               _spread(pre["diag"]["euclidean"]) < _spread(sgd["diag"]["euclidean"]),
               pre=_spread(pre["diag"]["euclidean"]),
               sgd=_spread(sgd["diag"]["euclidean"]))
  spectra = pre["diag"]["spectra"]
  for item, layers in (("Fig 5.6", setting.layers[:half]),
                       ("Fig 5.7", setting.layers[half:])):
    jump = [float(spectra[l][1][-1][-1] / max(spectra[l][1][0][-1], 1e-30))
            for l in layers]
    claims.check(item, "G spectra change scale during training (top "
                 "eigenvalue end/start > 10× or < 0.1× in most layers)",
                 np.mean([(j > 10 or j < 0.1) for j in jump]) > 0.5, ratios=jump)
    dom = [float(spectra[l][0][-1][-1] / max(spectra[l][0][-1][-2], 1e-30))
           for l in layers if spectra[l][0].shape[-1] > 1 and l != "dense_0"]
    claims.check(item, "each (hidden) A has one dominant eigenvalue ≥ 3× the "
                 "second", min(dom) >= 3, ratios=dom)
  _plot_grid(res, setting, out)
  best_pre = float(np.min(pre["finals"]))
  claims.check("Fig 5.8", "no SGD lr ends below the preconditioned champion's "
               "loss (SGD stuck at its plateau)", np.min(sgd["finals"]) > best_pre,
               sgd_finals=sgd["finals"], pre_best=best_pre)
  mid = [ma(l, setting.window)[len(l) // 4 - setting.window] if len(l) // 4 >
         setting.window else l[len(l) // 4] for l in sgd["losses"]]
  order = np.argsort(sgd["grid"])[::-1]
  claims.check("Fig 5.8", "larger SGD lrs reach the plateau sooner (loss at a "
               "quarter of training decreases with lr)",
               bool(np.all(np.diff(np.asarray(mid)[order]) >= 0)),
               lrs=np.asarray(sgd["grid"])[order], loss_quarter=np.asarray(mid)[order])
  claims.check("Fig 5.9", "every displayed preconditioned lr ends below the "
               "best SGD run", bool(np.all(pre["finals"] < np.min(sgd["finals"]))),
               pre_finals=pre["finals"], sgd_best=np.min(sgd["finals"]))


def claims_exp3(claims, res, setting, out):
  _plot_losses(res, setting, out / "fig5_10_exp3_loss.png", "Exp3 champions")
  _plot_norms(res, setting, out / "fig5_11_exp3_norms.png")
  _plot_spectra(res, setting, out / "fig5_12_exp3_spectra.png", setting.layers)
  sgd, pre = res["sgd"], res["frobenius"]
  early = setting.window + setting.steps // 10
  p_curve, s_curve = ma(pre["diag"]["loss"], setting.window), ma(
      sgd["diag"]["loss"], setting.window)
  claims.check("Fig 5.10", "preconditioned better from the start (MA loss "
               "lower at 10% of training and at the end)",
               p_curve[early - setting.window] < s_curve[early - setting.window]
               and p_curve[-1] < s_curve[-1],
               pre_early=p_curve[early - setting.window],
               sgd_early=s_curve[early - setting.window], pre_final=p_curve[-1],
               sgd_final=s_curve[-1])
  n_sgd = min(len(s_curve) - 1, int(pre["time"] * setting.steps / sgd["time"])
              - setting.window)
  claims.check("Fig 5.10", "preconditioned lower at equal wall-clock time",
               p_curve[-1] < s_curve[max(0, n_sgd)], pre=p_curve[-1],
               sgd_same_time=s_curve[max(0, n_sgd)])
  longer = setting.train("sgd", [sgd["lr"]], epochs=3 * setting.epochs)["loss"][0]
  claims.check("Fig 5.10", "SGD run 3× longer still does not reach the "
               "preconditioned final loss", ma(longer, setting.window)[-1] >
               p_curve[-1], sgd_3x=ma(longer, setting.window)[-1],
               pre=p_curve[-1])
  drop = lambda n: float(np.median(n[-setting.window:], 0).min() /
                         np.median(n[:setting.window], 0).max())
  claims.check("Fig 5.11", "preconditioned Euclidean and Frobenius-type norms "
               "fall by ≥ 10× (end/start); SGD's by less than that",
               drop(pre["diag"]["euclidean"]) < 0.1 and
               drop(pre["diag"]["frobenius"]) < 0.1 and
               drop(sgd["diag"]["euclidean"]) > 0.1,
               pre_euclidean=drop(pre["diag"]["euclidean"]),
               pre_frobenius=drop(pre["diag"]["frobenius"]),
               sgd=drop(sgd["diag"]["euclidean"]))
  top = np.stack([pre["diag"]["spectra"][l][1][:, -1] for l in setting.layers])
  scale = top[:, -setting.window:].mean(1) / top[:, :setting.window].mean(1)
  peaks = top.max(1) / np.median(top, 1)
  claims.check("Fig 5.12", "G spectra: no overall scale change (top "
               "eigenvalue end/start within 10×) but transient peaks (max ≥ 3× "
               "the median over time)",
               bool(np.all((scale > 0.1) & (scale < 10)) and np.all(peaks >= 3)),
               scale=scale, peaks=peaks)
