"""Per-example gradient moments: nnopt's fast path (capture statistics,
squared outer products) vs a plain value_and_grad (target ≤ 1.5×) and vs the
vmap(grad) reference (target ≥ 3× faster at batch 128 on the MLP); peak
memory (XLA memory analysis) of both paths. The fast path and the plain
value_and_grad are timed interleaved (median over repetitions), so that a
shared machine's varying load does not bias their ratio.

    python experiments/bench/variance.py
"""

from __future__ import annotations

import os
import sys

import jax

sys.path.insert(0, os.path.dirname(__file__))
from _timing import peak_bytes, table, time_calls  # pylint: disable=wrong-import-position

from nnopt import losses  # pylint: disable=wrong-import-position
from nnopt.stats.capture import capture, layer_info  # pylint: disable=wrong-import-position
from nnopt.models import FNN, VGG, init_params  # pylint: disable=wrong-import-position
from nnopt.stats.captured_moments import moments_from_stats  # pylint: disable=wrong-import-position
from nnopt.stats.moments import batch_moments, model_example_loss  # pylint: disable=wrong-import-position


def main():
  loss = losses.softmax_cross_entropy
  rows = []
  key = jax.random.key(0)
  for name, model, x in (
      ("MLP 784-512-512-10, B=128", FNN((512, 512, 10), activation="relu"),
       jax.random.normal(key, (128, 784))),
      ("CNN VGG(16,32)+FC64, 16x16x3, B=128",
       VGG(stages=((16,), (32,)), fc=(64,), n_classes=10),
       jax.random.normal(key, (128, 16, 16, 3)))):
    y = jax.random.randint(jax.random.key(1), (x.shape[0],), 0, 10)
    params = init_params(model, jax.random.key(2), x)
    layers = layer_info(model, params, x)
    plain = jax.jit(jax.value_and_grad(
        lambda p: loss(model.apply({"params": p}, x), y)))

    def fast_fn(p):
      cap = capture(model, p, x, y, loss)
      return cap.loss, moments_from_stats(cap.stats, cap.grads, layers=layers)

    fast = jax.jit(fast_fn)
    ex = model_example_loss(model, loss)
    ref = jax.jit(lambda p: batch_moments(ex, p, x, y))
    times = time_calls({"plain": plain, "fast": fast}, params)
    t_plain, t_fast = times["plain"], times["fast"]
    t_ref = time_calls({"ref": ref}, params, repeats=5, number=3)["ref"]
    m_fast, m_ref = peak_bytes(fast, params), peak_bytes(ref, params)
    rows.append([name, f"{t_plain * 1e3:.2f}", f"{t_fast * 1e3:.2f}",
                 f"{t_ref * 1e3:.2f}", f"{t_fast / t_plain:.2f}",
                 f"{t_ref / t_fast:.1f}",
                 f"{(m_fast or 0) / 2**20:.1f}", f"{(m_ref or 0) / 2**20:.1f}"])
  print(table(rows, ["problem", "v&g ms", "fast ms", "vmap ms",
                     "fast/v&g (<=1.5)", "vmap/fast (>=3)", "fast MiB",
                     "vmap MiB"]))


if __name__ == "__main__":
  main()
