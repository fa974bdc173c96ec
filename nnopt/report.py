"""Figures of runs and the Markdown report of reproduced claims.

* :func:`plot_curves` draws the training-loss and test-accuracy curves of
  several runs into one PNG (what ``nnopt run`` writes as ``curves.png``).
* :func:`write_report` collects every ``claims.json`` under a directory into
  ``REPORT.md``: per thesis, the counts of full-size verdicts (PASS / FAIL /
  INCONCLUSIVE / NOT RUN / INFO), a table of the full-size claims (item,
  claim and the thesis sentence, measured values with the interval of a
  comparison, status), a separate table of smoke results (stand-in problems
  and quick runs, never counted), and links to the figures.

Figures use matplotlib's Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nnopt.reproduce import (CLAIMS_FILE, FULL, RUN_FILE, SMOKE, STATUSES,
                             THESES, Claim, ReproduceError, count_statuses,
                             read_claims, smoke_label)

REPORT_FILE = "REPORT.md"

THESIS_TITLES = {
    "kreis": "Kreis: multilevel training, SensLI, Frobenius preconditioning",
    "balles": "Balles: noise-aware methods",
    "mlsgd": "MLSGD thesis: multilevel SGD",
}


# -- curves ---------------------------------------------------------------------


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """The records of a ``metrics.jsonl`` (empty if the file is missing;
  lines that are not JSON, e.g. cut off by a crash, are skipped)."""
  path = Path(path)
  if not path.exists():
    return []
  records = []
  with path.open() as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except ValueError:
        continue  # a line cut off by a crash in mid-write
  return records



def plot_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]],
                path: str | os.PathLike[str], *, title: str | None = None,
                x: str = "step",
                panels: Mapping[str, Sequence[str]] | None = None,
                dpi: int = 110) -> Path:
  """Draws loss and accuracy curves of several runs, one row per comparison.

  Each row (a panel of ``panels``, titled by what it compares; by default one
  row of every run) has ``train_loss`` against ``x`` (log scale) on the left
  and ``test_accuracy`` against ``x`` where any of its runs has it, else
  ``test_loss`` (log scale), on the right. One line per run.

  Args:
    runs: run name → metrics records (as in ``metrics.jsonl``).
    path: the PNG to write.
    title: figure title.
    x: the record key on the horizontal axis (``'step'``, ``'epoch'``,
      ``'examples_seen'``, ``'wall_time'``).
    panels: row title → the names of the runs it compares (runs without
      records are skipped, and so are rows left empty).
    dpi: resolution.

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

  rows = {t: [n for n in names if runs.get(n)]
          for t, names in (panels or {"": list(runs)}).items()}
  rows = {t: names for t, names in rows.items() if names} or {"": []}
  titled = any(rows)
  fig = Figure(figsize=(10, 3.6 * len(rows) + (0.4 if title else 0)), dpi=dpi)
  FigureCanvasAgg(fig)
  subfigs = fig.subfigures(len(rows), 1, squeeze=False)[:, 0]
  for subfig, (row_title, names) in zip(subfigs, rows.items()):
    has_acc = any("test_accuracy" in r for n in names for r in runs[n])
    right_key = "test_accuracy" if has_acc else "test_loss"
    left, right = subfig.subplots(1, 2)
    for name in names:
      xs, ys = series(runs[name], "train_loss")
      if xs:
        left.plot(xs, ys, label=name, linewidth=1.2)
      xs, ys = series(runs[name], right_key)
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
    if titled:
      subfig.suptitle(row_title, fontsize=11)
  if title:
    fig.suptitle(title, fontsize=13, fontweight="bold")
  fig.set_layout_engine("constrained")
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
  return {"PASS": "PASS", "FAIL": "**FAIL**", "INCONCLUSIVE": "*INCONCLUSIVE*",
          "NOT RUN": "*NOT RUN*", "INFO": "INFO"}[status]


def format_comparison(comparison: Mapping[str, Any]) -> str:
  """One line for a :meth:`nnopt.reproduce.Claims.compare` record, e.g.
  ``ADAM 0.12 ± 0.01 vs M-SGD 0.18 ± 0.01 (mean ± SE, n = 3, 3); ADAM −
  M-SGD = −0.06, 95 % CI [−0.08, −0.04] (paired t …); statement: ADAM <
  M-SGD``."""
  c = comparison
  a, b = c.get("a", "A"), c.get("b", "B")
  text = (f"{a} {_fmt(c.get('mean_a'))} ± {_fmt(c.get('se_a'))} vs {b} "
          f"{_fmt(c.get('mean_b'))} ± {_fmt(c.get('se_b'))} (mean ± SE, "
          f"n = {c.get('n_a')}, {c.get('n_b')}); {a} − {b} = "
          f"{_fmt(c.get('diff'))}, {_fmt_level(c.get('confidence'))} CI "
          f"[{_fmt(c['ci'][0])}, {_fmt(c['ci'][1])}] ({c.get('method')}); "
          f"statement: {c.get('statement')}")
  if c.get("quantity"):
    text = f"{c['quantity']}: {text}"
  return text


def _fmt_level(level: Any) -> str:
  return f"{level:.0%}" if isinstance(level, float) else "?"


