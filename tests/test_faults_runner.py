"""The fault matrix, runner side: the runner killed, hung up on, out of disk; a
timed-out hook, a damaged state file, a forced run over a cloud still up.

Real processes throughout: `python3 -m invoke` runs the fixture projects' bash
hooks; the runner is sent real signals; the full disk is a real tmpfs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from conftest import alive, invoke, start, trace, wait_for, write_config
from faults import fault
from test_devstack_deployer import make_devstack_repo

from grenade.hosts import KILL_GRACE


def state_of(stack: Path) -> dict:
    return json.loads((stack / "save/run-state.json").read_text())


HUNG = "verify-noapi/alpha"  # after save-state: the database dumps exist


def sqlite_base(stack: Path) -> None:
    """A base tree whose stackrc names an SQLite database for alpha: save-state dumps it."""
    tree = stack / "old" / "devstack"
    tree.mkdir(parents=True)
    (stack / "db").mkdir()
    with sqlite3.connect(stack / "db" / "alpha.db") as db:
        db.execute("CREATE TABLE rows (text TEXT)")
        db.execute("INSERT INTO rows VALUES ('alpha''s rows')")
    db.close()
    (tree / "stackrc").write_text(f"DATABASE_TYPE=sqlite\nDATABASE_SQLITE_DIR={stack}/db\n")


def hung_hook(config: Path, stack: Path) -> tuple[subprocess.Popen[str], int]:
    """A run whose verify-noapi/alpha hook hangs with a background child; (runner, child)."""
    sqlite_base(stack)
    runner = start(config, "run", env={"HANG_IN": HUNG})
    wait_for(lambda: (stack / "save/hung-child.pid").exists())
    # the state on disk names the running hook's process group
    wait_for(lambda: state_of(stack)["steps"][HUNG]["hosts"]["local"].get("pgid"))
    return runner, int((stack / "save/hung-child.pid").read_text())


def assert_intact(stack: Path) -> None:
    """What a failed run must leave: state, resource memory, logs, database dumps."""
    state = state_of(stack)
    assert state["steps"]["create/alpha"]["status"] == "done"
    assert "widget = a widget with spaces" in (stack / "save/grenade_db.ini").read_text()
    assert (stack / "logs/grenade.log").stat().st_size > 0
    assert list((stack / "logs/steps").glob("*create_alpha@local.log"))
    (dump,) = (stack / "save").glob("alpha.sql.*")
    with sqlite3.connect(dump) as db:  # the online backup's copy
        assert db.execute("SELECT text FROM rows").fetchall() == [("alpha's rows",)]
    db.close()


def resume_skips_finished(config: Path, stack: Path, failed: str) -> None:
    """`run --resume` starts at the step that did not finish and re-runs nothing else."""
    before = len(trace(stack))
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 0, proc.stderr
    after = trace(stack)[before:]
    kind, project = failed.split("/")
    assert after[0].startswith(f"{kind} {project} "), after
    finished = ("create", "early-create", "verify-pre", "shutdown")
    assert not any(line.startswith(finished) for line in after), after
    assert after[-1] == "destroyed"


@fault(
    "9.2",
    "the runner is killed with SIGKILL while a hook runs",
    "137 (the runner's)",
    "the runner's watchdog kills the hook's process group within the grace; the next "
    "start says the step was running when its runner died and marks it failed; "
    "`run --resume` starts at it and re-runs nothing that had finished",
)
def test_sigkilled_runner_takes_its_hook_along(run_yaml):
    config, stack = run_yaml(), run_yaml().parent / "stack"
    runner, child = hung_hook(config, stack)
    hook = state_of(stack)["steps"][HUNG]["hosts"]["local"]["pgid"]
    runner.kill()
    runner.communicate(timeout=30)
    killed = time.monotonic()
    assert runner.returncode == -signal.SIGKILL
    wait_for(lambda: not alive(child) and not alive(hook), timeout=KILL_GRACE + 5)
    assert time.monotonic() - killed < KILL_GRACE
    assert_intact(stack)
    assert state_of(stack)["steps"][HUNG]["status"] == "running"

    proc = invoke(config, "run")  # a failed run is not continued without --resume
    assert proc.returncode == 1
    assert (
        f"step {HUNG} was still running on host local when its runner "
        f"(pid {runner.pid}) died: its process group {hook} is gone"
    ) in proc.stdout
    assert "--resume" in proc.stderr
    state = state_of(stack)
    assert state["failed_step"] == HUNG
    assert state["steps"][HUNG]["status"] == "failed"
    resume_skips_finished(config, stack, HUNG)


def watchdog_of(runner: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if b"grenade.watchdog" in cmdline and int(stat[1]) == runner:
                return int(entry.name)
    raise AssertionError(f"no watchdog for runner {runner}")


@fault(
    "9.2b",
    "the runner and its watchdog are both killed with SIGKILL while a hook runs",
    "137 (the runner's)",
    "the hook's process group, recorded in the run state, is killed by the next start "
    "before anything else (it says so); `run --resume` goes on from that step",
)
def test_leftover_group_is_killed_by_the_next_start(run_yaml):
    config, stack = run_yaml(), run_yaml().parent / "stack"
    runner, child = hung_hook(config, stack)
    hook = state_of(stack)["steps"][HUNG]["hosts"]["local"]["pgid"]
    os.kill(watchdog_of(runner.pid), signal.SIGKILL)
    runner.kill()
    runner.communicate(timeout=30)
    time.sleep(0.5)
    assert alive(hook) and alive(child)  # nobody was left to kill them

    proc = invoke(config, "status")  # status only reads: it kills nothing
    assert alive(hook) and "running" in proc.stdout
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"killed its leftover process group {hook}" in proc.stdout
    assert not alive(hook) and not alive(child)
    assert_intact(stack)


@fault(
    "9.2c",
    "SIGHUP: the terminal or SSH session of the run goes away",
    129,
    "handled like SIGTERM: the hook's process group is killed, the step recorded failed "
    "with the signal, the run ends with 129; `run --resume` starts at that step",
)
def test_sighup_stops_the_run_like_sigterm(run_yaml):
    config, stack = run_yaml(), run_yaml().parent / "stack"
    runner, child = hung_hook(config, stack)
    runner.send_signal(signal.SIGHUP)
    out, err = runner.communicate(timeout=30)
    assert runner.returncode == 129, err
    assert "interrupted by signal 1" in err
    assert f"FAILED step {HUNG}: project alpha, phase verify-noapi, host local" in out
    assert not alive(child)
    state = state_of(stack)
    assert state["failed_step"] == HUNG
    assert "pgid" not in state["steps"][HUNG]["hosts"]["local"]
    assert_intact(stack)
    resume_skips_finished(config, stack, HUNG)


@fault(
    "9.12",
    "a hook runs past the timeout",
    124,
    "its process group is killed (TERM, KILL after the grace); exit 124, the message "
    "says it timed out and names project, phase, host and log",
)
def test_timed_out_hook_exits_124(run_yaml):
    config = run_yaml(timeout=1)
    proc = invoke(config, "run", env={"HANG_IN": "create/alpha"})
    assert proc.returncode == 124, proc.stderr
    assert "FAILED step create/alpha: project alpha, phase create, host local" in proc.stderr
    assert "timed out after 1s (process group killed)" in proc.stderr
    assert "log:    " in proc.stderr


@fault(
    "9.12b",
    "run-state.json is damaged (torn or corrupted)",
    0,
    "the run goes on from the intact copy of the state before it (run-state.json.prev) "
    "and says so; at most the last step runs again",
)
def test_corrupt_state_is_recovered_from_prev(run_yaml):
    config = run_yaml()
    stack = config.parent / "stack"
    proc = invoke(config, "base")
    assert proc.returncode == 0, proc.stderr
    path = stack / "save/run-state.json"
    prev = json.loads(path.with_name("run-state.json.prev").read_text())
    path.write_text(path.read_text()[:40])  # torn
    before = len(trace(stack))
    proc = invoke(config, "run")
    assert proc.returncode == 0, proc.stderr
    assert "run state unreadable" in proc.stdout and "run-state.json.prev" in proc.stdout
    after = trace(stack)[before:]
    # the copy is at most one write behind: at most base's last step runs again
    again = [s for s, r in prev["steps"].items() if r["status"] != "done"]
    assert again in ([], ["verify-pre/beta"])
    if again:
        assert after[0] == "verify-pre beta resources.sh verify pre-upgrade TOP=old", after
    assert not any(
        line.startswith(("create", "early-create", "verify-pre alpha")) for line in after
    )
    assert all(r["status"] == "done" for r in state_of(stack)["steps"].values())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs to fill up (CI runs as root; skipped where mount is refused)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@fault(
    "9.3",
    "the disk under stack_root fills up during a step",
    1,
    "the step's record is written into room kept for it; the run stops before the next "
    "hook with one line `cannot write …/run-state.json: No space left on device`; no "
    "temp files; after freeing space `run --resume` re-runs nothing that had finished",
)
def test_full_disk_stops_the_run_with_one_line(run_yaml, small_disk):
    stack = small_disk / "stack"
    config = write_config(run_yaml().parent / "run.yaml", stack)
    proc = invoke(config, "run", env={"FILL_IN": "create/alpha"})
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write {stack}/save/run-state.json: No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert trace(stack)[-1].startswith("create alpha"), trace(stack)  # no hook after it
    state = state_of(stack)
    assert state["steps"]["create/alpha"]["status"] == "done"
    assert not list(stack.rglob("*.tmp")), list(stack.rglob("*.tmp"))
    (stack / "save/filler").unlink()
    before = len(trace(stack))
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 0, proc.stderr
    after = trace(stack)[before:]
    assert after[0].startswith("create beta"), after
    assert not any(line.startswith("create alpha") for line in after)


@fault(
    "9.3b",
    "the disk under stack_root is full when setup clones the devstack trees",
    1,
    "setup fails with git's own message naming the tree, no traceback; nothing is "
    "recorded as set up and no temp files are left; with room again, setup works",
)
def test_setup_on_a_full_disk_reports_the_git_error(run_yaml, small_disk, tmp_path):
    src = make_devstack_repo(tmp_path / "devstack-src")
    git.Repo(src).git.branch("stable/2025.2")
    git.Repo(src).git.branch("stable/2026.1")
    stack = small_disk / "stack"
    config = write_config(
        tmp_path / "run.yaml",
        stack,
        deployer="devstack",
        base={"repo": str(src), "branch": "stable/2025.2"},
        target={"repo": str(src), "branch": "stable/2026.1"},
    )
    stack.mkdir()
    subprocess.run(["dd", "if=/dev/zero", f"of={small_disk}/filler", "bs=64k"], check=False,
                   capture_output=True)  # fmt: skip
    proc = invoke(config, "setup")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "No space left on device" in proc.stderr, proc.stderr
    assert f"{stack}/old/devstack" in proc.stderr, proc.stderr
    assert not list(stack.rglob("*.tmp"))
    assert not (stack / "save/run-state.json").exists()
    (small_disk / "filler").unlink()
    proc = invoke(config, "setup")
    assert proc.returncode == 0, proc.stderr


@fault(
    "9.7",
    "a run fails: what does grenade.log (the log Zuul collects) say?",
    "the hook's code",
    "grenade.log holds the whole failure block (project, phase, host, log, tail) and "
    "the resume command, as the console does",
)
def test_grenade_log_records_why_the_run_failed(run_yaml):
    config = run_yaml()
    proc = invoke(config, "run", env={"FAIL_IN": "create/alpha"})
    assert proc.returncode == 3
    log = (config.parent / "stack/logs/grenade.log").read_text()
    assert "FAILED step create/alpha: project alpha, phase create, host local" in log
    assert "alpha: resource widget is broken" in log
    assert f"`grenade -f {config} run --resume`" in log


@fault(
    "9.8b",
    "a failure's hint is run exactly as printed (no `-f` added by hand)",
    0,
    "every hint names the config file the run was started with (`grenade -f FILE TASK "
    "--resume`): run as printed, it continues the same run on the same stack_root",
)
def test_printed_hint_runs_as_printed(run_yaml, tmp_path):
    config = run_yaml()
    proc = invoke(config, "base", env={"FAIL_IN": "create/alpha"})
    assert proc.returncode == 3
    hint = re.search(r"once it is fixed: `([^`]+)`", proc.stderr)
    assert hint, proc.stderr
    argv = shlex.split(hint[1])
    assert argv[0] == "grenade" and argv[-2:] == ["base", "--resume"]
    elsewhere = tmp_path / "elsewhere"  # not the config's directory: -f is absolute
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "grenade", *argv[1:]],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # it continued the run on the config's stack_root (not the defaults' /opt/stack)
    assert state_of(config.parent / "stack")["steps"]["verify-pre/beta"]["status"] == "done"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVICE_STACK = """#!/usr/bin/env bash
