"""Version convergence (grenade.versions, the shipped reading tool, the plan's steps).

The fast tests read real processes started from real venvs: a base and a target
release dir, each with a venv holding a tiny distribution at its own version, and the
lite tree's pidfile layout. The slow one is a real lite upgrade whose fixture project
restarts keystone from the base tree's code after the upgrade.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, invoke

from grenade.plan import KINDS, PlanInputs, build_plan
from grenade.plugins import Project, Settings
from grenade.rundir import SHELL_DIR

TOOL = SHELL_DIR / "tools" / "service_versions.py"
VERSIONS = {"old": "1.0", "new": "2.0"}


def make_release(root: Path, side: str) -> Path:
    """A release dir with a venv holding the distribution tiny-svc at the side's version."""
    release = root / side
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(release / "venv")], check=True
    )
    (site,) = (release / "venv").glob("lib/python3*/site-packages")
    version = VERSIONS[side]
    (site / "tinysvc").mkdir()
    (site / "tinysvc" / "__init__.py").write_text("")
    info = site / f"tiny_svc-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tiny-svc\nVersion: {version}\n")
    (info / "top_level.txt").write_text("tinysvc\n")
    return release


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[tuple[Path, Path, list[subprocess.Popen[bytes]]]]:
    """Base and target release dirs; started processes are killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield make_release(tmp_path, "old"), make_release(tmp_path, "new"), started
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start(
    release: Path,
    service: str,
    started: list[subprocess.Popen[bytes]],
    *,
    shell: bool = False,
    by_name: bool = False,
) -> int:
    """Start a service from the release's venv in its own process group, its pid in the
    lite tree's pidfile; shell: under a bash leader, as run_process may leave it;
    by_name: as `python` found on PATH (no slash in argv[0])."""
    python = "python" if by_name else str(release / "venv" / "bin" / "python")
    # importing the package proves the process runs that venv's code
    code = "import tinysvc, time; print('up', flush=True); time.sleep(60)"
    argv = ["bash", "-c", f"{python} -c {code!r}; true"] if shell else [python, "-c", code]
    env = {**os.environ, "PATH": f"{release / 'venv' / 'bin'}:{os.environ['PATH']}"}
    proc = subprocess.Popen(argv, start_new_session=True, env=env, stdout=subprocess.PIPE)
    started.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    pidfile = release / "status" / "stack" / f"{service}.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def read(*release_dirs: Path) -> dict:
    argv = [sys.executable, str(TOOL), "--service", "tiny=tiny_svc"]
    for release in release_dirs:
        argv += ["--release-dir", str(release)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def reading_argv(old: Path, new: Path) -> list[str]:
    return [
        sys.executable,
        str(TOOL),
        "--release-dir",
        str(old),
        "--release-dir",
        str(new),
        "--service",
        "tiny=tiny-svc",
    ]


def versions(*args: str, save: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # GRENADE_DIR's copy, as the steps run it: nothing but the standard library
        [sys.executable, "-I", str(SHELL_DIR / "tools" / "versions.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SAVE_DIR": str(save), "GRENADE_HOST": "node1"},
    )


def test_reading_names_pid_version_and_code_of_the_running_process(releases):
    old, new, started = releases
    pid = start(new, "tiny", started)
    assert read(old, new) == {
        "tiny": {
            "pid": pid,
            "version": "2.0",
            "code": str(next(new.glob("venv/lib/python3*/site-packages")) / "tinysvc"),
        }
    }


def test_reading_follows_the_process_not_the_pidfile_dir(releases):
    # the pidfile is the target's, the process runs the base venv (a wrong path)
    old, new, started = releases
    start(old, "tiny", started)
    (new / "status" / "stack").mkdir(parents=True)
    (old / "status" / "stack" / "tiny.pid").rename(new / "status" / "stack" / "tiny.pid")
    entry = read(old, new)["tiny"]
    assert entry["version"] == "1.0" and entry["code"].startswith(str(old))


def test_reading_finds_the_interpreter_under_a_shell_leader_and_on_path(releases):
    old, new, started = releases
    leader = start(new, "tiny", started, shell=True, by_name=True)
    entry = read(old, new)["tiny"]
    assert entry["pid"] != leader  # the python process of the group, not bash
    assert entry["version"] == "2.0" and entry["code"].startswith(str(new))


def test_reading_names_a_service_process_by_its_pidfile(releases):
    # lib/placement runs placement-api: the process is named as devstack names it
    old, new, started = releases
    pid = start(new, "tiny-api", started)
    assert read(old, new) == {"tiny-api": {**read(old, new)["tiny-api"], "pid": pid}}
    assert read(old, new)["tiny-api"]["version"] == "2.0"


def test_reading_skips_stale_pidfiles_and_lists_every_live_process(releases):
    old, new, started = releases
    stale = new / "status" / "stack" / "gone.pid"
    stale.parent.mkdir(parents=True)
    stale.write_text("999999999\n")
    assert read(old, new) == {}
    start(old, "tiny", started)
    start(new, "tiny", started)
    entry = read(old, new)["tiny"]
    assert [entry["version"], *(p["version"] for p in entry["also"])] == ["1.0", "2.0"]


def test_check_fails_naming_service_host_pid_and_version_of_base_code(releases, tmp_path):
    old, new, started = releases
    save = tmp_path / "save"
    start(old, "tiny", started)
    record = versions("record", "--", *reading_argv(old, new), save=save)
    assert record.returncode == 0, record.stderr
    os.killpg(started[0].pid, signal.SIGKILL)
    started[0].wait()
    pid = start(old, "tiny", started)  # "upgraded", yet restarted from the base's code
    check = versions("check", "--target-dir", str(new), "--", *reading_argv(old, new), save=save)
    assert check.returncode == 1
    assert (
        f"FAIL service tiny on host node1 does not run the target's code: pid {pid} "
        f"runs version 1.0 from {old}" in check.stderr
    )
    data = json.loads((save / "service-versions.json").read_text())
    assert data["base"]["node1"]["tiny"]["version"] == "1.0"
    assert data["target"]["node1"]["tiny"] == {
        "pid": pid,
        "version": "1.0",
        "code": str(next(old.glob("venv/lib/python3*/site-packages")) / "tinysvc"),
    }


def test_check_passes_on_target_code_and_fails_on_a_service_gone(releases, tmp_path):
    old, new, started = releases
    save = tmp_path / "save"
    start(old, "tiny", started)
    assert versions("record", "--", *reading_argv(old, new), save=save).returncode == 0
    os.killpg(started[0].pid, signal.SIGKILL)
    started[0].wait()
    check_argv = ["check", "--target-dir", str(new), "--", *reading_argv(old, new)]
    gone = versions(*check_argv, save=save)
    assert gone.returncode == 1
    assert "service tiny on host node1 is not running after the upgrade" in gone.stderr
    start(new, "tiny", started)
    ok = versions(*check_argv, save=save)
    assert ok.returncode == 0, ok.stderr
    assert "every service on node1 runs the target's code" in ok.stdout


def test_a_failing_reading_fails_the_step_with_its_error(tmp_path):
    proc = versions("record", "--", "false", save=tmp_path)
    assert proc.returncode == 1 and "the version reading exited 1" in proc.stderr


def plan_inputs(**kw: object) -> PlanInputs:
    projects = FIXTURES / "projects"
    settings = Settings(projects=[Project("alpha", str(projects / "10_alpha"))])
    return PlanInputs(
        settings=settings,
        grenade_dir=Path("/stack/grenade"),
        base_branch="stable/2025.2",
        target_branch="stable/2026.1",
        base_release="2025.2",
        target_devstack="/stack/new/devstack",
        **kw,  # type: ignore[arg-type]
    )


def test_plan_records_after_verify_base_and_checks_after_upgrade():
    steps = build_plan(plan_inputs(versions=("read", "--x")))
    kinds = [s.kind for s in steps]
    assert kinds.index("versions-base") == kinds.index("verify-base") + 1
    assert kinds.index("converge") == len(kinds) - 1 - kinds[::-1].index("upgrade") + 1
    (record,) = (s for s in steps if s.kind == "versions-base")
    (check,) = (s for s in steps if s.kind == "converge")
    tool = ("python3", "/stack/grenade/tools/versions.py")  # GRENADE_DIR's copy
    assert record.argv == (*tool, "record", "--", "read", "--x")
    assert check.argv == (*tool, "check", "--target-dir", "/stack/new", "--", "read", "--x")
    assert check.side == "target"
    assert KINDS.index("versions-base") < KINDS.index("converge")


def test_no_reading_plans_no_convergence_steps():
    kinds = {s.kind for s in build_plan(plan_inputs())}
    assert not kinds & {"versions-base", "converge"}


# -- the acceptance run -------------------------------------------------------------------


@pytest.fixture
def stack_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="grenade-converge-", dir="/var/tmp"))
    os.chmod(path, 0o755)  # PostgreSQL runs as the postgres user
    yield path / "stack"
    for side in ("new", "old"):
        tree = path / "stack" / side / "devstack"
        if (tree / "unstack.sh").is_file():
            subprocess.run(["bash", "./unstack.sh"], cwd=tree, capture_output=True, timeout=120)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_a_service_restarted_from_base_code_fails_the_run(stack_root: Path):
    """A project upgraded after keystone restarts keystone from the base tree."""
    assert subprocess.run(["pgrep", "-f", "keystone"], capture_output=True).returncode != 0, (
        "another real run is going on"
    )
    run_yaml = stack_root.parent / "run.yaml"
    projects = [str(Path(__file__).parent.parent / "grenade" / "projects")]
    projects.append(str(FIXTURES / "stale_service"))
    run_yaml.write_text(
        yaml.safe_dump(
            {
                "grenade": {
                    "stack_root": str(stack_root),
                    "projects_dirs": projects,
                    "enabled_services": "key,placement-api",
                }
            }
        )
    )
    started = time.monotonic()
    proc = invoke(run_yaml, "run", timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "FAILED step converge/grenade: project grenade, phase converge" in out, out[-4000:]
    data = json.loads((stack_root / "save" / "service-versions.json").read_text())
    (host,) = data["target"]
    keystone = data["target"][host]["keystone"]
    assert keystone["version"].startswith("28.") and keystone["code"].startswith(
        str(stack_root / "old")
    )
    assert data["base"][host]["keystone"]["version"] == keystone["version"]
    assert data["target"][host]["placement-api"]["code"].startswith(str(stack_root / "new"))
    assert (
        f"FAIL service keystone on host {host} does not run the target's code: "
        f"pid {keystone['pid']} runs version {keystone['version']} from {stack_root / 'old'}"
    ) in out
    print(f"converge run: {time.monotonic() - started:.0f} s")
