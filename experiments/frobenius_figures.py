"""Kreis ch. 5: the figures of the champions (loss over iterations and time,
layer gradient norms, factor spectra) and of Exp2's learning-rate grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from experiments.frobenius_setting import ma  # pylint: disable=wrong-import-position


def _plot_losses(res, setting, path, title):
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for method, r in res.items():
    curve = ma(r["diag"]["loss"], setting.window)
    steps = np.arange(len(curve)) + setting.window
    axes[0].semilogy(steps, curve, label=f"{method} α={r['lr']:.3g}")
    axes[1].semilogy(steps * r["time"], curve, label=method)
  axes[0].set_xlabel("iteration")
  axes[1].set_xlabel("time [s]")
  axes[0].legend()
  fig.suptitle(title)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _plot_norms(res, setting, path):
  rows = [("sgd", "euclidean"), ("frobenius", "euclidean"),
          ("frobenius", "frobenius")]
  fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
  for ax, (method, kind) in zip(axes, rows):
    norms = res[method]["diag"][kind]
    for j, layer in enumerate(setting.layers):
      ax.semilogy(norms[:, j], lw=0.6, label=layer)
    ax.set_title(f"{method}: {kind} norms", fontsize=9)
  axes[0].legend(fontsize=6)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _plot_spectra(res, setting, path, layers):
  spectra = res["frobenius"]["diag"]["spectra"]
  fig, axes = plt.subplots(len(layers), 2, figsize=(8, 2 * len(layers)),
                           squeeze=False)
  for i, layer in enumerate(layers):
    for j in range(2):
      ev = np.clip(spectra[layer][j], 1e-12, None)
      axes[i, j].semilogy(ev, lw=0.4)
      axes[i, j].set_title(f"{layer} {'A (inputs)' if j == 0 else 'G'}",
                           fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _plot_grid(res, setting, out):
  for method, fig_id in (("sgd", "5_8"), ("frobenius", "5_9")):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for lr, l in zip(res[method]["grid"], res[method]["losses"]):
      ax.semilogy(ma(l, setting.window), lw=0.7, label=f"{lr:.3g}")
    ax.legend(fontsize=5, ncol=2)
    ax.set_title(f"Exp2 {method}: all grid lrs")
    fig.savefig(out / f"fig{fig_id}_exp2_{method}_grid.png", dpi=80)
    plt.close(fig)