# stack.sh of a devstack-shaped tree whose cloud is one service holding a port
set -o errexit -o nounset
TOP_DIR=$(cd "$(dirname "$0")" && pwd)
if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$SERVICE_PORT" 2>/dev/null; then
    echo "port $SERVICE_PORT is in use by another program"
    exit 1
fi
setsid python3 -m http.server --bind 127.0.0.1 "$SERVICE_PORT" >/dev/null 2>&1 </dev/null &
echo $! >"$TOP_DIR/../service.pid"
python3 -c 'import socket,sys,time
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1); break
    except OSError: time.sleep(0.1)' "$SERVICE_PORT"
"""

SERVICE_UNSTACK = """#!/usr/bin/env bash
set -o errexit -o nounset
TOP_DIR=$(cd "$(dirname "$0")" && pwd)
if [[ -f $TOP_DIR/../service.pid ]]; then
    kill "$(cat "$TOP_DIR/../service.pid")" 2>/dev/null || true
    rm -f "$TOP_DIR/../service.pid"
fi
"""


@fault(
    "9.13",
    "`run --force` on a stack_root whose previous cloud is still up",
    0,
    "the previous cloud is stopped first (the deployer's unstack), then the new run stacks its own",
)
def test_force_stops_the_previous_cloud_first(run_yaml, tmp_path):
    src = make_devstack_repo(tmp_path / "devstack-src")
    (src / "stack.sh").write_text(SERVICE_STACK)
    (src / "unstack.sh").write_text(SERVICE_UNSTACK)
    with open(src / "stackrc", "a") as fh:
        fh.write("DATABASE_TYPE=sqlite\nDATABASE_SQLITE_DIR=$DEST/data/sqlite\n")
    repo = git.Repo(src)
    repo.git.commit("-qam", "a service on a port")
    repo.git.branch("stable/2025.2")
    repo.git.branch("stable/2026.1")
    config = run_yaml(
        deployer="devstack",
        base={"repo": str(src), "branch": "stable/2025.2"},
        target={"repo": str(src), "branch": "stable/2026.1"},
    )
    env = {"SERVICE_PORT": str(free_port())}
    proc = invoke(config, "run", env=env)
    assert proc.returncode == 0, proc.stderr
    pid_file = config.parent / "stack/old/service.pid"
    first = int(pid_file.read_text())
    assert alive(first)  # grenade leaves the cloud up, as the original does
    try:
        proc = invoke(config, "run", "--force", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "stopping the cloud of the previous run" in proc.stdout
        second = int(pid_file.read_text())
        assert second != first and not alive(first) and alive(second)
    finally:
        invoke(config, "clean", env=env)
