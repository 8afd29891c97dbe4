"""The report of a results database: PNG plots, one self-contained HTML page, a Markdown file.

    from thermolearn.experiments import make_report
    files = make_report("runs/thermolearn.sqlite", "runs/report")
    files.html      # runs/report/index.html: open it anywhere, the plots are embedded

Per experiment: its description, its plot (drawn by the experiment's ``plot`` function), a
table of the measured values (mean ± sd over seeds for each parameter point), the published
anchors beside the same quantity measured here, each with its source, the failed points with
their errors, and where the results were computed (code version, commit, device, libraries).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from . import registry
from .registry import canonical, format_seconds
from .store import check_experiments, open_store

MAX_DEFAULT_METRICS = 8


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    plots: list[Path] = field(default_factory=list)


@dataclass
class Section:
    """Everything shown about one experiment, independent of the output format."""

    name: str
    description: str
    registered: bool
    done: int
    failed: int
    compute_seconds: float
    table_columns: list[str]
    table_rows: list[list[str]]
    anchor_rows: list[list[str]]
    failures: list[str]
    provenance: list[str]
    plot: Optional[Path] = None
    plot_error: Optional[str] = None


def fmt(x, digits: int = 3) -> str:
    """A number for a table, compact: 2 decimals from 1 to 10^4, ``digits`` significant digits
    below 1, powers of ten (``1.23e5``) from 10^4 on (10^6 for integers) and below 10^-3."""
    if x is None:
        return ""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x) if abs(x) < 10**6 else _sci(x, digits)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return _sci(x, digits)
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.{digits}g}"


def _sci(x, digits: int) -> str:
    """1.23e5 rather than 1.23e+05."""
    mantissa, _, exponent = f"{x:.{digits - 1}e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def mean_sd(mean: float, sd: float) -> str:
    """'mean ± sd', the sd to 2 significant digits and the mean to the same decimal place (never
    more digits than :func:`fmt` gives it): 0.0879, 0.092 -> '0.088 ± 0.092'."""
    if not (math.isfinite(mean) and math.isfinite(sd)) or sd <= 0 or abs(mean) >= 1e4 or abs(sd) >= 1e4 \
            or sd < 1e-3 or (mean != 0 and abs(mean) < 1e-3):
        return f"{fmt(mean)} ± {fmt(sd, digits=2)}"
    decimals = min(6, max(0, 1 - math.floor(math.log10(sd))))
    shown = fmt(mean)
    mean_decimals = min(decimals, len(shown.partition(".")[2]) if abs(mean) >= 1 else decimals)
    return f"{mean:.{mean_decimals}f} ± {sd:.{decimals}f}"


def summarize(values, expected: Optional[int] = None) -> str:
    """'mean ± sd' of numbers (NaN and None dropped; see :func:`mean_sd`), with '(n=k)' when k
    differs from ``expected`` (the number of seeds); '' when there are none."""
    xs = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not xs:
        return ""
    if len(xs) == 1:
        text = fmt(xs[0] if isinstance(xs[0], int) else float(xs[0]))
    else:
        text = mean_sd(statistics.fmean(xs), statistics.stdev(xs))
    if expected is not None and len(xs) != expected:
        text += f" (n={len(xs)})"
    return text


def _numeric_keys(records) -> list[str]:
    keys: list[str] = []
    for r in records:
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    return keys


_BOOKKEEPING = {"experiment", "point", "seed", "record", "point_seconds", "package_version", "git_commit"}


def _table(exp, records) -> tuple[list[str], list[list[str]]]:
    """Rows: one per (parameter point, record index); the parameters that vary (or that the
    experiment's ``table`` names), the string fields of the records, then the metrics as
    mean ± sd over seeds. Column headers come from the experiment's ``table``."""
    if not records:
        return [], []
    headers = dict(exp.table) if exp is not None else {}
    params = _param_keys(exp, records)
    labels = [k for k in _string_keys(records) if k not in params and k not in _BOOKKEEPING]
    if headers:
        metrics = [k for k in headers if k not in params and k not in labels]
    else:
        metrics = [k for k in _numeric_keys(records)
                   if k not in _BOOKKEEPING and k not in params][:MAX_DEFAULT_METRICS]
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["point"], r["record"]), []).append(r)
    order = _point_order(exp)
    keys = sorted(groups, key=lambda g: (order.get(g[0], len(order)), g[0], g[1]))
    firsts = [groups[g][0] for g in keys]
    shown: list[str] = []       # parameters named in the table, or varying and not following another
    for p in params:
        if p in headers or (len({canonical({p: r.get(p)}) for r in firsts}) > 1
                            and not any(registry.follows(firsts, p, q) for q in shown)):
            shown.append(p)
    columns = [headers.get(k, k) for k in shown + labels + metrics] + ["seeds"]
    rows = []
    for g in keys:
        rs = groups[g]
        seeds = len({r["seed"] for r in rs})
        row = [fmt(rs[0].get(p)) for p in shown]
        row += [" / ".join(sorted({str(r.get(k)) for r in rs if r.get(k) is not None})) for k in labels]
        row += [summarize((r.get(m) for r in rs), expected=seeds) for m in metrics]
        row.append(str(seeds))
        rows.append(row)
    return columns, rows