def collect(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """Every reproduction directory under ``root`` with its claims and figures.

  A directory whose ``run.json`` says ``quick`` holds smoke results only:
  any full-size record in it (written before scopes existed) is read as
  smoke.

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
    if not isinstance(run_info, dict):
      run_info = {}
    claims = read_claims(path)
    if run_info.get("quick"):
      stand_in = (run_info.get("stand_in")
                  or f"the quick mode of {directory.name}")
      claims = [smoke_label(c, stand_in) for c in claims]
    figures = sorted(p.relative_to(root) for p in directory.rglob("*.png"))
    entries.append({"dir": directory.relative_to(root),
                    "claims": claims, "figures": figures, "run": run_info})
  return entries


def _counts_line(counts: Mapping[str, int]) -> str:
  return ", ".join(f"{counts[s]} {s}" for s in STATUSES)


def _claim_cell(claim: Claim) -> str:
  text = claim.claim
  if claim.quote:
    text += f" — thesis: “{claim.quote}”"
  return _cell(text)


def _measured_cell(claim: Claim) -> str:
  parts = []
  if claim.comparison:
    parts.append(format_comparison(claim.comparison))
  if claim.measured:
    parts.append(format_measured(claim.measured))
  text = "; ".join(parts) or "–"
  if claim.status == "NOT RUN":
    text = ("" if text == "–" else f"{text}; ") + f"reason: {claim.reason}"
  return _cell(text)


def _item_cell(claim: Claim) -> str:
  return _cell(claim.item + (f" ({claim.dataset})" if claim.dataset else ""))


def render_report(entries: Sequence[Mapping[str, Any]]) -> str:
  """The Markdown text of the report for :func:`collect`'s entries.

  Only full-size records count: the summary and per-thesis counts are of
  ``scope: full`` claims; smoke results are listed in their own tables.
  """
  by_thesis: dict[str, dict[str, list[tuple[Mapping[str, Any], Claim]]]] = {}
  for entry in entries:
    for claim in entry["claims"]:
      by_thesis.setdefault(claim.thesis, {FULL: [], SMOKE: []})[
          claim.scope].append((entry, claim))
  theses = [t for t in THESES if t in by_thesis]
  full = [c for e in entries for c in e["claims"] if c.scope == FULL]
  smoke = [c for e in entries for c in e["claims"] if c.scope == SMOKE]
  lines = ["# nnopt reproduction report", ""]
  lines.append(f"{len(entries)} reproduction(s). Full-size claims: "
               f"{len(full)} claim(s): {_counts_line(count_statuses(full))}. "
               f"Smoke results (stand-in problems, not counted): "
               f"{len(smoke)}.")
  quick = sorted(str(e["dir"]) for e in entries if e["run"].get("quick"))
  if quick:
    lines += ["", f"Run in quick mode (smoke results only): "
              f"{', '.join(quick)}."]
  errors = [(e["dir"], e["run"]["error"]) for e in entries
            if e["run"].get("error")]
  for directory, error in errors:
    lines += ["", f"**{directory} failed**: {_cell(error)} "
              f"(see `{directory}/error.log`)."]
  lines += ["", "Full-size verdicts per thesis:", "",
            "| thesis | " + " | ".join(STATUSES) + " | total | smoke |",
            "|---|" + "---:|" * (len(STATUSES) + 2)]
  for thesis in theses:
    counts = count_statuses(c for _, c in by_thesis[thesis][FULL])
    lines.append(f"| {thesis} | " + " | ".join(
        str(counts[s]) for s in STATUSES) + f" | {sum(counts.values())} | "
        f"{len(by_thesis[thesis][SMOKE])} |")
  for thesis in theses:
    rows, smoke_rows = by_thesis[thesis][FULL], by_thesis[thesis][SMOKE]
    counts = count_statuses(c for _, c in rows)
    lines += ["", f"## {THESIS_TITLES.get(thesis, thesis)}", ""]
    if rows:
      lines += ["Full size: " + ", ".join(f"{s}: {counts[s]}"
                                          for s in STATUSES), "",
                "| reproduction | item | claim | measured | status |",
                "|---|---|---|---|---|"]
      for entry, claim in rows:
        lines.append(f"| {_cell(entry['dir'])} | {_item_cell(claim)} | "
                     f"{_claim_cell(claim)} | {_measured_cell(claim)} | "
                     f"{_status(claim.status)} |")
    else:
      lines.append("No full-size claims.")
    if smoke_rows:
      lines += ["", "### Smoke results (stand-in problems; not counted)", "",
                "| reproduction | item | stand-in | claim | measured | "
                "result |", "|---|---|---|---|---|---|"]
      for entry, claim in smoke_rows:
        lines.append(f"| {_cell(entry['dir'])} | {_item_cell(claim)} | "
                     f"{_cell(claim.stand_in)} | {_claim_cell(claim)} | "
                     f"{_measured_cell(claim)} | {_status(claim.status)} |")
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


def thesis_counts(entries: Iterable[Mapping[str, Any]], *,
                  scope: str = FULL) -> dict[str, dict[str, int]]:
  """Status counts per thesis of the claims of one scope (full size by
  default: smoke results are not verdicts on a thesis)."""
  out: dict[str, list[Claim]] = {}
  for entry in entries:
    for claim in entry["claims"]:
      out.setdefault(claim.thesis, [])
      if claim.scope == scope:
        out[claim.thesis].append(claim)
  return {t: count_statuses(c) for t, c in out.items()}


__all__ = ["REPORT_FILE", "collect", "format_comparison", "format_measured",
           "plot_curves", "read_metrics", "render_report", "thesis_counts",
           "write_report"]
