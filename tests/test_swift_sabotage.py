"""Swift's checks catch what they are for, on a real keystone + swift cloud.

One real run (keystone and the four swift servers only) serves both faults:
1. verify_noapi while the proxy still answers (a project's shutdown starts the base
   swift again) fails naming the proxy's address; the run keeps its state;
2. once the proxy is stopped by hand, `run --resume` goes on; the upgrade deletes the
   object's .data file, and verify post-upgrade fails naming the object.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import invoke

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "swift_sabotage"
PROJECTS = Path(__file__).parent.parent / "grenade" / "projects"


@pytest.fixture
def stack_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="grenade-swift-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path / "stack"
    for side in ("new", "old"):
        tree = path / "stack" / side / "devstack"
        if (tree / "unstack.sh").is_file():
            subprocess.run(["bash", "./unstack.sh"], cwd=tree, capture_output=True, timeout=120)
    shutil.rmtree(path, ignore_errors=True)


def results(stack_root: Path) -> list[dict[str, str]]:
    text = (stack_root / "save" / "resource-results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_proxy_left_up_and_a_lost_data_file_fail_naming_them(stack_root: Path):
    sabotage = stack_root.parent / "sabotage"
    shutil.copytree(FIXTURE, sabotage)
    flags = sabotage / "05_sabotage"
    (flags / "keep-proxy").touch()
    (flags / "delete-object").touch()
    run_yaml = stack_root.parent / "run.yaml"
    run_yaml.write_text(
        yaml.safe_dump(
            {
                "grenade": {
                    "stack_root": str(stack_root),
                    # first: its shutdown runs last (shutdown goes in reverse)
                    "projects_dirs": [str(sabotage), str(PROJECTS)],
                    "enabled_services": "key,s-proxy,s-account,s-container,s-object",
                }
            }
        )
    )
    proc = invoke(run_yaml, "run", timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "FAILED step verify-noapi/swift" in proc.stderr, out[-4000:]
    assert "FAIL swift swift_api_down: nothing accepts connections at http://" in proc.stderr
    state = json.loads((stack_root / "save" / "run-state.json").read_text())
    assert state["failed_step"] == "verify-noapi/swift"
    # the data file itself was fine: only the proxy was wrong
    noapi = {r["resource"]: r["result"] for r in results(stack_root) if r["project"] == "swift"}
    assert noapi["swift_api_down"] == "fail" and noapi["data_file"] == "pass"

    # stop what the sabotage started, then resume: verify_noapi passes, and the
    # upgrade loses the object's data
    (flags / "keep-proxy").unlink()
    base = stack_root / "old" / "devstack"
    stop = "source ./functions; source ./stackrc; source lib/swift; stop_swift"
    subprocess.run(["bash", "-c", stop], cwd=base, check=True, capture_output=True, timeout=120)
    proc = invoke(run_yaml, "run", "--resume", timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "FAILED step verify-post/swift" in proc.stderr, out[-4000:]
    account = next(r for r in results(stack_root) if r["resource"] == "object")["detail"]
    assert "object grenade-cont/payload.bin of AUTH_" in account
    assert "FAIL swift object: object grenade-cont/payload.bin of AUTH_" in proc.stderr
    assert "HTTP 404" in proc.stderr
    # the resumed verify_noapi replaced the failed attempt's results in the matrix
    assert "swift swift_api_down" in proc.stdout
    matrix = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("swift ")]
    api_down = next(ln for ln in matrix if "swift_api_down" in ln)
    assert "ok" in api_down and "FAIL" not in api_down, matrix
    obj = next(ln for ln in matrix if " object " in f" {ln} ")
    assert obj.split()[-1] == "FAIL", matrix
