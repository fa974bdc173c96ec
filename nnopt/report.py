"""Figures of runs and the Markdown report of reproduced claims.

* :func:`plot_curves` draws the training-loss and test-accuracy curves of
  several runs into one PNG (what ``nnopt run`` writes as ``curves.png``).
* :func:`write_report` collects every ``claims.json`` under a directory into
  ``REPORT.md``: per thesis, the PASS / FAIL / NOT RUN counts, a table of items,
  claims, measured values and statuses, and links to the figures.

Figures use matplotlib's Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nnopt.reproduce import (CLAIMS_FILE, RUN_FILE, STATUSES, THESES, Claim,
                             ReproduceError, count_statuses, read_claims)

REPORT_FILE = "REPORT.md"

THESIS_TITLES = {
    "kreis": "Kreis: multilevel training, SensLI, Frobenius preconditioning",
    "balles": "Balles: noise-aware methods",
    "mlsgd": "MLSGD thesis: multilevel SGD",
}


# -- curves ---------------------------------------------------------------------


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """The records of a ``metrics.jsonl`` (empty if the file is missing)."""
  path = Path(path)
  if not path.exists():
    return []
  with path.open() as f:
    return [json.loads(line) for line in f if line.strip()]



def plot_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]],
                path: str | os.PathLike[str], *, title: str | None = None,
                x: str = "step") -> Path:
  """Draws loss and accuracy curves of several runs side by side.

  Left: ``train_loss`` against ``x`` (log scale). Right: ``test_accuracy``
  against ``x`` where any run has it, else ``test_loss`` (log scale). One line
  per run.

  Args:
    runs: run name → metrics records (as in ``metrics.jsonl``).
    path: the PNG to write.
    title: figure title.
    x: the record key on the horizontal axis (``'step'``, ``'epoch'``,
      ``'examples_seen'``, ``'wall_time'``).

  Returns:
    The path written.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  def series(records, key):
    pts = [(r[x], r[key]) for r in records
           if key in r and x in r and r[key] is not None
           and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]

  has_acc = any("test_accuracy" in r for recs in runs.values() for r in recs)
  right_key = "test_accuracy" if has_acc else "test_loss"
  fig = Figure(figsize=(10, 4), dpi=110)
  FigureCanvasAgg(fig)
  left, right = fig.subplots(1, 2)
  for name, records in runs.items():
    xs, ys = series(records, "train_loss")
    if xs:
      left.plot(xs, ys, label=name, linewidth=1.2)
    xs, ys = series(records, right_key)
    if xs:
      right.plot(xs, ys, label=name, marker="o", markersize=2.5,
                 linewidth=1.2)
  for ax, key in ((left, "train_loss"), (right, right_key)):
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(key.replace("_", " "))
    ax.grid(True, alpha=0.3)
    if ax.lines:
      ax.legend(fontsize=8)
      if key.endswith("loss") and all(min(l.get_ydata()) > 0
                                      for l in ax.lines):
        ax.set_yscale("log")
  if has_acc:
    right.set_ylim(top=1.0)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path)
  return path


# -- the report ----------------------------------------------------------------------


def _fmt(value: Any) -> str:
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, list):
    inner = ", ".join(_fmt(v) for v in value[:8])
    return f"[{inner}{', …' if len(value) > 8 else ''}]"
  if isinstance(value, Mapping):
    return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
  return str(value)


def format_measured(measured: Mapping[str, Any]) -> str:
  """``{'params': 27, 'expected_params': 27}`` → ``params = 27, expected_params = 27``."""
  return ", ".join(f"{k} = {_fmt(v)}" for k, v in measured.items()) or "–"


def _cell(text: str) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def _status(status: str) -> str:
  return {"PASS": "PASS", "FAIL": "**FAIL**", "NOT RUN": "*NOT RUN*"}[status]


