"""MLSGD figures: accuracy curves over wall time (Figs 4.3/4.4/4.7/4.8) and
the images with their 2×2-pooled versions (Fig 4.5)."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from nnopt.models.kernels import avg_pool2


def plot_curves(out_dir: Path, name: str, runs, title: str):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4))
  for variant, by_seed in runs.items():
    r = by_seed[min(by_seed)]
    if r["curve"]:
      t, acc, _ = zip(*r["curve"])
      ax.plot(np.asarray(t) / 60, acc, label=variant)
  ax.set_xlabel("wall time (min)")
  ax.set_ylabel("val (test split) accuracy")
  ax.set_title(title)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_dir / name, dpi=110)
  plt.close(fig)


def pooled_images_figure(out_dir: Path, ds) -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  x = np.asarray(ds.x_train[:6])
  pooled = np.asarray(avg_pool2(jnp.asarray(x)))
  fig, axes = plt.subplots(2, 6, figsize=(9, 3.2))
  for i in range(6):
    for row, img in ((0, x[i]), (1, pooled[i])):
      img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
      axes[row, i].imshow(img.squeeze())
      axes[row, i].axis("off")
  fig.tight_layout()
  path = out_dir / "fig_4_5_pooled_images.png"
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path.name