def _param_keys(exp, records) -> list[str]:
    """Parameter names: in the experiment's grid order, then any others (sorted)."""
    keys: list[str] = []
    if exp is not None:
        for quick in (False, True):
            for p in registry.expand(exp.grid_for(quick)):
                keys.extend(k for k in p if k not in keys)
    for r in records:
        keys.extend(k for k in json.loads(r["point"]) if k not in keys)
    return keys


def _string_keys(records) -> list[str]:
    keys: list[str] = []
    for r in records:
        for k, v in r.items():
            if isinstance(v, str) and k not in keys:
                keys.append(k)
    return keys


def _point_order(exp) -> dict[str, int]:
    if exp is None:
        return {}
    order: dict[str, int] = {}
    for quick in (False, True):
        for p in registry.expand(exp.grid_for(quick)):
            order.setdefault(canonical(p), len(order))
    return order


def _anchor_rows(exp, records) -> list[list[str]]:
    rows = []
    for a in (exp.anchors if exp is not None else []):
        values = [r[a.metric] for r in records if a.matches(r) and r.get(a.metric) is not None]
        measured = summarize(values)
        measured = (measured + (f" (n={len(values)})" if len(values) > 1 else "")) if measured \
            else _not_measured(exp, a)
        rows.append([a.label, a.metric, a.value_text(), measured, a.source])
    return rows


def _not_measured(exp, anchor) -> str:
    """Why an anchor has no measured value, and which variant would measure it."""
    def in_grid(quick):
        return any(all(p.get(k, v) == v for k, v in anchor.where.items())
                   for p in registry.expand(exp.grid_for(quick)))

    where = ", ".join(f"{k}={v}" for k, v in anchor.where.items()) or anchor.metric
    if in_grid(quick=False) and not in_grid(quick=True):
        hint = "the full variant measures it: run without --quick"
    elif not in_grid(quick=False) and not in_grid(quick=True):
        hint = "not in this experiment's grid"
    else:
        hint = "not run yet"
    return f"not measured ({where}): {hint}"


def _provenance(results) -> list[str]:
    def distinct(key):
        return sorted({str(r.env.get(key)) for r in results if r.env.get(key)})

    lines = []
    for label, key in (("package version", "package_version"), ("git commit", "git_commit"),
                       ("device", "device"), ("host", "host"), ("python", "python"),
                       ("torch", "torch"), ("numpy", "numpy"), ("dask", "dask")):
        values = distinct(key)
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    variants = sorted({r.variant for r in results if r.variant})
    if variants:
        lines.append(f"variant: {', '.join(variants)}")
    finished = sorted(r.finished_at for r in results if r.finished_at)
    if finished:
        lines.append(f"computed between {finished[0]} and {finished[-1]} (UTC)")
    return lines


