"""The report's model: one JSON-ready dict that report.json is, and the JUnit and
HTML reports are rendered from.

Built from a `Snapshot` the observer takes on the runner's thread (the steps'
entries, cheap to copy) and what the writer thread reads from disk: the setup
record, the `resource_result` reports and the service versions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..plan import COARSE, Step
from ..plugins import HOOKS
from ..record import SetupRecord
from ..resources import RESULTS_FILE, latest_attempts, read_results
from ..rollback import report_sections
from ..state import FAILED, PENDING, RUNNING, SKIPPED, StepRecord
from .matrix import FAIL, survival_matrix

SCHEMA_ID = "grenade-report/1"
VERSIONS_FILE = "service-versions.json"
PHASE_OF = {kind: phase for phase, kinds in COARSE.items() for kind in kinds}
NOT_RUN = "not run"
BY_CONFIG = "skipped by configuration"


def step_entry(
    step: Step, index: int | None, rec: StepRecord | None, steps_dir: Path
) -> dict[str, Any]:
    """A step as report.json lists it (a new dict each time: entries are never changed)."""
    rec = rec or StepRecord(status=PENDING, group=step.group)
    return {
        "id": step.id,
        "index": index,
        "phase": PHASE_OF.get(step.kind, "setup"),
        "kind": step.kind,
        "project": step.project,
        "group": rec.group or step.group,
        "script": step.script,
        "status": rec.status,
        "started": rec.started,
        "duration": rec.duration,
        "exit_code": rec.exit_code,
        "message": rec.message,
        "hosts": [
            {
                "name": name,
                "status": h.status,
                "exit_code": h.exit_code,
                "duration": h.duration,
                "log": str(steps_dir / h.log) if h.log else None,
                "message": h.message,
            }
            for name, h in rec.hosts.items()
        ],
    }


def skipped_entry(step: Step, why: str) -> dict[str, Any]:
    entry = step_entry(step, None, StepRecord(status=SKIPPED, group=step.group), Path())
    entry["message"] = why
    return entry


@dataclass(frozen=True)
class Snapshot:
    """What the observer knew after an event: the steps, in plan order, and whether
    the run has ended (`final`)."""

    steps: tuple[dict[str, Any], ...]
    final: bool = False


@dataclass(frozen=True)
class Context:
    """The run's fixed facts, read once: where things are and what setup recorded."""

    run_id: str
    stack_root: Path
    logs_dir: Path
    save_dir: Path
    setup: SetupRecord
    hosts: Mapping[str, Sequence[str]]  # host -> its groups
    controller: str  # where installed versions (the fallback) are read
    # the release directory names save-state's dumps are kept under (dumps/<name>/)
    base_name: str = "old"
    target_name: str = "new"


def check_phase(check: Mapping[str, str]) -> str:
    return check.get("phase", "")


def outcome(steps: Sequence[Mapping[str, Any]], final: bool) -> str:
    statuses = {s["status"] for s in steps}
    if FAILED in statuses:
        return "failed"
    if not final:
        return "running"
    return "incomplete" if statuses & {PENDING, RUNNING} else "passed"


def report_check(check: Mapping[str, str]) -> dict[str, str]:
    """A `resource_result` record as report.json shows it (the attempt id stays out)."""
    fields = ("project", "resource", "result", "detail", "phase", "side", "host")
    return {k: str(check.get(k, "")) for k in fields}


def errors(steps: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, str]]) -> list[Any]:
    """A failed step per failed host, with the checks that step reported failed."""
    out = []
    for s in steps:
        if s["status"] != FAILED:
            continue
        failed_checks = [
            c
            for c in checks
            if c.get("result") == FAIL
            and c.get("project") == s["project"]
            and check_phase(c) == s["kind"]
        ]
        for h in s["hosts"]:
            if h["status"] == FAILED:
                out.append(
                    {
                        "step": s["id"],
                        "project": s["project"],
                        "kind": s["kind"],
                        "host": h["name"],
                        "exit_code": h["exit_code"],
                        "message": h["message"] or s["message"],
                        "log": h["log"],
                        "failed_checks": failed_checks,
                    }
                )
    return out


