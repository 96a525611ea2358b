"""The reports (grenade/reports): junit.xml, report.json against its schema,
report.html rendered in headless Chromium, the summary's survival matrix, the
failure message's FAIL lines, masking, and a run killed with SIGKILL.

Real runs throughout: `python3 -m invoke run` over the fixture projects of
`fixtures/report_projects` (vault checks two resources with resource_check,
drive one, before the upgrade only), through bash, with the external deployer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FIXTURES, REPO, invoke, write_config
from junitparser import Failure, JUnitXml, Properties, Skipped

from grenade.reports import SCHEMA_FILE
from grenade.reports.matrix import matrix_table

SECRET = "vault-Pa55-7182818"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)


def report_config(run_yaml: Any, tmp_path: Path, **grenade: Any) -> Path:
    localrc = tmp_path / "localrc"
    localrc.write_text(f"ADMIN_PASSWORD={SECRET}\n")
    localrc.chmod(0o600)
    return run_yaml(
        projects_dirs=[str(FIXTURES / "report_projects")],
        enabled_services="vault,drive",
        localrc_file=str(localrc),
        **grenade,
    )


def report_dir(config: Path) -> Path:
    return config.parent / "stack" / "logs" / "report"


def load_report(config: Path, reports: Path | None = None) -> dict[str, Any]:
    """report.json, checked against the schema the package ships."""
    report = json.loads(((reports or report_dir(config)) / "report.json").read_text())
    jsonschema.validate(report, json.loads(SCHEMA_FILE.read_text()))
    return report


def cases(config: Path, reports: Path | None = None) -> dict[tuple[str, str], Any]:
    """junit.xml's testcases by (classname, name), parsed by junitparser."""
    xml = JUnitXml.fromfile(str((reports or report_dir(config)) / "junit.xml"))
    return {(c.classname, c.name): c for suite in xml for c in suite}


