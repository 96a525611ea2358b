"""The rollback rehearsal on the embedded default, for real: the four services upgraded,
verified, rolled back from the snapshot, verified on the base release, upgraded and
verified again, in one `run --rehearse-rollback` (MariaDB: tests/test_mariadb.py).

The same run serves the loss report (a keystone project made after the snapshot is
reported lost, and is gone after the rollback), the dump comparison, and a rollback
refused before anything is touched when a snapshot file is changed or missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, lite_dir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
PROJECTS = REPO / "grenade" / "projects"
FIXTURE = Path(__file__).parent / "fixtures" / "rollback_loss"
ROLLBACK_STEPS = ("check", "loss", "stop", "restore", "start")


@pytest.fixture
def stack_root() -> Iterator[Path]:
    with lite_dir("grenade-rollback-") as path:
        yield path / "stack"


def write_config(stack_root: Path, **grenade: Any) -> Path:
    path = stack_root.parent / "run.yaml"
    body = {"stack_root": str(stack_root), "projects_dirs": [str(FIXTURE), str(PROJECTS)]}
    path.write_text(yaml.safe_dump({"grenade": {**body, **grenade}}))
    return path


def statuses(stack_root: Path) -> dict[str, str]:
    state = json.loads((stack_root / "save" / "run-state.json").read_text())
    return {sid: rec["status"] for sid, rec in state["steps"].items()}


def rehearsal_checks(stack_root: Path, out: str) -> dict[str, Any]:
    """What every rehearsal must show, whatever the database; the report."""
    status = statuses(stack_root)
    for step in ROLLBACK_STEPS:
        assert status[f"rollback/{step}"] == "done", status
    for project in ("keystone", "placement", "swift", "glance", "after_snapshot"):
        assert status[f"verify-rollback/{project}"] == "done", status
        assert status[f"upgrade/{project}+again"] == "done", status
        assert status[f"verify-post/{project}+again"] == "done", status
    results = [
        json.loads(line)
        for line in (stack_root / "save" / "resource-results.jsonl").read_text().splitlines()
    ]
    assert results and all(r["result"] == "pass" for r in results), [
        r for r in results if r["result"] != "pass"
    ]
    rolled = {(r["project"], r["resource"]) for r in results if r["phase"] == "verify-rollback"}
    # every resource verifies on the base release after the rollback
    for check in (
        ("keystone", "token"),
        ("placement", "allocation"),
        ("swift", "object"),
        ("swift", "write"),
        ("glance", "image"),
        ("glance", "data"),
        ("after_snapshot", "project_gone"),
    ):
        assert check in rolled, sorted(rolled)
    report = json.loads((stack_root / "logs" / "report" / "report.json").read_text())
    losses = {loss["database"]: loss for loss in report["rollback_loss"]}
    lost = {t["table"]: t["lost"] for t in losses["keystone"]["tables"]}
    assert lost.get("project", 0) >= 1, losses["keystone"]
    assert "keystone: the rollback loses" in out and "project" in out
    compared = {d["database"]: d for d in report["dump_comparison"]}
    assert set(compared) == {"keystone", "placement", "glance"}, compared
    return report


def test_rehearsal_then_a_damaged_snapshot_is_refused(stack_root: Path):
    run_yaml = write_config(stack_root)
    proc = invoke(run_yaml, "run", "--rehearse-rollback", timeout=2400)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    report = rehearsal_checks(stack_root, out)
    keystone = {d["database"]: d for d in report["dump_comparison"]}["keystone"]
    assert keystone["migration"]["before"] != keystone["migration"]["after"], keystone

    snap = stack_root / "save" / "snapshots" / "pre_upgrade"
    manifest = json.loads((snap / "manifest.json").read_text())
    assert any(f["path"] == "db/keystone.dump" for f in manifest["files"])
    # a changed dump: refused, naming the file and its checksums; nothing touched
    dump = snap / "db" / "keystone.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    restored_before = statuses(stack_root)["rollback/restore"]
    proc = invoke(run_yaml, "rollback", "--force", timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "db/keystone.dump" in out and "sha256" in out, out[-4000:]
    status = statuses(stack_root)
    assert status["rollback/check"] == "failed"
    assert status["rollback/restore"] == restored_before  # never started
    # a missing one: refused, naming it
    (snap / "db" / "glance.dump").unlink()
    proc = invoke(run_yaml, "rollback", "--resume", timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "db/glance.dump" in out, out[-4000:]