def collect(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """Every reproduction directory under ``root`` with its claims and figures.

  Returns:
    A list (sorted by path) of ``{'dir': Path relative to root, 'claims':
    [Claim], 'figures': [relative PNG paths], 'run': run.json dict or {}}``.

  Raises:
    ReproduceError: a ``claims.json`` is invalid (the message names it).
  """
  root = Path(root)
  entries = []
  for path in sorted(root.rglob(CLAIMS_FILE)):
    directory = path.parent
    run_info = {}
    if (directory / RUN_FILE).exists():
      try:
        run_info = json.loads((directory / RUN_FILE).read_text())
      except ValueError:
        run_info = {}
    figures = sorted(p.relative_to(root) for p in directory.rglob("*.png"))
    entries.append({"dir": directory.relative_to(root),
                    "claims": read_claims(path), "figures": figures,
                    "run": run_info})
  return entries


def render_report(entries: Sequence[Mapping[str, Any]]) -> str:
  """The Markdown text of the report for :func:`collect`'s entries."""
  by_thesis: dict[str, list[tuple[Mapping[str, Any], Claim]]] = {}
  for entry in entries:
    for claim in entry["claims"]:
      by_thesis.setdefault(claim.thesis, []).append((entry, claim))
  theses = [t for t in THESES if t in by_thesis]
  all_claims = [c for e in entries for c in e["claims"]]
  total = count_statuses(all_claims)
  lines = ["# nnopt reproduction report", ""]
  quick = sorted(str(e["dir"]) for e in entries if e["run"].get("quick"))
  lines.append(f"{len(entries)} reproduction(s), {len(all_claims)} claim(s): "
               + ", ".join(f"{total[s]} {s}" for s in STATUSES) + ".")
  if quick:
    lines += ["", f"Run in quick mode (smaller problems, fewer seeds): "
              f"{', '.join(quick)}."]
  errors = [(e["dir"], e["run"]["error"]) for e in entries
            if e["run"].get("error")]
  for directory, error in errors:
    lines += ["", f"**{directory} failed**: {_cell(error)} "
              f"(see `{directory}/error.log`)."]
  lines += ["", "| thesis | " + " | ".join(STATUSES) + " | total |",
            "|---|" + "---:|" * (len(STATUSES) + 1)]
  for thesis in theses:
    counts = count_statuses(c for _, c in by_thesis[thesis])
    lines.append(f"| {thesis} | " + " | ".join(
        str(counts[s]) for s in STATUSES) + f" | {sum(counts.values())} |")
  for thesis in theses:
    rows = by_thesis[thesis]
    counts = count_statuses(c for _, c in rows)
    lines += ["", f"## {THESIS_TITLES.get(thesis, thesis)}", "",
              ", ".join(f"{s}: {counts[s]}" for s in STATUSES), "",
              "| reproduction | item | claim | measured | status |",
              "|---|---|---|---|---|"]
    for entry, claim in rows:
      measured = format_measured(claim.measured)
      if claim.status == "NOT RUN":
        measured = (f"{measured}; " if claim.measured else "") + \
            f"reason: {claim.reason}"
      lines.append(f"| {_cell(entry['dir'])} | {_cell(claim.item)} | "
                   f"{_cell(claim.claim)} | {_cell(measured)} | "
                   f"{_status(claim.status)} |")
    shown = []
    for entry in entries:
      if any(c.thesis == thesis for c in entry["claims"]):
        shown += [f for f in entry["figures"] if f not in shown]
    if shown:
      lines += ["", "### Figures", ""]
      for figure in shown:
        posix = Path(figure).as_posix()
        lines += [f"![{posix}]({posix})", ""]
      if lines[-1] == "":
        lines.pop()
  return "\n".join(lines) + "\n"


def write_report(root: str | os.PathLike[str],
                 output: str | os.PathLike[str] | None = None) -> Path:
  """Collects the claims under ``root`` into ``root/REPORT.md`` (or ``output``).

  Raises:
    ReproduceError: no ``claims.json`` under ``root``, or an invalid one.
  """
  root = Path(root)
  if not root.is_dir():
    raise ReproduceError(f"{root} is not a directory")
  entries = collect(root)
  if not entries:
    raise ReproduceError(f"no {CLAIMS_FILE} under {root}; run "
                         "'nnopt reproduce ID --out DIR' first")
  path = Path(output) if output else root / REPORT_FILE
  path.write_text(render_report(entries))
  return path


def thesis_counts(entries: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
  """PASS / FAIL / NOT RUN counts per thesis."""
  out: dict[str, list[Claim]] = {}
  for entry in entries:
    for claim in entry["claims"]:
      out.setdefault(claim.thesis, []).append(claim)
  return {t: count_statuses(c) for t, c in out.items()}


__all__ = ["REPORT_FILE", "collect", "format_measured", "plot_curves",
           "read_metrics", "render_report", "thesis_counts", "write_report"]
