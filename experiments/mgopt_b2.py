"""Kreis App. B.2 (Figs. 3.1/3.2): the quadratic, one run, all seeds and
operators as one compiled program, the figure, and its timing (issue 13).

The B.2 quadratic (n = 50, eigenvalues U(0.1, 0.5) ×25 and U(1, 5) ×25, Haar
rotation, b ~ N(0, I)), θ⁰ ~ N(0, I) (pitfall P1), the literal uniform noise
of the B.2 snippet (P2), 50 SGD steps, one cgc gated by (3.4) with κ1 = 0.5,
κ2 = 1e-3 on the exact gradient, 50 coarse SGD steps on the Galerkin cgc
problem with the exact shift and noisy coarse gradients (P3), α_cgc = 1, 150
more SGD steps.

:func:`run_b2` is one seed and one operator (the restriction built inside);
:func:`b2_curves` runs every (operator, seed) pair as one
``jit(vmap(b2_run))`` over stacked quadratics, θ⁰, keys and restrictions
(the eigenvector restrictions are computed per seed before, batched), with
the step size traced, so Figs 3.1 and 3.2 share one compilation.
:func:`loop_curves` is the per-seed loop that the program replaces.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt.multilevel import (Quadratic, coarse_solve, eigen_restriction,
                              galerkin_quadratic, gate, matrix_transfer)

OPERATORS = ("sgd", "largest", "smallest", "random")
LABELS = {"sgd": "SGD", "largest": "largeev", "smallest": "smallev",
          "random": "randomev"}
COLORS = {"sgd": "tab:blue", "largest": "tab:red", "smallest": "tab:green",
          "random": "tab:orange"}
N, N_COARSE = 50, 25
SIGA = SIGB = 0.1
#: The key of the 'random' operator's eigenvector choice (one for all seeds).
RANDOM_OPERATOR_SEED = 99


def b2_problem(seed: int):
  """The B.2 quadratic (eigenvectors are the rows of Q) and θ⁰ ~ N(0, I)."""
  from scipy.stats import special_ortho_group  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  lam = np.concatenate([rng.uniform(0.1, 0.5, 25), rng.uniform(1.0, 5.0, 25)])
  Q = special_ortho_group.rvs(N, random_state=rng)
  A = Q.T @ np.diag(lam) @ Q
  b = rng.normal(size=N)
  theta0 = rng.normal(size=N)
  return Quadratic(jnp.asarray(A), jnp.asarray(b)), jnp.asarray(theta0)


def noisy_data(quad: Quadratic, key):
  """B.2's literal snippet: Ã = A + θᵀθ (a scalar!) − (2/3)σ_a I, b̃ = b + ε."""
  k1, k2 = jax.random.split(key)
  t = jax.random.uniform(k1, (N,), minval=-SIGA, maxval=SIGA)
  eps = jax.random.uniform(k2, (), minval=-SIGB, maxval=SIGB)
  return quad.A + t @ t - 2.0 / 3.0 * SIGA * jnp.eye(N), quad.b + eps


def restriction(A, which: str):
  """The B.2 restriction: 25 eigenvector rows of A (Def. 3.6 for 'largest')."""
  return eigen_restriction(A, N_COARSE, which,
                           jax.random.key(RANDOM_OPERATOR_SEED))


def b2_run(quad: Quadratic, theta0, key, lr, R=None, use_cgc=True):
  """f − f* over 50 + cgc + 150 steps, the gate decision and ratio.

  Args:
    quad, theta0, key: the seed's quadratic, start and noise key.
    lr: fine and coarse SGD step (a float or a traced scalar).
    R: the restriction (R_p = R_g, P_p = Rᵀ); ``None`` runs plain SGD.
    use_cgc: ``False`` turns the cgc off (plain SGD) with ``R`` present, so
      that SGD and the cgc operators can share one vmapped program.

  Returns:
    ``(curve, taken, ratio)``: f − f* at θ⁰, after each of the 50 steps,
    after the cgc and after each of the 150 steps (202 values); whether the
    cgc was applied; the gate ratio ‖R∇f‖/‖∇f‖ (NaN for SGD).
  """
  fstar = quad.value(quad.minimizer())

  def sgd(theta, keys):
    def body(t, k):
      A, b = noisy_data(quad, k)
      t = t - lr * (A @ t - b)
      return t, quad.value(t) - fstar
    return jax.lax.scan(body, theta, keys)

  keys = jax.random.split(key, 3)
  theta, pre = sgd(theta0, jax.random.split(keys[0], 50))
  if R is None:
    taken, ratio = jnp.zeros((), bool), jnp.nan
    after = theta
  else:
    transfer = matrix_transfer(R)
    passed, ratio = gate(quad.grad(theta), transfer, "exp_B2", 0.5, 1e-3)
    coarse = galerkin_quadratic(quad, transfer)
    ref = R @ theta
    shift = R @ quad.grad(theta) - coarse.grad(ref)  # exact v̄ (P3)

    def coarse_grad(tc, k):
      A, b = noisy_data(quad, k)
      return R @ (A @ (R.T @ tc)) - R @ b + shift

    theta_c = coarse_solve(coarse_grad, ref, jax.random.split(keys[1], 50),
                           optax.sgd(lr))
    taken = passed & use_cgc
    after = jnp.where(taken, theta + R.T @ (theta_c - ref), theta)
    ratio = jnp.where(use_cgc, ratio, jnp.nan)
  _, post = sgd(after, jax.random.split(keys[2], 150))
  start = quad.value(theta0) - fstar
  curve = jnp.concatenate([start[None], pre, (quad.value(after) - fstar)[None],
                           post])
  return curve, taken, ratio


