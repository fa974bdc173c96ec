"""Fisher, empirical Fisher and generalized Gauss-Newton (Balles ch. 7).

For a model ``p(y | f(x, θ))`` from an exponential family with natural
parameter f and the MEAN loss ``R(θ) = −(1/N) Σ_n log p(y_n | f(x_n, θ))``
(App. D.3):

.. math::

   F = \\frac1N\\sum_n J_n^T \\Lambda_n J_n \\;(= G,\\ \\text{Prop 7.1}),\\qquad
   \\tilde F = \\frac1N\\sum_n \\nabla\\ell_n \\nabla\\ell_n^T  \\;(7.7),

with ``J_n = ∂f(x_n,θ)/∂θ`` and ``Λ_n = −∇²_f log p(y|f_n)`` (independent of
y; (D.24)). For generalized linear models ``f = x θ``: least squares has
``Λ = 1`` (F = XᵀX/N, (D.10)), logistic regression ``Λ = σ(f)(1−σ(f))``
((D.33), with ``−∂_f log p = σ(f) − y``).

The JAX functions (:func:`ggn`, :func:`empirical_fisher`,
:func:`mc_fisher`) work for any model ``f(θ, x)``; :class:`GLM` gives the
closed forms used by the chapter-7 experiments and as test oracles. The
updates (D.30)–(D.32) are :func:`run_preconditioned`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class FisherError(ValueError):
  """Bad input for a Fisher computation."""


# -- generic (any model) --------------------------------------------------------


def _flat_jacobian(model_fn, params, x):
  """``J_n`` of ``f(θ, x_n)`` w.r.t. a flat θ: (N, out, D)."""
  return jax.vmap(lambda xn: jnp.atleast_1d(
      jax.jacrev(lambda p: jnp.atleast_1d(model_fn(p, xn)))(params)))(x)


def ggn(model_fn: Callable[[Array, Array], Array],
        output_hessian: Callable[[Array], Array], params: Array,
        inputs: Array) -> Array:
  """``G = (1/N) Σ_n J_nᵀ Λ(f_n) J_n`` (7.10) for a flat parameter vector.

  Args:
    model_fn: ``f(θ, x) -> outputs`` for one example.
    output_hessian: ``f -> Λ = −∇²_f log p(y|f)`` (no y: exponential family).
    params: flat θ, shape (D,).
    inputs: (N, ...) inputs.
  """
  jac = _flat_jacobian(model_fn, params, inputs)
  outs = jax.vmap(lambda xn: jnp.atleast_1d(model_fn(params, xn)))(inputs)
  lam = jax.vmap(lambda f: jnp.atleast_2d(output_hessian(f)))(outs)
  return jnp.einsum("noi,nop,npj->ij", jac, lam, jac) / inputs.shape[0]


def empirical_fisher(example_loss: Callable[[Array, Array, Array], Array],
                     params: Array, inputs: Array, targets: Array) -> Array:
  """``F̃ = (1/N) Σ_n ∇ℓ_n ∇ℓ_nᵀ`` (7.7, mean form) from ``vmap(grad)``."""
  g = jax.vmap(jax.grad(example_loss), (None, 0, 0))(params, inputs, targets)
  return g.T @ g / inputs.shape[0]


def mc_fisher(example_loss, sample_targets, params, inputs, key,
              samples: int = 1) -> Array:
  """Monte-Carlo Fisher: the EF with targets drawn from the model (7.24)."""
  keys = jax.random.split(key, samples)

  def one(k):
    y = sample_targets(k, params, inputs)
    return empirical_fisher(example_loss, params, inputs, y)

  return jnp.mean(jax.vmap(one)(keys), axis=0)


# -- generalized linear models -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GLM:
  """Linear (Gaussian, unit variance) or logistic regression ``f = X θ``.

  Attributes:
    x: (N, D) features (a bias column, if any, included).
    y: (N,) targets (reals, or labels in {0, 1}).
    kind: ``'linear'`` or ``'logistic'``.
    prior: optional L2 term ``prior/2 ‖θ‖²`` added to the loss, gradient and
      Fisher/Hessian but NOT to the empirical Fisher (ref-code convention).
  """

  x: np.ndarray
  y: np.ndarray
  kind: str = "linear"
  prior: float = 0.0

  def __post_init__(self):
    if self.kind not in ("linear", "logistic"):
      raise FisherError(f"kind must be 'linear' or 'logistic', got {self.kind!r}")

  @property
  def n(self) -> int:
    return self.x.shape[0]

  def _mean(self, theta):
    f = self.x @ theta
    return f if self.kind == "linear" else 1.0 / (1.0 + np.exp(-f))

  def loss(self, theta) -> float:
    f = self.x @ theta
    if self.kind == "linear":
      data = 0.5 * np.mean((f - self.y) ** 2)
    else:
      data = np.mean(np.logaddexp(0.0, f) - self.y * f)
    return float(data + 0.5 * self.prior * theta @ theta)

  def residuals(self, theta) -> np.ndarray:
    """``−∂_f log p(y_n | f_n)``: ``f − y`` or ``σ(f) − y``."""
    return self._mean(theta) - self.y

  def grad(self, theta) -> np.ndarray:
    return self.x.T @ self.residuals(theta) / self.n + self.prior * theta

  def per_example_grads(self, theta) -> np.ndarray:
    return self.residuals(theta)[:, None] * self.x

  def output_curvature(self, theta) -> np.ndarray:
    """``Λ_n = −∂²_f log p``: 1 (linear) or σ(1−σ) (logistic, (D.33))."""
    if self.kind == "linear":
      return np.ones(self.n)
    s = self._mean(theta)
    return s * (1 - s)

  def fisher(self, theta) -> np.ndarray:
    """``F = G = ∇²R`` (Prop 7.1; GLMs are linear in θ): XᵀΛX/N (+ prior)."""
    lam = self.output_curvature(theta)
    return (self.x.T * lam) @ self.x / self.n + self.prior * np.eye(
        self.x.shape[1])

  def empirical_fisher(self, theta) -> np.ndarray:
    """``F̃ = Σ_n r_n² x_n x_nᵀ / N`` ((7.18), mean form; no prior)."""
    r = self.residuals(theta)
    return (self.x.T * r * r) @ self.x / self.n

  def fit(self, iters: int = 100) -> np.ndarray:
    """θ* by Newton's method (exact for linear regression)."""
    theta = np.zeros(self.x.shape[1])
    for _ in range(iters):
      step = np.linalg.solve(self.fisher(theta), self.grad(theta))
      theta = theta - step
      if np.max(np.abs(step)) < 1e-12:
        break
    return theta


