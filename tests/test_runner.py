"""The step runner on a group of hosts: this machine and a Fabric host over real SSH.

The "remote" host is a real sshd on 127.0.0.1 (tests/sshd.py): the same machine,
so what a remote hook left behind can be checked in /proc, and hooks tell where
they ran by `$SSH_CONNECTION`, which only sshd sets.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from conftest import alive as _alive
from conftest import write_config
from faults import fault

from grenade import hosts, phases
from grenade.config import GrenadeConfig
from grenade.errors import ConfigError, Interrupted, StepFailed
from grenade.events import StepFinished, StepStarted
from grenade.hosts import Inventory
from grenade.localhost import LocalHost
from grenade.plan import Step
from grenade.runner import StepRunner
from grenade.session import Session

HOOK = """source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"
where=local; [[ -n "${SSH_CONNECTION:-}" ]] && where=remote
echo "$GRENADE_PHASE $GRENADE_PROJECT $(basename "$0") $* on $where"
if [[ -f "$SAVE_DIR/fail-$GRENADE_PHASE-$where" ]]; then
    echo "echo: broken on $where"
    exit 4
fi
if [[ -f "$SAVE_DIR/hang-$GRENADE_PHASE-$where" ]]; then
    sleep 300 &
    echo "$! $$" > "$SAVE_DIR/hung-$where.pids"
    trap '' TERM
    sleep 300