def run_b2(quad: Quadratic, theta0, key, lr: float, which: str):
  """One seed and operator: :func:`b2_run` with the restriction of ``which``."""
  R = None if which == "sgd" else restriction(quad.A, which)
  return b2_run(quad, theta0, key, lr, R)


_run_b2 = jax.jit(run_b2, static_argnums=(3, 4))


@jax.jit
def _program(quad, theta0, keys, lr, R, use_cgc):
  return jax.vmap(b2_run, in_axes=(0, 0, 0, None, 0, 0))(quad, theta0, keys,
                                                         lr, R, use_cgc)


def _problems(seeds, problems):
  return [b2_problem(s) for s in seeds] if problems is None else problems


def _as_dicts(curves, taken, ratios):
  return ({w: np.asarray(c) for w, c in zip(OPERATORS, curves)},
          {w: [bool(x) for x in t] for w, t in zip(OPERATORS, taken)},
          {w: [float(x) for x in r] for w, r in zip(OPERATORS, ratios)})


def b2_curves(seeds, lr: float, problems=None):
  """Every operator × seed as one compiled program (float64).

  Returns:
    ``(curves, taken, ratios)`` keyed by operator: curves (seeds, 202), and
    per seed whether the cgc was taken and the gate ratio.
  """
  with jax.enable_x64(True):
    problems = _problems(seeds, problems)
    A = jnp.stack([q.A for q, _ in problems])
    b = jnp.stack([q.b for q, _ in problems])
    theta0 = jnp.stack([t for _, t in problems])
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    # One restriction per (operator, seed); SGD's is unused (use_cgc off).
    Rs = [jnp.zeros((len(seeds), N_COARSE, N)) if w == "sgd" else
          jax.vmap(lambda a, w=w: restriction(a, w))(A) for w in OPERATORS]
    k = len(OPERATORS)
    tile = lambda x: jnp.concatenate([x] * k)  # noqa: E731
    use = jnp.repeat(jnp.asarray([w != "sgd" for w in OPERATORS]), len(seeds))
    curves, taken, ratios = _program(Quadratic(tile(A), tile(b)), tile(theta0),
                                     tile(keys), jnp.asarray(lr),
                                     jnp.concatenate(Rs), use)
    shape = (k, len(seeds))
    return _as_dicts(np.asarray(curves).reshape(shape + (-1,)),
                     np.asarray(taken).reshape(shape),
                     np.asarray(ratios).reshape(shape))


def loop_curves(seeds, lr: float, problems=None):
  """The same as :func:`b2_curves`, one jitted run per seed and operator."""
  out = [], [], []
  with jax.enable_x64(True):
    problems = _problems(seeds, problems)
    for w in OPERATORS:
      runs = [_run_b2(q, t, jax.random.key(s), lr, w)
              for s, (q, t) in zip(seeds, problems)]
      for o, x in zip(out, zip(*runs)):
        o.append(np.stack([np.asarray(v) for v in x]))
  return _as_dicts(*out)


def figure_b2(out_dir: Path, lr: float, seeds, name: str):
  """Runs :func:`b2_curves` and plots seed ``seeds[0]`` and the mean of all
  (``<name>.png``); returns what :func:`b2_curves` returns."""
  curves, taken, ratios = b2_curves(seeds, lr)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  x = np.concatenate([np.arange(51), [50], np.arange(51, 201)])
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, data, title in [(axes[0], {w: c[0] for w, c in curves.items()},
                           f"seed {seeds[0]}"),
                          (axes[1], {w: c.mean(0) for w, c in curves.items()},
                           f"mean of {len(seeds)} seeds")]:
    for w in OPERATORS:
      ax.plot(x, data[w], color=COLORS[w], label=LABELS[w])
    ax.set_yscale("log")
    ax.set_xlabel("SGD iteration")
    ax.set_ylabel("f - f*")
    ax.set_title(f"{name}, lr={lr}: {title}")
    ax.legend()
  fig.tight_layout()
  fig.savefig(Path(out_dir) / f"{name.replace(' ', '_').replace('.', '_')}.png",
              dpi=120)
  plt.close(fig)
  return curves, taken, ratios


def max_relative_difference(a: dict, b: dict) -> float:
  """Largest |a − b| / |b| over the curves of all operators."""
  return max(float(np.max(np.abs(a[w] - b[w]) / np.abs(b[w]))) for w in a)


def bench_line(seeds: int = 50, lr: float = 0.01) -> str:
  """Times :func:`b2_curves` against :func:`loop_curves` in this process.

  Both sides start from cleared jit caches (compilation included: one
  program vs one compilation per operator, as the loop's runs share it);
  the problems are built once before and shared. A second, warm call of
  each gives the execution-only ratio.
  """
  seeds = list(range(seeds))
  with jax.enable_x64(True):
    problems = _problems(seeds, None)
  times = {}
  for name, fn in (("program", b2_curves), ("loop", loop_curves)):
    jax.clear_caches()
    for run in ("cold", "warm"):
      start = time.perf_counter()
      result = fn(seeds, lr, problems)
      times[name, run] = time.perf_counter() - start
    times[name] = result[0]
  diff = max_relative_difference(times["program"], times["loop"])
  cold = times["loop", "cold"] / times["program", "cold"]
  warm = times["loop", "warm"] / times["program", "warm"]
  return (f"mgopt R1 quadratic, {len(seeds)} seeds x {len(OPERATORS)} "
          f"operators: one program {times['program', 'cold']:.1f} s, loop "
          f"over seeds {times['loop', 'cold']:.1f} s: {cold:.1f}x (target >= "
          f"10x); compiled already: {times['program', 'warm']:.3f} s vs "
          f"{times['loop', 'warm']:.3f} s: {warm:.1f}x; curves equal to "
          f"{diff:.0e} relative")
