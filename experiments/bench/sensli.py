"""Cost of a SensLI selection, measured against training in the same process.

Printed (ratios, no timing asserts):

1. one SensLI selection (``sensli_step``: fully extend, one lr-0 epoch of
   mini-batch gradients, merits, selection, insertion) ÷ one training epoch
   of the fully extended network (jitted SGD steps on the same batches);
   target ≤ 1.2×. Both are timed after compilation, median of repeats.
2. the selection's share of a whole engine run with the ``SensLI`` hook
   (wall time logged by the hook ÷ run wall time), compilation of every
   extended network's gradient included.
3. compilations per insertion (``Trainer.num_compilations``): target one
   per new architecture.
4. (with ``--torch-site``) a whole spiral SensLI run (FNN 2-5-2, full-batch
   GD lr 0.2, insertion after 450 of 1850 iterations) in a PyTorch
   reimplementation of the reference setting written from the spec (not
   the authors' code) vs nnopt's engine with the hook, one run and 30 runs
   on the engine's runs axis (RunsTrainer); report only, no target.

    python experiments/bench/sensli.py [--repeats 3] \
        [--torch-site /tmp/torchvenv/lib/python3.11/site-packages]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
import optax

from nnopt import growth, losses
from nnopt.data import load_dataset
from nnopt.models import FNN, VGG, init_params
from nnopt.engine.runs import RunsTrainer
from nnopt.engine.trainer import Trainer

CE = losses.softmax_cross_entropy


def _epoch_fn(model, batch_size, x, y):
  opt = optax.sgd(0.01)

  @jax.jit
  def step(params, state, xb, yb):
    g = jax.grad(lambda p: CE(model.apply({"params": p}, xb), yb))(params)
    u, state = opt.update(g, state, params)
    return optax.apply_updates(params, u), state

  def epoch(params):
    state = opt.init(params)
    perm = np.random.default_rng(0).permutation(len(x))
    for i in range(len(x) // batch_size):
      idx = perm[i * batch_size:(i + 1) * batch_size]
      params, state = step(params, state, x[idx], y[idx])
    return jax.block_until_ready(params)

  return epoch


def selection_vs_epoch(name, model, data, batch_size, repeats):
  x, y = data.x_train, data.y_train
  params = init_params(model, jax.random.key(0), x[:1])
  ext, ext_params, _ = growth.fully_extend(model, params)
  epoch = _epoch_fn(ext, batch_size, x, y)
  kwargs = dict(mode="epoch", batch_size=batch_size)
  growth.sensli_step(model, params, CE, x, y, **kwargs)  # compile
  epoch(ext_params)
  t_sel, t_epoch = [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    res = growth.sensli_step(model, params, CE, x, y, **kwargs)
    jax.block_until_ready(res.params)
    t_sel.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    epoch(ext_params)
    t_epoch.append(time.perf_counter() - t0)
  s, e = statistics.median(t_sel), statistics.median(t_epoch)
  return name, s, e, s / e


def run_share(name, model, data, batch_size, epochs, at):
  from nnopt.growth import sensitivity  # pylint: disable=g-import-not-at-top
  sensitivity._GRAD_FNS.clear()  # the share includes compiling the extended nets
  hook = growth.SensLI(CE, data.x_train, data.y_train, at_epochs=at,
                       mode="epoch", batch_size=batch_size)
  trainer = Trainer(model, CE, optax.sgd(0.05, momentum=0.9), data,
                    batch_size=batch_size, num_epochs=epochs, hooks=[hook],
                    progress=False, log_every=10**9)
  t0 = time.perf_counter()
  trainer.fit()
  total = time.perf_counter() - t0
  sel = sum(a["seconds"] for a in hook.attempts)
  inserted = sum(bool(a["chosen"]) for a in hook.attempts)
  return name, sel, total, sel / total, trainer.num_compilations, inserted


def torch_reference_run(data, seed, epochs=1850, at=450, lr=0.2):
  """FNN 2-5-2 SensLI run in PyTorch, as spec-sensli §2.7/§2.9 describe it."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  x = torch.tensor(np.asarray(data.x_train), dtype=torch.float32)
  y = torch.tensor(np.asarray(data.y_train), dtype=torch.long)
  layers = [torch.nn.Linear(2, 5), torch.nn.Linear(5, 2)]

  def forward(layers, x):
    for layer in layers[:-1]:
      x = torch.relu(layer(x))
    return layers[-1](x)

  loss_fn = torch.nn.CrossEntropyLoss()
  params = [p for layer in layers for p in layer.parameters()]
  opt = torch.optim.SGD(params, lr=lr)
  t0 = time.perf_counter()
  for epoch in range(epochs):
    if epoch == at:   # fully extend, lr-0 pass, merit, insert, new optimizer
      candidates = []
      ext = [layers[0]]
      for layer in layers[1:]:
        new = torch.nn.Linear(layer.in_features, layer.in_features)
        with torch.no_grad():
          new.weight.copy_(torch.eye(layer.in_features))
          new.bias.zero_()
        candidates.append(new)
        ext += [new, layer]
      for p in (p for layer in ext for p in layer.parameters()):
        p.grad = None
      loss_fn(forward(ext, x), y).backward()
      merits = [float((c.weight.grad ** 2).sum()) for c in candidates]
      best = int(np.argmax(merits))
      layers = layers[:best + 1] + [candidates[best]] + layers[best + 1:]
      params = [p for layer in layers for p in layer.parameters()]
      opt = torch.optim.SGD(params, lr=lr)
    opt.zero_grad()
    loss = loss_fn(forward(layers, x), y)
    loss.backward()
    opt.step()
  return time.perf_counter() - t0, float(loss)


