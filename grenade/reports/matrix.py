"""The resource × phase survival matrix, from the `resource_result` reports.

A row per resource a project checked, a column per resource phase some check
reported in (in run order). A cell is `pass` or `fail` (any failing check of the
resource in that phase), `missing` when the project's step of that phase ran but
did not check the resource (it was lost, or the check was forgotten), `not-run`
when that step has not finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..plan import KINDS, RESOURCE_PHASES
from ..resources import latest_attempts
from ..state import DONE, FAILED

PASS, FAIL, MISSING, NOT_RUN = "pass", "fail", "missing", "not-run"
MARKS = {PASS: "ok", FAIL: "FAIL", MISSING: "missing", NOT_RUN: "-"}


def phase_label(phase: str) -> str:
    """`verify-post` -> `verify post-upgrade`: the resources.sh arguments of a step kind."""
    return " ".join(RESOURCE_PHASES.get(phase, (phase,)))


def _phase_order(phase: str) -> tuple[int, str]:
    return (KINDS.index(phase) if phase in KINDS else len(KINDS), phase)


def survival_matrix(
    checks: Sequence[Mapping[str, str]], step_status: Mapping[str, str]
) -> dict[str, Any]:
    """`{"phases": [{"id", "label"}], "rows": [{"project", "resource", "cells"}]}`;
    `step_status` maps step ids (`verify-post/alpha`) to their status."""
    checks = latest_attempts(checks)
    phases = sorted({c.get("phase", "") for c in checks}, key=_phase_order)
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for c in checks:
        cells = seen.setdefault((c.get("project", ""), c.get("resource", "")), {})
        phase = c.get("phase", "")
        if c.get("result") == PASS:
            cells.setdefault(phase, PASS)
        else:
            cells[phase] = FAIL
    rows = []
    for (project, resource), cells in seen.items():
        for phase in phases:
            if phase not in cells:
                ran = step_status.get(f"{phase}/{project}") in (DONE, FAILED)
                cells[phase] = MISSING if ran else NOT_RUN
        rows.append(
            {
                "project": project,
                "resource": resource,
                "cells": {p: cells[p] for p in phases},
            }
        )
    return {"phases": [{"id": p, "label": phase_label(p)} for p in phases], "rows": rows}


def matrix_table(matrix: Mapping[str, Any], indent: str = "    ") -> list[str]:
    """The matrix as text: resources down, phases across."""
    phases = [p["id"] for p in matrix["phases"]]
    if not matrix["rows"]:
        return []
    names = [f"{r['project']} {r['resource']}" for r in matrix["rows"]]
    first = max(len(n) for n in [*names, "resource"])
    widths = [max(len(phase_label(p)), 7) for p in phases]
    head = "  ".join(f"{phase_label(p):{w}}" for p, w in zip(phases, widths, strict=True))
    out = [f"{indent}{'resource':{first}}  {head}".rstrip()]
    for name, row in zip(names, matrix["rows"], strict=True):
        cells = "  ".join(
            f"{MARKS[row['cells'][p]]:{w}}" for p, w in zip(phases, widths, strict=True)
        )
        out.append(f"{indent}{name:{first}}  {cells}".rstrip())
    return out