def preconditioned_direction(problem: GLM, method: str, theta,
                             damping: float) -> np.ndarray:
  """GD: ``∇R``; NGD: ``(F + λI)^{-1}∇R``; EF: ``(F̃ + λI)^{-1}∇R`` (D.30–D.32)."""
  g = problem.grad(theta)
  if method == "gd":
    return g
  eye = np.eye(len(theta))
  if method == "ngd":
    return np.linalg.solve(problem.fisher(theta) + damping * eye, g)
  if method == "ef":
    return np.linalg.solve(problem.empirical_fisher(theta) + damping * eye, g)
  raise FisherError(f"method must be 'gd', 'ngd' or 'ef', got {method!r}")


def run_preconditioned(problem: GLM, method: str, theta0, step: float,
                       damping: float = 0.0, iters: int = 100,
                       diverge_factor: float | None = 100.0,
                       record_path: bool = False):
  """Full-batch GD / NGD / EFGD ``θ ← θ − γ B^{-1} ∇R`` (D.30–D.32).

  Returns ``(losses, path)``; a run whose loss exceeds ``diverge_factor``
  times the initial loss (or turns non-finite) stops with ``inf`` losses
  (ref-code abort rule).
  """
  theta = np.array(theta0, np.float64)
  first = problem.loss(theta)
  losses, path = [first], [theta.copy()]
  with np.errstate(all="ignore"):
    for _ in range(iters):
      try:
        theta = theta - step * preconditioned_direction(problem, method, theta,
                                                        damping)
      except np.linalg.LinAlgError:
        losses += [np.inf] * (iters + 1 - len(losses))
        break
      value = problem.loss(theta)
      if not np.isfinite(value) or (diverge_factor is not None
                                    and value > diverge_factor * first):
        losses += [np.inf] * (iters + 1 - len(losses))
        break
      losses.append(value)
      if record_path:
        path.append(theta.copy())
  return np.array(losses), np.array(path)


