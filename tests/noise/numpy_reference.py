"""Hand-written numpy references of Balles' algorithms (spec §4.5, §5.7, §6),
written from the pseudo-code, independent of nnopt's implementation."""

import numpy as np


def rho(beta, t):
  if beta == 0:
    return 1.0
  b = beta ** (t + 1)
  return (1 - beta) * (1 + b) / ((1 + beta) * (1 - b))


class Reference:
  """One optimizer: ``direction(g, extra) -> u`` on flat float64 vectors."""

  def __init__(self, name, beta=0.9, damping=1e-3):
    self.name, self.beta, self.damping = name, beta, damping
    self.t = 0
    self.mt = self.vt = self.rt = None

  def direction(self, g, batch_var=None, sq_mean=None):
    b, t = self.beta, self.t
    if self.mt is None:
      self.mt = np.zeros_like(g)
      self.vt = np.zeros_like(g)
      self.rt = np.zeros_like(g)
    name = self.name
    if name == "sign":
      u = np.sign(g)
    elif name == "l1_sign":
      u = np.abs(g).sum() * np.sign(g)
    elif name == "coordinate":
      u = np.zeros_like(g)
      i = np.argmax(np.abs(g))
      u[i] = g[i]
    elif name == "diag_ef":
      u = g / (sq_mean + self.damping)
    elif name in ("msgd", "msign"):
      self.mt = b * self.mt + (1 - b) * g
      u = self.mt / (1 - b ** (t + 1)) if name == "msgd" else np.sign(self.mt)
    elif name == "msvag_mb":
      self.mt = b * self.mt + (1 - b) * g
      self.rt = b * b * self.rt + (1 - b * b) * batch_var
      m = self.mt / (1 - b ** (t + 1))
      r = self.rt / (1 - b ** (2 * (t + 1)))
      den = m * m + rho(b, t) * r
      gam = np.where(den > 0, m * m / np.where(den > 0, den, 1), 0.0)
      u = np.clip(gam, 0, 1) * m
    else:  # svag, msvag, adam_star: Alg. 2, 4, 5
      self.mt = b * self.mt + (1 - b) * g
      self.vt = b * self.vt + (1 - b) * g * g
      m = self.mt / (1 - b ** (t + 1))
      v = self.vt / (1 - b ** (t + 1))
      r = rho(b, t)
      s = np.maximum((v - m * m) / (1 - r), 0) if 1 - r > 0 else np.zeros_like(g)
      if name == "svag":
        den = m * m + s
      else:
        den = m * m + r * s
      gam = np.clip(np.where(den > 0, m * m / np.where(den > 0, den, 1), 0.0),
                    0, 1)
      u = {"svag": gam * g, "msvag": gam * m,
           "adam_star": np.sqrt(gam) * np.sign(m)}[name]
    self.t += 1
    return u


def block_normalized(blocks):
  norms = [np.linalg.norm(x) for x in blocks]
  total = sum(norms)
  return [total * x / n if n > 0 else 0 * x for x, n in zip(blocks, norms)]