fi
"""


def echo_project(root: Path) -> Path:
    d = root / "projects" / "10_echo"
    d.mkdir(parents=True)
    (d / "settings").write_text("register_project_for_upgrade echo\n")
    for hook in ("upgrade.sh", "shutdown.sh", "resources.sh"):
        (d / hook).write_text(HOOK)
    return root / "projects"


def echo_session(tmp_path: Path, hosts: list | None = None, **config) -> Session:
    """A session on the echo project; its controller group is `hosts` (this machine)."""
    path = write_config(
        tmp_path / "run.yaml",
        tmp_path / "stack",
        projects_dirs=[str(echo_project(tmp_path))],
        enabled_services="",
        **config,
    )
    inventory = Inventory({"controller": hosts}) if hosts else None
    return Session(GrenadeConfig.from_file(path), console=io.StringIO(), inventory=inventory)


@pytest.fixture
def two_hosts(sshd_server, tmp_path):
    """A session whose controller group is this machine and the Fabric host."""

    def make(**config) -> Session:
        remote = sshd_server.make_host("remote", log_dir=str(tmp_path / "remote-logs"))
        return echo_session(tmp_path, [LocalHost(), remote], **config)

    return make


def _state(session: Session) -> dict:
    return json.loads(session.paths.state_file.read_text())


def test_each_step_runs_on_both_hosts_and_records_both(two_hosts):
    with two_hosts() as session:
        phases.setup(session)
        phases.run_kinds(session, ["early-create", "create", "verify-pre"])
    steps = _state(session)["steps"]
    assert list(steps) == ["early-create/echo", "create/echo", "verify-pre/echo"]
    for rec in steps.values():
        assert rec["status"] == "done"
        assert set(rec["hosts"]) == {"local", "remote"}
        for host, hrec in rec["hosts"].items():
            assert hrec["status"] == "done" and hrec.get("exit_code", 0) == 0
            assert hrec["log"].endswith(f"@{host}.log")
    logs = session.paths.logs_dir / "steps"
    # each host's output in its own step log: the remote one streamed back over SSH
    assert (
        logs / "002-create_echo@local.log"
    ).read_text() == "create echo resources.sh create on local\n"
    assert (
        logs / "002-create_echo@remote.log"
    ).read_text() == "create echo resources.sh create on remote\n"
    # and the remote keeps its own copy under the same name
    assert (
        session.paths.stack_root.parent / "remote-logs" / "002-create_echo@remote.log"
    ).read_text() == "create echo resources.sh create on remote\n"
    summary = (session.paths.logs_dir / "grenade.summary.log").read_text()
    assert "local" in summary and "remote" in summary
    main = (session.paths.logs_dir / "grenade.log").read_text()
    assert "[remote] create echo resources.sh create on remote" in main


@fault(
    "base",
    "a hook fails on one host of a two-host group",
    "the hook's code",
    "the message names the host, the group (1 of 2 failed), its log and tail; "
    "the other host is recorded done",
)
def test_failure_on_one_host_names_that_host(two_hosts):
    with two_hosts() as session:
        phases.setup(session)
        (session.paths.save_dir / "fail-create-remote").touch()
        with pytest.raises(StepFailed) as err:
            phases.run_kinds(session, ["early-create", "create", "verify-pre"])
    msg = str(err.value)
    assert "FAILED step create/echo: project echo, phase create, host remote, exit code 4" in msg
    assert "host local" not in msg
    assert "group:  controller (1 of 2 hosts failed: remote)" in msg
    assert "002-create_echo@remote.log" in msg
    assert "| echo: broken on remote" in msg
    assert err.value.exit_code == 4
    state = _state(session)
    rec = state["steps"]["create/echo"]
    assert state["failed_step"] == "create/echo"
    assert rec["status"] == "failed" and rec["exit_code"] == 4
    assert rec["hosts"]["local"]["status"] == "done"
    assert rec["hosts"]["remote"] == {
        "status": "failed",
        "exit_code": 4,
        "duration": rec["hosts"]["remote"]["duration"],
        "log": "002-create_echo@remote.log",
        "message": "exit code 4",
    }
    assert rec["message"] == "remote: exit code 4"
    assert "verify-pre/echo" not in state["steps"]


def test_hung_remote_hook_is_killed_by_the_timeout(two_hosts, monkeypatch):
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    with two_hosts(timeout=2) as session:
        phases.setup(session)
        (session.paths.save_dir / "hang-create-remote").touch()
        start = time.monotonic()
        with pytest.raises(StepFailed) as err:
            phases.run_kinds(session, ["early-create", "create"])
    assert time.monotonic() - start < 20
    assert "host remote, timed out after 2s (process group killed)" in str(err.value)
    rec = _state(session)["steps"]["create/echo"]
    assert rec["hosts"]["local"]["status"] == "done"
    assert rec["hosts"]["remote"]["status"] == "failed"
    pids = (session.paths.save_dir / "hung-remote.pids").read_text().split()
    time.sleep(0.3)
    assert pids and not [pid for pid in pids if _alive(int(pid))]  # hook and child gone


class Recorder:
    def __init__(self) -> None:
        self.events: list[StepStarted | StepFinished] = []

    def step_started(self, event: StepStarted) -> None:
        self.events.append(event)

    def step_finished(self, event: StepFinished) -> None:
        self.events.append(event)


def test_observers_hear_every_step_start_and_end(tmp_path):
    recorder = Recorder()
    with echo_session(tmp_path, [LocalHost("one"), LocalHost("two")]) as session:
        phases.setup(session)
        plan = session.plan()
        (session.paths.save_dir / "fail-create-local").touch()
        runner = StepRunner(session, [recorder])
        with pytest.raises(StepFailed):
            runner.run(plan, {s.id for s in plan if s.kind in ("early-create", "create")}, set())
    kinds = [(type(e).__name__, e.step.id) for e in recorder.events]
    assert kinds == [
        ("StepStarted", "early-create/echo"),
        ("StepFinished", "early-create/echo"),
        ("StepStarted", "create/echo"),
        ("StepFinished", "create/echo"),
    ]
    started, finished = recorder.events[2], recorder.events[3]
    assert isinstance(started, StepStarted) and isinstance(finished, StepFinished)
    assert started.hosts == ("one", "two") and started.index == 2
    assert not finished.ok and set(finished.failed) == {"one", "two"}
    assert finished.record.status == "failed"
    assert finished.results["one"].exited == 4


def test_state_shows_the_running_step_while_its_hook_runs(tmp_path, monkeypatch):
    # The previous steps' records reach the disk while the next hook runs.
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)

    seen: dict = {}

    class Peek(Recorder):
        def step_started(self, event: StepStarted) -> None:
            if event.step.id == "create/echo":
                # at this point the hook has not started; look while it hangs
                import threading

                def look() -> None:
                    time.sleep(1.0)
                    seen.update(json.loads(session.paths.state_file.read_text())["steps"])

                threading.Thread(target=look).start()

    with echo_session(tmp_path, timeout=3) as session:
        phases.setup(session)
        (session.paths.save_dir / "hang-create-local").touch()
        plan = session.plan()
        with pytest.raises(StepFailed):
            StepRunner(session, [Peek()]).run(
                plan, {s.id for s in plan if s.kind in ("early-create", "create")}, set()
            )
    assert seen["early-create/echo"]["status"] == "done"
    assert seen["create/echo"]["status"] == "running"
    assert seen["create/echo"]["hosts"]["local"]["status"] == "running"


def test_plan_steps_name_their_group(run_yaml):
    from conftest import invoke

    proc = invoke(run_yaml(), "plan")
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln[:4].strip().rstrip(".").isdigit()]
    assert rows and all(row[3] == "controller" for row in rows)


def test_step_group_missing_from_inventory_is_named(tmp_path):
    with echo_session(tmp_path) as session:
        phases.setup(session)
        first = Step("create", "echo", ("touch", str(tmp_path / "ran")))
        step = Step("destroy", "echo", ("true",), group="subnode")
        with pytest.raises(ConfigError) as err:
            StepRunner(session).run([first, step], {first.id, step.id}, set())
    assert str(err.value) == (
        "step destroy/echo@subnode (project echo, phase destroy) runs on host group 'subnode', "
        "which the inventory does not have; groups: controller"
    )
    assert not (tmp_path / "ran").exists()  # refused before any step ran
    assert os.path.exists(session.paths.state_file)


def test_sigint_during_a_group_step_kills_every_host_and_ends_the_run(tmp_path, monkeypatch):
    # The signal arrives while the main thread waits for the hosts' threads: the
    # handler still runs, sets the cancel token, and each host kills its group.
    import signal
    import threading

    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    with echo_session(tmp_path, [LocalHost("local"), LocalHost("other")]) as session:
        phases.setup(session)
        (session.paths.save_dir / "hang-create-local").touch()
        pids = session.paths.save_dir / "hung-local.pids"
        threading.Thread(
            target=lambda: (_wait_for_file(pids), os.kill(os.getpid(), signal.SIGINT))
        ).start()
        start = time.monotonic()
        with pytest.raises(Interrupted) as err:
            phases.run_kinds(session, ["early-create", "create", "verify-pre"])
    assert err.value.exit_code == 130
    assert time.monotonic() - start < 15
    rec = _state(session)["steps"]["create/echo"]
    assert rec["status"] == "failed"
    assert rec["hosts"]["local"]["message"] == "interrupted by signal 2"
    assert "verify-pre/echo" not in _state(session)["steps"]
    time.sleep(0.3)
    assert not [p for p in pids.read_text().split() if _alive(int(p))]


def _wait_for_file(path: Path, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)
