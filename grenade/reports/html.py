"""report/report.html: the page a person opens after a run, one self-contained file.

No scripts, no network: inline CSS, the timeline as absolutely positioned bars.
Every value from the run is escaped; step logs are linked relatively
(`../steps/<log>`), so the logs directory can be copied or served as it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from .matrix import MARKS

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
th{background:#f0f0f0}code{font-size:.95em}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:bold}
.passed{background:#2e7d32}.failed{background:#c62828}.running,.incomplete{background:#ef6c00}
.failure{border:2px solid #c62828;background:#fdecea;padding:.6em 1em;margin:1em 0}
.failure pre{white-space:pre-wrap;margin:.3em 0}
td.pass{background:#c8e6c9}td.fail{background:#ffcdd2;font-weight:bold}
td.missing{background:#fff3c4}td.not-run{background:#eee;color:#777}
.timeline{position:relative;border-left:1px solid #999;margin-left:260px}
.axis{position:relative;height:18px;margin-left:260px;font-size:11px;color:#555}
.tick{position:absolute;top:0;border-left:1px solid #bbb;padding-left:2px;height:18px}
.row{position:relative;height:14px;margin:1px 0}
.label{position:absolute;left:-258px;width:254px;font-size:11px;overflow:hidden;
white-space:nowrap;text-overflow:ellipsis;text-align:right}
.bar{position:absolute;top:2px;height:10px;min-width:2px;border-radius:2px}
.bar.done{background:#43a047}.bar.failed{background:#e53935}.bar.running{background:#fb8c00}
.bar.pending,.bar.skipped{background:#bbb}
.phase-base{color:#1565c0}.phase-upgrade{color:#6a1b9a}.phase-verify{color:#2e7d32}
.phase-destroy{color:#6d4c41}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def log_link(path: str | None) -> str:
    if not path:
        return ""
    name = PurePath(path).name
    return f'<a href="../steps/{_e(quote(name))}">{_e(name)}</a>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    out = [f'<table class="{cls}"><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def failure_block(report: Mapping[str, Any]) -> str:
    if not report["errors"]:
        return ""
    out = ['<section class="failure" id="failure"><h2>The run failed</h2>']
    for err in report["errors"]:
        out.append(
            f"<p><b>{_e(err['step'])}</b>: project {_e(err['project'])}, phase "
            f"{_e(err['kind'])}, host {_e(err['host'])}, exit code {_e(err['exit_code'])}"
            f" &mdash; log {log_link(err['log'])}</p>"
        )
        lines = [
            f"FAIL {c['project']} {c['resource']}: {c['detail']}" for c in err["failed_checks"]
        ]
        lines.append(err["message"])
        out.append("<pre>" + _e("\n".join(lines)) + "</pre>")
    return "\n".join(out) + "</section>"


def trees_table(report: Mapping[str, Any]) -> str:
    rows = [
        [
            f"<td>{_e(side)}</td>",
            f"<td>{_e(t['branch'])} {_e(t['ref'] or '')}</td>",
            f"<td>{_e(t['release'])}</td>",
            f"<td><code>{_e(t['sha'] or '-')}</code></td>",
            f"<td><code>{_e(t['path'])}</code></td>",
        ]
        for side, t in report["trees"].items()
    ]
    rows += [
        [
            f"<td>plugin {_e(p['name'])}</td>",
            f"<td>{_e(p['branch'])}</td>",
            "<td></td>",
            f"<td><code>{_e(p['sha'] or '-')}</code></td>",
            f"<td><code>{_e(p['path'])}</code></td>",
        ]
        for p in report["plugins"]
    ]
    return _table(["tree", "branch", "release", "SHA", "path"], rows, "trees")


def _span(steps: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    ran = [s for s in steps if s["started"] is not None]
    if not ran:
        return 0.0, 1.0
    start = min(s["started"] for s in ran)
    end = max(s["started"] + (s["duration"] or 0) for s in ran)
    return start, max(end - start, 0.001)


def timeline(report: Mapping[str, Any]) -> str:
    """A bar per step that started, on one time axis from the first start."""
    steps = [s for s in report["steps"] if s["started"] is not None]
    if not steps:
        return '<p class="timeline-empty">no step has run yet</p>'
    start, span = _span(steps)
    digits = 0 if span >= 50 else 1 if span >= 5 else 2
    ticks = "".join(
        f'<div class="tick" style="left:{i * 20}%">{span * i / 5:.{digits}f}s</div>'
        for i in range(5)
    )
    rows = []
    for s in steps:
        left = (s["started"] - start) / span * 100
        width = (s["duration"] or 0) / span * 100
        title = f"{s['id']}: {s['status']}, {s['duration'] or 0:.2f}s"
        rows.append(
            f'<div class="row"><span class="label phase-{_e(s["phase"])}">{_e(s["id"])}</span>'
            f'<div class="bar {_e(s["status"])}" title="{_e(title)}" '
            f'style="left:{left:.3f}%;width:{width:.3f}%"></div></div>'
        )
    return (
        f'<div class="axis">{ticks}</div><div class="timeline" id="timeline">'
        + "\n".join(rows)
        + "</div>"
    )


def matrix_table(report: Mapping[str, Any]) -> str:
    matrix = report["matrix"]
    if not matrix["rows"]:
        return "<p>no resource checks were reported (resource_result)</p>"
    phases = matrix["phases"]
    rows = [
        [f"<td>{_e(r['project'])}</td>", f"<td>{_e(r['resource'])}</td>"]
        + [
            f'<td class="{_e(r["cells"][p["id"]])}">{_e(MARKS[r["cells"][p["id"]]])}</td>'
            for p in phases
        ]
        for r in matrix["rows"]
    ]
    return _table(["project", "resource"] + [_e(p["label"]) for p in phases], rows, "matrix")


def versions_table(report: Mapping[str, Any]) -> str:
    if not report["versions"]:
        return "<p>no service versions recorded</p>"

    def side(v: Mapping[str, Any] | None) -> str:
        if not v:
            return "-"
        pid = f" (pid {v['pid']})" if v.get("pid") else ""
        return f"{v.get('version') or '-'}{pid}"

    rows = [
        [
            f"<td>{_e(v['host'])}</td>",
            f"<td>{_e(v['service'])}</td>",
            f"<td>{_e(side(v['before']))} &rarr; {_e(side(v['after']))}</td>",
            f"<td>{_e(v['source'])}</td>",
        ]
        for v in report["versions"]
    ]
    return _table(["host", "service", "before &rarr; after", "read from"], rows, "versions")


def steps_table(report: Mapping[str, Any]) -> str:
    rows = []
    for s in report["steps"]:
        logs = " ".join(f"{_e(h['name'])}: {log_link(h['log'])}" for h in s["hosts"] if h["log"])
        dur = f"{s['duration']:.2f}s" if s["duration"] is not None else ""
        rows.append(
            [
                f"<td>{_e(s['index'] or '')}</td>",
                f"<td>{_e(s['id'])}</td>",
                f'<td class="{_e(s["status"])}">{_e(s["status"])}</td>',
                f"<td>{_e(dur)}</td>",
                f"<td>{_e(s['exit_code'] if s['exit_code'] is not None else '')}</td>",
                f"<td>{logs or _e(s['message'])}</td>",
            ]
        )
    return _table(["#", "step", "status", "duration", "exit", "logs"], rows, "steps")


def report_html(report: Mapping[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report["generated"]))
    hosts = ", ".join(f"{h['name']} ({' '.join(h['groups'])})" for h in report["hosts"])
    projects = ", ".join(p["name"] for p in report["projects"])
    outcome = report["outcome"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>grenade {_e(report["run_id"])}: {_e(outcome)}</title>
<style>{CSS}</style></head><body>
<h1>grenade run {_e(report["run_id"])} <span class="badge {_e(outcome)}" id="outcome">{
        _e(outcome)
    }</span></h1>
<p>{_e(report["releases"]["base"])} &rarr; {_e(report["releases"]["target"])} on
<code>{_e(report["stack_root"])}</code>; hosts: {_e(hosts)}; projects: {_e(projects)};
written {_e(when)}</p>
{failure_block(report)}
<h2>Trees</h2>
{trees_table(report)}
<h2>Timeline</h2>
{timeline(report)}
<h2>Resource survival</h2>
{matrix_table(report)}
<h2>Service versions</h2>
{versions_table(report)}
<h2>Steps</h2>
{steps_table(report)}
</body></html>
"""