def _row_outer_products(x: np.ndarray):
  """Rows ``vec(x_n x_nᵀ)`` as (N, D²): ``w @ P = vec(Xᵀ diag(w) X)``.

  scipy-sparse when ``x`` is mostly zeros (libsvm data such as a1a: ~14 of
  123 features set, 80× fewer products than dense); ``None`` when a dense
  one would be too large (the caller then forms ``Xᵀ diag(w) X`` per run).
  """
  n, d = x.shape
  nonzero = np.count_nonzero(x)
  if nonzero <= 0.25 * n * d:
    import scipy.sparse  # pylint: disable=import-outside-toplevel
    rows, cols, vals = [], [], []
    for i in range(n):
      idx = np.flatnonzero(x[i])
      rows.append(np.full(idx.size * idx.size, i))
      cols.append((idx[:, None] * d + idx[None, :]).ravel())
      vals.append(np.outer(x[i, idx], x[i, idx]).ravel())
    return scipy.sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, d * d))
  if n * d * d > 2e7:
    return None
  return (x[:, :, None] * x[:, None, :]).reshape(n, d * d)


def run_preconditioned_grid(problem: GLM, method: str, theta0, steps,
                            damping: float = 0.0, iters: int = 100,
                            diverge_factor: float = 100.0) -> np.ndarray:
  """Final losses of :func:`run_preconditioned` for many step sizes at once.

  Vectorized over ``steps`` (one batched solve per iteration, over the runs
  still alive); a diverged run (loss > ``diverge_factor`` × initial, or
  non-finite) gives ``inf``.
  """
  steps = np.asarray(steps, np.float64)
  theta = np.tile(np.asarray(theta0, np.float64), (len(steps), 1))
  x, y, n, d = problem.x, problem.y, problem.n, problem.x.shape[1]
  first = problem.loss(np.asarray(theta0, np.float64))
  alive = np.ones(len(steps), bool)
  eye = np.eye(d)
  outer = None if method == "gd" else _row_outer_products(x)

  def losses(th):
    f = th @ x.T
    if problem.kind == "linear":
      data = 0.5 * np.mean((f - y) ** 2, axis=1)
    else:
      data = np.mean(np.logaddexp(0.0, f) - y * f, axis=1)
    return data + 0.5 * problem.prior * np.sum(th * th, axis=1)

  with np.errstate(all="ignore"):
    for _ in range(iters):
      live = np.flatnonzero(alive)
      if live.size == 0:
        break
      f = theta[live] @ x.T
      mean = f if problem.kind == "linear" else 1 / (1 + np.exp(-f))
      r = mean - y                                   # (S, N)
      grad = r @ x / n + problem.prior * theta[live]  # (S, D)
      if method == "gd":
        direction = grad
      else:
        w = (r * r if method == "ef" else
             np.ones_like(r) if problem.kind == "linear" else mean * (1 - mean))
        if outer is None:
          mats = np.matmul((w[:, :, None] * x).transpose(0, 2, 1), x)
        else:
          mats = np.asarray((outer.T @ w.T).T).reshape(-1, d, d)
        mats = mats / n + damping * eye
        if method == "ngd":
          mats = mats + problem.prior * eye
        ok = np.all(np.isfinite(mats), axis=(1, 2))
        direction = np.zeros_like(grad)
        try:
          direction[ok] = np.linalg.solve(mats[ok], grad[ok][..., None])[..., 0]
        except np.linalg.LinAlgError:
          for i in np.flatnonzero(ok):
            try:
              direction[i] = np.linalg.solve(mats[i], grad[i])
            except np.linalg.LinAlgError:
              ok[i] = False
        alive[live[~ok]] = False
      theta[live] = theta[live] - steps[live, None] * direction
      value = losses(theta[live])
      alive[live] &= np.isfinite(value) & (value <= diverge_factor * first)
      theta[~alive] = 0.0
  out = losses(theta)
  out[~alive] = np.inf
  return out


