"""The main job: a real upgrade of real keystone, placement, swift and glance through
`invoke run`.

Slow (about 100 s with a warm uv cache; the venvs' downloads are shared inside one CI
run). Also one negative run: a target tree whose keystone regenerates its fernet keys
on start must fail the run, naming the token that no longer validates.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import yaml
from conftest import invoke
from test_reports import CHROMIUM, cases, check_html_renders, load_report

from grenade.deployers.lite import build_repo

pytestmark = pytest.mark.slow


@pytest.fixture
def stack_root() -> Iterator[Path]:
    """A stack_root every user can enter: PostgreSQL runs as the postgres user."""
    path = Path(tempfile.mkdtemp(prefix="grenade-main-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path / "stack"
    for side in ("new", "old"):  # never leave services behind, whatever happened
        tree = path / "stack" / side / "devstack"
        if (tree / "unstack.sh").is_file():
            subprocess.run(["bash", "./unstack.sh"], cwd=tree, capture_output=True, timeout=120)
    shutil.rmtree(path, ignore_errors=True)


def config(stack_root: Path, **grenade) -> Path:
    path = stack_root.parent / "run.yaml"
    path.write_text(yaml.safe_dump({"grenade": {"stack_root": str(stack_root), **grenade}}))
    return path


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_invoke_run_upgrades_the_four_services(stack_root: Path):
    run_yaml = config(stack_root)  # everything else: the defaults, i.e. the main job
    proc = invoke(run_yaml, "run", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "keystone      28.1.0 -> 29.1.0" in out
    assert "placement     14.0.0 -> 15.0.0" in out
    assert "swift         2.36.4 -> 2.37.4" in out
    assert "glance        31.1.0 -> 32.0.0" in out
    assert "FAIL" not in out

    save = stack_root / "save"
    results = [json.loads(ln) for ln in (save / "resource-results.jsonl").read_text().splitlines()]
    assert results and all(r["result"] == "pass" for r in results)
    checked = {(r["project"], r["phase"], r["resource"]) for r in results}
    for phase in ("verify-pre", "verify-post"):
        assert ("keystone", phase, "token") in checked
        assert ("placement", phase, "allocation") in checked
        # swift's object: bytes, metadata, the pre-upgrade token; glance's image
        for resource in ("object", "old_token", "write"):
            assert ("swift", phase, resource) in checked
        for resource in ("image", "data"):
            assert ("glance", phase, resource) in checked
    assert ("keystone", "verify-noapi", "identity_api_down") in checked
    assert ("placement", "verify-noapi", "placement_api_down") in checked
    # with the APIs down: the object's .data file and the image's stored file
    assert ("swift", "verify-noapi", "swift_api_down") in checked
    assert ("swift", "verify-noapi", "data_file") in checked
    assert ("glance", "verify-noapi", "glance_api_down") in checked
    assert ("glance", "verify-noapi", "data") in checked
    assert (save / "glance.sql.old").stat().st_size > 0
    # every swift server and glance ran the target's code after the upgrade
    versions = json.loads((save / "service-versions.json").read_text())
    for side, swift, glance in (("base", "2.36.4", "31.1.0"), ("target", "2.37.4", "32.0.0")):
        running = versions[side]["local"]
        for server in ("s-proxy", "s-account", "s-container", "s-object"):
            assert running[server]["version"] == swift, (side, server, running)
        assert running["g-api"]["version"] == glance, (side, running)
    check_main_job_reports(stack_root)
    upgrade_log = next((stack_root / "logs" / "steps").glob("*upgrade_keystone@local.log"))
    assert "Running upgrade 47147121" in upgrade_log.read_text()  # keystone's expand ran
    assert (save / "keystone.sql.old").stat().st_size > 0  # register_db_to_save dumps
    assert (save / "keystone.sql.new").stat().st_size > 0

    # destroy then clean leave no processes and no listening ports behind
    ports = [
        int(v)
        for k, v in (
            line.split("=", 1)
            for line in (stack_root / "data" / "lite.env").read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        if k.endswith("PORT")
    ]
    assert ports and any(listening(p) for p in ports)
    assert invoke(run_yaml, "destroy").returncode == 0
    proc = invoke(run_yaml, "clean")
    assert proc.returncode == 0, proc.stderr
    assert not [p for p in ports if listening(p)]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(stack_root) not in ps


def check_main_job_reports(stack_root: Path) -> None:
    """report.json validates, junit.xml parses, report.html renders the matrix and
    the timeline in headless Chromium (when it is installed)."""
    reports = stack_root / "logs" / "report"
    report = load_report(stack_root, reports)
    assert report["outcome"] == "passed"
    steps = [s for s in report["steps"] if s["status"] != "skipped"]
    assert steps and all(s["status"] == "done" for s in steps)
    rows = {(r["project"], r["resource"]): r["cells"] for r in report["matrix"]["rows"]}
    assert rows[("keystone", "token")]["verify-post"] == "pass"
    services = {v["service"]: v for v in report["versions"]}
    assert services["keystone"]["before"]["version"] == "28.1.0"
    assert services["keystone"]["after"]["version"] == "29.1.0"
    got = cases(stack_root, reports)
    assert ("upgrade.upgrade", "keystone") in got
    assert got[("resources.keystone.verify-post", "token")].is_passed
    if CHROMIUM is None:
        return  # the HTML is checked where Chromium is (.ci/run installs it)
    dom = check_html_renders(reports / "report.html", stack_root.parent / "report.png")
    assert dom.count('class="bar done"') == len(steps)
    assert "29.1.0" in dom and ">token<" in dom


def test_broken_target_fails_naming_the_resource(stack_root: Path):
    # A target release whose keystone regenerates its fernet keys when it starts:
    # every token issued before the upgrade stops validating.
    src = stack_root.parent / "lite-src"
    git.Repo.clone_from(
        str(build_repo(stack_root.parent / "lite.git")), src, branch="stable/2026.1"
    )
    lib = src / "lib" / "keystone"
    text = lib.read_text()
    assert "function start_keystone {\n" in text
    lib.write_text(
        text.replace(
            "function start_keystone {\n",
            (
                "function start_keystone {\n"
                '    rm -rf "$KEYSTONE_FERNET_KEYS_DIR"\n'
                '    "$KEYSTONE_BIN_DIR/keystone-manage" fernet_setup --keystone-user "$(id -un)" '
                '--keystone-group "$(id -gn)"\n'
            ),
            1,
        )
    )
    repo = git.Repo(src)
    repo.git.commit("-qam", "broken: regenerate fernet keys on start")
    run_yaml = config(
        stack_root,
        target={"repo": str(src), "branch": "stable/2026.1"},
        enabled_services="key,placement-api",  # keystone fails first: the rest adds nothing
    )
    proc = invoke(run_yaml, "run", timeout=1200)
    assert proc.returncode != 0
    assert "FAILED step verify-post/keystone" in proc.stderr
    assert "token" in proc.stderr
    results = [
        json.loads(ln)
        for ln in (stack_root / "save" / "resource-results.jsonl").read_text().splitlines()
    ]
    failed = {(r["project"], r["resource"]) for r in results if r["result"] == "fail"}
    assert ("keystone", "token") in failed
    # the failure keeps the state, resource memory and logs for a look or a resume
    state = json.loads((stack_root / "save" / "run-state.json").read_text())
    assert state["failed_step"] == "verify-post/keystone"
    assert (stack_root / "save" / "grenade_db.ini").read_text().strip()