def _draw(exp, records, path: Path) -> Optional[str]:
    """Draw the experiment's plot into ``path``; the error text when the plot function fails."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    try:
        exp.plot(records, fig)
        fig.savefig(path, dpi=110)
    except Exception as exc:  # noqa: BLE001 - a broken plot must not lose the report
        return f"{type(exc).__name__}: {exc}"
    return None


def build_sections(db, out_dir: Path, names=None) -> list[Section]:
    """The sections of the named experiments (default: every one stored), plots drawn into
    ``out_dir``. The database is opened read-only; an unknown name is a ValueError."""
    sections = []
    with open_store(db) as store:
        for name in check_experiments(store, names) if names else store.experiments():
            results = store.results(name)
            done = [r for r in results if r.status == "done"]
            failed = [r for r in results if r.status == "failed"]
            try:
                exp = registry.get(name)
            except ValueError:
                exp = None
            order = _point_order(exp)       # records in grid order, then seed, then record index
            records = sorted(store.records(name), key=lambda r: (
                order.get(r["point"], len(order)), r["point"], r["seed"], r["record"]))
            columns, rows = _table(exp, records)
            section = Section(
                name=name, description=exp.description if exp else "(not a registered experiment here)",
                registered=exp is not None, done=len(done), failed=len(failed),
                compute_seconds=sum(r.seconds or 0.0 for r in results),
                table_columns=columns, table_rows=rows, anchor_rows=_anchor_rows(exp, records),
                failures=[f"{canonical(r.point)} seed {r.seed}: {r.error}" for r in failed],
                provenance=_provenance(results))
            if exp is not None and exp.plot is not None and records:
                path = out_dir / f"{name}.png"
                section.plot_error = _draw(exp, records, path)
                section.plot = None if section.plot_error else path
            sections.append(section)
    return sections


def make_report(db, out_dir, names=None, title: str = "thermolearn results") -> ReportFiles:
    """Write ``out_dir``/index.html, ``out_dir``/report.md and one PNG per experiment.

    The database is only read (opened with ``mode=ro``). A missing database is a
    FileNotFoundError, one that is not a thermolearn results database a StoreError, a name in
    ``names`` with no stored rows a ValueError listing the stored ones; in each case before
    anything is written.
    """
    with open_store(db) as store:               # the errors above, before the folder is made
        if names:
            check_experiments(store, names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = build_sections(db, out_dir, names)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    files = ReportFiles(html=out_dir / "index.html", markdown=out_dir / "report.md",
                        plots=[s.plot for s in sections if s.plot])
    files.html.write_text(_html(sections, title, stamp, db), encoding="utf-8")
    files.markdown.write_text(_markdown(sections, title, stamp, db), encoding="utf-8")
    return files


ANCHOR_COLUMNS = ["published quantity", "metric", "published", "measured here", "source"]


def _summary_line(s: Section) -> str:
    return f"{s.done} points done, {s.failed} failed; {format_seconds(s.compute_seconds)} of compute."


# -- Markdown ----------------------------------------------------------------------------------

def _md_table(columns, rows) -> str:
    esc = lambda t: str(t).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(sections, title, stamp, db) -> str:
    parts = [f"# {title}", "", f"From `{db}`, written {stamp}. Log-likelihoods in nats per example.", ""]
    for s in sections:
        parts += [f"## {s.name}", "", s.description, "", _summary_line(s), ""]
        if s.plot:
            parts += [f"![{s.name}]({s.plot.name})", ""]
        if s.plot_error:
            parts += [f"(the plot failed: {s.plot_error})", ""]
        if s.table_rows:
            parts += ["### Measured", "", _md_table(s.table_columns, s.table_rows), ""]
        if s.anchor_rows:
            parts += ["### Published values", "", _md_table(ANCHOR_COLUMNS, s.anchor_rows), ""]
        if s.failures:
            parts += ["### Failed points", ""] + [f"- {f}" for f in s.failures] + [""]
        if s.provenance:
            parts += ["### Provenance", ""] + [f"- {p}" for p in s.provenance] + [""]
    return "\n".join(parts)


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
.table { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.8em; line-height: 1.25; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; white-space: normal; overflow-wrap: break-word; max-width: 14em; }
td { overflow-wrap: break-word; max-width: 28em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; overflow-wrap: normal; }
img { max-width: 100%; border: 1px solid #eee; }
.meta { color: #666; font-size: 0.85em; }
.failed { color: #a00; }
"""

_NUMBER = re.compile(r"^-?(\d|inf|nan)")


def _breakable(header) -> str:
    """A header that may wrap after its underscores and slashes (raw record keys)."""
    return re.sub(r"([_/])", r"\1<wbr>", html.escape(str(header)))


def _html_table(columns, rows) -> str:
    """A table in a block that scrolls sideways rather than running off the page."""
    head = "".join(f"<th>{_breakable(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text = str(cell)
            num = _NUMBER.match(text) is not None and " / " not in text and len(text) < 40
            cells.append(f"<td{' class=num' if num else ''}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class=table><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _html(sections, title, stamp, db) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>",
             f"<p class=meta>From <code>{esc(str(db))}</code>, written {esc(stamp)}. "
             "Log-likelihoods in nats per example.</p>"]
    if sections:
        parts.append("<ul>" + "".join(f"<li><a href='#{esc(s.name)}'>{esc(s.name)}</a></li>" for s in sections)
                     + "</ul>")
    else:
        parts.append("<p>No results yet.</p>")
    for s in sections:
        parts += [f"<h2 id='{esc(s.name)}'>{esc(s.name)}</h2>", f"<p>{esc(s.description)}</p>",
                  f"<p class=meta>{esc(_summary_line(s))}</p>"]
        if s.plot:
            data = base64.b64encode(s.plot.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{esc(s.name)}' src='data:image/png;base64,{data}'>")
        if s.plot_error:
            parts.append(f"<p class=failed>The plot failed: {esc(s.plot_error)}</p>")
        if s.table_rows:
            parts += ["<h3>Measured</h3>", _html_table(s.table_columns, s.table_rows)]
        if s.anchor_rows:
            parts += ["<h3>Published values</h3>", _html_table(ANCHOR_COLUMNS, s.anchor_rows)]
        if s.failures:
            parts += ["<h3 class=failed>Failed points</h3><ul>"]
            parts += [f"<li><code>{esc(f)}</code></li>" for f in s.failures] + ["</ul>"]
        if s.provenance:
            parts += ["<h3>Provenance</h3><ul class=meta>"]
            parts += [f"<li>{esc(p)}</li>" for p in s.provenance] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