def cosine(a, b) -> float:
  a, b = np.ravel(a), np.ravel(b)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def variance_adaptation_matrix(problem: GLM, theta) -> np.ndarray:
  """``M = (N F̃)^{-1} ∇R∇Rᵀ`` with sum-form quantities (7.23)."""
  g_sum = problem.grad(theta) * problem.n
  ef_sum = problem.empirical_fisher(theta) * problem.n
  return np.linalg.solve(ef_sum, np.outer(g_sum, g_sum))


# -- the chapter-7 toy data -------------------------------------------------------


def fig7_1_problem(n: int = 1000, seed: int = 0) -> GLM:
  """``x ~ Lognormal(0, σ=0.75)`` (ref-code reading), ``y = 2 + 2x + ε``;
  features ``[1, x]`` (D.29)."""
  rng = np.random.default_rng(seed)
  x = rng.lognormal(mean=0.0, sigma=0.75, size=n)
  y = 2 + 2 * x + rng.normal(size=n)
  return GLM(np.stack([np.ones(n), x], 1), y, "linear")


def fig7_2_linear(case: str, n: int = 1000, seed: int = 0) -> GLM:
  """Table D.2: ``y = 1 + x + ε`` (correct), noise std 2 (A), ``+ ½x²`` (B)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=n)
  eps = rng.normal(size=n)
  y = {"correct": 1 + x + eps, "A": 1 + x + 2 * eps,
       "B": 1 + x + 0.5 * x * x + eps}[case]
  return GLM(np.stack([np.ones(n), x], 1), y, "linear")


def fig7_2_logistic(case: str, n: int = 1000, seed: int = 0) -> GLM:
  """Table D.1 with the ref-code sampling ``x = μ + z C`` (no bias feature)."""
  rng = np.random.default_rng(seed)
  y = (rng.uniform(size=n) < 0.5).astype(np.float64)
  if case == "correct":
    mus = [np.array([1.0, 1.0]), np.array([-1.0, -1.0])]
    covs = [2 * np.eye(2), 2 * np.eye(2)]
  elif case == "A":
    mus = [np.array([1.5, 1.5]), np.array([-1.5, -1.5])]
    covs = [3 * np.eye(2), np.eye(2)]
  else:
    mus = [np.array([1.0, 1.0]), np.array([-1.0, -1.0])]
    covs = [np.array([[1.5, -0.9], [-0.9, 1.5]]),
            np.array([[1.5, 0.9], [0.9, 1.5]])]
  z = rng.normal(size=(n, 2))
  x = np.empty((n, 2))
  for label in (0, 1):
    idx = y == label
    x[idx] = mus[label] + z[idx] @ covs[label]
  return GLM(x, y, "logistic")


__all__ = [
    "FisherError", "GLM", "cosine", "empirical_fisher", "fig7_1_problem",
    "fig7_2_linear", "fig7_2_logistic", "ggn", "mc_fisher",
    "preconditioned_direction", "run_preconditioned",
    "run_preconditioned_grid",
    "variance_adaptation_matrix",
]