def read_versions(save_dir: Path) -> list[dict[str, Any]] | None:
    """The versions the running services run (service-versions.json), per host."""
    try:
        raw = json.loads((save_dir / VERSIONS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for side, key in (("base", "before"), ("target", "after")):
        hosts = raw.get(side)
        for host, services in (hosts if isinstance(hosts, dict) else {}).items():
            for service, info in (services if isinstance(services, dict) else {}).items():
                row = rows.setdefault(
                    (host, service),
                    {"host": host, "service": service, "before": None, "after": None},
                )
                info = info if isinstance(info, dict) else {}
                row[key] = {
                    "version": _str_or_none(info.get("version")),
                    "pid": info.get("pid") if isinstance(info.get("pid"), int) else None,
                    "code": _str_or_none(info.get("code")),
                }
    return [{**r, "source": "running"} for r in rows.values()]


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def installed_versions(
    versions: Mapping[str, tuple[str | None, str | None]], host: str
) -> list[dict[str, Any]]:
    """The deployer's installed versions, when no running versions were recorded."""
    return [
        {
            "host": host,
            "service": service,
            "before": {"version": before, "pid": None, "code": None},
            "after": {"version": after, "pid": None, "code": None},
            "source": "installed",
        }
        for service, (before, after) in versions.items()
    ]


def build_report(
    ctx: Context,
    snap: Snapshot,
    checks: Sequence[Mapping[str, str]],
    versions: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    setup = ctx.setup
    steps = list(snap.steps)
    status = {s["id"]: s["status"] for s in steps}
    return {
        "schema": SCHEMA_ID,
        "run_id": ctx.run_id,
        "generated": round(time.time(), 2),
        "outcome": outcome(steps, snap.final),
        "final": snap.final,
        "stack_root": str(ctx.stack_root),
        "logs_dir": str(ctx.logs_dir),
        "trees": {
            side: {
                "path": t.path,
                "repo": t.repo,
                "branch": t.branch,
                "ref": t.ref,
                "sha": t.sha,
                "release": t.release,
            }
            for side, t in (("base", setup.base), ("target", setup.target))
        },
        "releases": {"base": setup.base.release, "target": setup.target.release},
        "plugins": [
            {"name": p.name, "path": p.path, "sha": p.sha, "branch": p.branch}
            for p in setup.plugins
        ],
        "hosts": [{"name": h, "groups": list(g)} for h, g in ctx.hosts.items()],
        "projects": [
            {"name": p.name, "dir": str(p.dir), "hooks": [h for h in HOOKS if p.hook(h)]}
            for p in setup.settings.projects
        ],
        "enabled_services": setup.enabled_services,
        "steps": steps,
        "checks": [report_check(c) for c in checks],
        "matrix": survival_matrix(checks, status),
        "versions": list(versions),
        "errors": errors(steps, [report_check(c) for c in checks]),
        **report_sections(ctx.save_dir, ctx.base_name, ctx.target_name),
    }


class ResultsReader:
    """`read_results`, again only when the file changed: most steps report nothing."""

    def __init__(self, save_dir: Path) -> None:
        self.save_dir = save_dir
        self._key: tuple[int, int] | None = None
        self._checks: list[dict[str, str]] = []

    def read(self) -> list[dict[str, str]]:
        try:
            st = (self.save_dir / RESULTS_FILE).stat()
            key = (st.st_size, st.st_mtime_ns)
        except OSError:
            key = (0, 0)
        if key != self._key:
            self._checks = latest_attempts(read_results(self.save_dir)) if key != (0, 0) else []
            self._key = key
        return self._checks


__all__ = ["Context", "Snapshot", "build_report", "step_entry"]
