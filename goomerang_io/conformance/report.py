"""Reports: JSON for machines, one HTML table for people, one line per case for terminals."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .runner import CaseResult, Report

COLOURS = {
    "OK": "#2e7d32",
    "FAILED": "#c62828",
    "INFORMATIONAL": "#1565c0",
    "NOT APPLICABLE": "#757575",
}

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px} .meta{color:#555;margin-bottom:12px}
.counts span{display:inline-block;padding:3px 10px;margin-right:6px;border-radius:4px;color:#fff}
table{border-collapse:collapse;width:100%;margin-top:14px}
th,td{border-bottom:1px solid #ddd;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} tr.group td{background:#fafafa;font-weight:600;padding-top:10px}
td.v{color:#fff;font-weight:600;white-space:nowrap;text-align:center;width:120px}
td.id{white-space:nowrap;width:40px}
.glance{margin-top:12px} .glance div{margin:2px 0} .glance b{display:inline-block;width:260px;
font-weight:500} .glance a{display:inline-block;min-width:34px;padding:1px 3px;margin:1px;
color:#fff;font-size:11px;text-align:center;border-radius:3px;text-decoration:none}
.rule{color:#666;font-size:12px}
pre{margin:4px 0 0;white-space:pre-wrap;word-break:break-all;font-size:12px;background:#f7f7f7;
padding:4px} .note{font-size:13px;color:#333;background:#fff8e1;padding:3px 6px;margin-top:4px}
"""


def write_json(report: Report, path: Path) -> None:
    """Write the report as indented JSON."""
    path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")


def _row(r: CaseResult) -> str:
    e = html.escape
    extra = ""
    if r.details:
        extra += "<br>" + "; ".join(e(d) for d in r.details)
    if r.expected or r.got:
        extra += f"<pre>expected: {e(r.expected)}\ngot:      {e(r.got)}</pre>"
    if r.note:
        extra += f'<div class="note">{e(r.note)}</div>'
    return (
        f'<tr id="c{e(r.id)}"><td class="id">{e(r.id)}</td>'
        f'<td class="v" style="background:{COLOURS[r.status]}">{e(r.status)}</td>'
        f'<td>{e(r.title)}<div class="rule">{e(r.rule)}</div></td>'
        f"<td>{e(r.summary)}{extra}</td>"
        f'<td class="id">{r.seconds:.2f}s</td></tr>'
    )


def _glance(report: Report) -> str:
    """One line per group, one coloured box per case (links to its row)."""
    e = html.escape
    lines: dict[str, list[str]] = {}
    for r in report.results:
        lines.setdefault(r.group, []).append(
            f'<a href="#c{e(r.id)}" title="{e(r.id)} {e(r.status)}: {e(r.title)}" '
            f'style="background:{COLOURS[r.status]}">{e(r.id)}</a>'
        )
    return (
        '<div class="glance">'
        + "".join(
            f"<div><b>{e(g)}. {e(report.groups.get(g, ''))}</b>{''.join(boxes)}</div>"
            for g, boxes in lines.items()
        )
        + "</div>"
    )


def render_html(report: Report, title: str | None = None) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    counts = report.counts()
    badges = "".join(
        f'<span style="background:{COLOURS[k]}">{e(k)} {v}</span>' for k, v in counts.items()
    )
    rows = []
    group = None
    for r in report.results:
        if r.group != group:
            group = r.group
            name = e(report.groups.get(group, ""))
            rows.append(f'<tr class="group"><td colspan="5">{e(group)}. {name}</td></tr>')
        rows.append(_row(r))
    heading = title or f"goomerang conformance: {report.mode}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{e(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(heading)}</h1>"
        f'<div class="meta">target <code>{e(report.target)}</code> · {e(report.started)} · '
        f"{len(report.results)} cases in {report.seconds:.1f} s</div>"
        f'<div class="counts">{badges}</div>{_glance(report)}'
        "<table><tr><th>case</th><th>verdict</th><th>what is checked</th><th>what happened</th>"
        f"<th>time</th></tr>{''.join(rows)}</table></body></html>\n"
    )


def write_html(report: Report, path: Path, title: str | None = None) -> None:
    """Write the HTML report."""
    path.write_text(render_html(report, title))


def line(r: CaseResult) -> str:
    """A case for the terminal: one line, plus what differs when it FAILED."""
    out = f"{r.id:>6}  {r.status:<15} {r.title}: {r.summary}"
    if r.status == "FAILED" and (r.expected or r.got):
        out += f"\n{'':8}expected: {r.expected[:300]}\n{'':8}got:      {r.got[:300]}"
    return out