def _runs_axis(model, spiral, seeds):
  """Wall time of ``len(seeds)`` SensLI runs as one RunsTrainer program
  (compilations included: each trainer compiles its own programs)."""
  base = optax.inject_hyperparams(optax.sgd)(learning_rate=0.2)
  hooks = lambda spec: [growth.SensLI(CE, spiral.x_train, spiral.y_train,
                                      at_epochs=[450], seed=spec.seed)]
  trainer = RunsTrainer(model, CE, base, spiral, runs=seeds, batch_size=None,
                        num_epochs=1850, hooks=hooks, progress=False,
                        log_every=10**9)
  t0 = time.perf_counter()
  trainer.fit()
  return time.perf_counter() - t0


def versus_torch(spiral, repeats):
  model = FNN((5, 2), init_scheme="pytorch")
  torch_times = [torch_reference_run(spiral, s)[0] for s in range(repeats)]
  engine_times = []
  for s in range(repeats):
    hook = growth.SensLI(CE, spiral.x_train, spiral.y_train, at_epochs=[450])
    trainer = Trainer(model, CE, optax.sgd(0.2), spiral, batch_size=None,
                      num_epochs=1850, hooks=[hook], seed=s, progress=False,
                      log_every=10**9)
    t0 = time.perf_counter()
    trainer.fit()
    engine_times.append(time.perf_counter() - t0)
  one = _runs_axis(model, spiral, [1])
  per_run = _runs_axis(model, spiral, list(range(30, 60))) / 30
  ref = statistics.median(torch_times)
  rows = [("PyTorch reference reimplementation", ref),
          ("nnopt engine + SensLI hook (incl. compile)", statistics.median(engine_times)),
          ("nnopt runs axis, 1 run (incl. compile)", one),
          ("nnopt runs axis, per run of 30 (incl. compile)", per_run)]
  print("\n4. spiral FNN SensLI run, 1850 iterations (report, no target)")
  print(f"{'implementation':48s} {'seconds':>8s} {'vs torch':>9s}")
  for name, t in rows:
    print(f"{name:48s} {t:8.3f} {t / ref:9.2f}")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--torch-site", default=None,
                      help="site-packages of a venv with torch (CPU)")
  args = parser.parse_args()
  spiral = load_dataset("spiral", seed=0)
  digits = load_dataset("digits", seed=0)
  fnn = FNN((10, 10, 2), init_scheme="pytorch")
  vgg = VGG(stages=((16,), (16,), (16,)), fc=(64,), n_classes=10,
            init_scheme="pytorch")
  print("\n1. one SensLI selection vs one epoch of the fully extended net "
        "(target <= 1.2x)")
  print(f"{'case':34s} {'selection s':>12s} {'epoch s':>10s} {'ratio':>7s}")
  for case in [selection_vs_epoch("spiral FNN 2-10-10-2, B=45", fnn, spiral, 45,
                                  args.repeats),
               selection_vs_epoch("digits VGG[16,16,16] op norm, B=64", vgg,
                                  digits, 64, args.repeats)]:
    print(f"{case[0]:34s} {case[1]:12.4f} {case[2]:10.4f} {case[3]:7.2f}")
  print("\n2./3. SensLI share of a whole engine run and compilations "
        "(target: 1 per new architecture)")
  print(f"{'case':34s} {'sel s':>7s} {'run s':>7s} {'share':>7s} "
        f"{'compiles':>9s} {'inserted':>9s}")
  for case in [run_share("spiral FNN, 100 ep, 3 insertions", fnn, spiral, 45,
                         100, [25, 50, 75]),
               run_share("digits VGG, 12 ep, 1 insertion", vgg, digits, 64, 12,
                         [6])]:
    print(f"{case[0]:34s} {case[1]:7.2f} {case[2]:7.2f} {case[3]:7.1%} "
          f"{case[4]:9d} {case[5]:9d}")
  if args.torch_site:
    import sys  # pylint: disable=g-import-not-at-top
    sys.path.append(args.torch_site)
    versus_torch(spiral, args.repeats)


if __name__ == "__main__":
  main()