def chromium(*args: str) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_html_renders(html: Path, screenshot: Path) -> str:
    """The page's DOM as Chromium built it, and a screenshot of plausible size."""
    dom = chromium("--dump-dom", html.as_uri())
    assert 'id="timeline"' in dom and 'class="matrix"' in dom
    chromium(f"--screenshot={screenshot}", "--window-size=1280,2000", html.as_uri())
    assert screenshot.stat().st_size > 20_000
    return dom


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One run whose vault `door` check fails after the upgrade (shared by most tests)."""
    tmp = tmp_path_factory.mktemp("failed")
    localrc = tmp / "localrc"
    localrc.write_text(f"ADMIN_PASSWORD={SECRET}\n")
    localrc.chmod(0o600)
    config = write_config(
        tmp / "run.yaml",
        tmp / "stack",
        projects_dirs=[str(FIXTURES / "report_projects")],
        enabled_services="vault,drive",
        localrc_file=str(localrc),
    )
    proc = invoke(config, "run", env={"BREAK_IN": "verify-post/vault"})
    return config, proc


def test_passing_run_reports_every_step_and_check(run_yaml, tmp_path):
    config = report_config(run_yaml, tmp_path)
    proc = invoke(config, "run")
    assert proc.returncode == 0, proc.stderr
    report = load_report(config)
    assert report["outcome"] == "passed" and report["final"]
    assert report["releases"] == {"base": "2025.2", "target": "2026.1"}
    assert [p["name"] for p in report["projects"]] == ["vault", "drive"]
    assert report["hosts"] == [{"name": "local", "groups": ["controller"]}]
    assert all(s["status"] == "done" for s in report["steps"])
    assert report["errors"] == []
    got = cases(config)
    # a testcase per step, classname phase.kind, name the project, hosts as properties
    assert len([c for c in got if not c[0].startswith("resources.")]) == len(report["steps"])
    upgrade = got[("upgrade.upgrade", "vault")]
    assert upgrade.is_passed
    props = {p.name: p.value for p in upgrade.child(Properties)}
    assert props["host"] == "local" and props["log.local"].endswith("upgrade_vault@local.log")
    # a testcase per resource check
    checks = [c for c in got if c[0].startswith("resources.")]
    assert len(checks) == len(report["checks"]) == 9
    assert ("resources.vault.verify-post", "door") in got
    rows = {(r["project"], r["resource"]): r["cells"] for r in report["matrix"]["rows"]}
    assert rows[("vault", "gold")] == {
        **dict.fromkeys(["create", "verify-pre", "verify-noapi", "verify-post"], "pass"),
        "destroy": "missing",  # destroy ran without checking it
    }
    assert rows[("drive", "disk")]["verify-post"] == "missing"
    assert rows[("vault", "door")]["destroy"] == "pass"


def test_failed_run_junit_json_and_message(failed_run):
    config, proc = failed_run
    assert proc.returncode == 1, proc.stderr
    report = load_report(config)
    assert report["outcome"] == "failed"
    (err,) = report["errors"]
    assert err["step"] == "verify-post/vault" and err["host"] == "local"
    assert err["exit_code"] == 1 and err["log"].endswith("014-verify-post_vault@local.log")
    assert [c["resource"] for c in err["failed_checks"]] == ["door"]
    got = cases(config)
    step = got[("verify.verify-post", "vault")]
    (failure,) = step.result
    assert isinstance(failure, Failure)
    assert "exit code 1" in failure.message and err["log"] in failure.text
    check = got[("resources.vault.verify-post", "door")]
    (failure,) = check.result
    assert failure.message.startswith("FAIL vault door: the door stays shut: got 'opened with")
    # what did not run is skipped
    (skip,) = got[("destroy.destroy", "vault")].result
    assert isinstance(skip, Skipped) and skip.message == "not run"
    # the message leads with the failed check, before the log's tail
    err_text = proc.stderr
    lines = err_text.splitlines()
    head = next(i for i, ln in enumerate(lines) if "FAILED step verify-post/vault" in ln)
    assert lines[head + 1].startswith("  FAIL vault door: the door stays shut: got 'opened")
    assert err_text.index("FAIL vault door") < err_text.index("last 20 lines")


def test_summary_prints_the_survival_matrix(failed_run):
    config, proc = failed_run
    out = proc.stdout
    table = out[out.index("resource survival") :].splitlines()[1:5]
    assert table[0].split() == [
        "resource",
        "create",
        "verify",
        "pre-upgrade",
        "verify_noapi",
        "pre-upgrade",
        "verify",
        "post-upgrade",
    ]
    assert table[1].split() == ["vault", "door", "ok", "ok", "missing", "FAIL"]
    assert table[2].split() == ["vault", "gold", "ok", "ok", "ok", "ok"]
    assert table[3].split() == ["drive", "disk", "missing", "ok", "missing", "-"]
    report = load_report(config)
    assert matrix_table(report["matrix"])[1].split() == table[1].split()


def test_secrets_are_masked_in_every_report(failed_run):
    config, _ = failed_run
    for name in ("report.json", "junit.xml", "report.html"):
        text = (report_dir(config) / name).read_text()
        assert SECRET not in text, name
        assert "opened with ******" in text, name


@needs_chromium
def test_html_renders_in_chromium(failed_run, tmp_path):
    config, _ = failed_run
    html = report_dir(config) / "report.html"
    dom = check_html_renders(html, tmp_path / "report.png")
    assert dom.index('id="failure"') < dom.index('id="timeline"')  # the failure first
    assert "FAIL vault door: the door stays shut" in dom
    assert dom.count('class="bar ') == 14  # the steps that ran, the failed one included
    assert '<td class="fail">FAIL</td>' in dom and '<td class="missing">missing</td>' in dom
    assert 'href="../steps/014-verify-post_vault%40local.log"' in dom
    assert (html.parent / "../steps/014-verify-post_vault@local.log").exists()
    assert SECRET not in dom


def test_skipped_by_configuration(run_yaml, tmp_path):
    config = report_config(run_yaml, tmp_path, verify_resources=False)
    proc = invoke(config, "run")
    assert proc.returncode == 0, proc.stderr
    report = load_report(config)
    skipped = [s for s in report["steps"] if s["status"] == "skipped"]
    assert {s["id"] for s in skipped} >= {"create/vault", "verify-post/drive"}
    (skip,) = cases(config)[("base.create", "vault")].result
    assert isinstance(skip, Skipped) and skip.message == "skipped by configuration"


def test_sigkilled_runner_leaves_reports_of_finished_steps(run_yaml, tmp_path):
    config = report_config(run_yaml, tmp_path)
    stack = config.parent / "stack"
    runner = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "-f", str(config), "run"],
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HANG_IN": "upgrade/vault"},
    )
    hung = stack / "save" / "hung.pid"
    try:
        deadline = time.monotonic() + 60
        while not hung.exists():
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)

        def running_upgrade() -> bool:
            try:
                report = load_report(config)
            except (OSError, ValueError):
                return False
            return any(
                s["id"] == "upgrade/vault" and s["status"] == "running" for s in report["steps"]
            )

        while not running_upgrade():  # the writer rests between writes
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        runner.kill()
        runner.wait(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    report = load_report(config)
    status = {s["id"]: s["status"] for s in report["steps"]}
    assert report["outcome"] == "running" and not report["final"]
    assert status["shutdown/vault"] == status["verify-noapi/drive"] == "done"
    assert status["upgrade/vault"] == "running" and status["destroy/vault"] == "pending"
    got = cases(config)
    assert got[("upgrade.shutdown", "vault")].is_passed
    assert got[("resources.vault.verify-noapi", "gold")].is_passed
    assert 'class="bar running"' in (report_dir(config) / "report.html").read_text()


def test_the_final_report_is_not_held_back_by_a_rest():
    """close() asks for the final snapshot while another is being written: that one's
    rest (MIN_REST, 2 s) must not delay the final write, nor the end of the run."""
    from grenade.reports.observer import MIN_REST, SnapshotWriter

    written: list[bool] = []
    started = threading.Event()

    def write(final: bool) -> None:
        started.set()
        time.sleep(0.3)
        written.append(final)

    writer = SnapshotWriter(write)
    writer.submit()
    assert started.wait(5)
    begin = time.monotonic()
    writer.submit(final=True)  # while the first write is still going
    writer.flush()
    took = time.monotonic() - begin
    writer.stop()
    assert written == [False, True]
    assert took < MIN_REST / 2, took
