"""LocalHost, HostGroup and Inventory: real processes, real process groups, real signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from grenade import hosts
from grenade.errors import ConfigError
from grenade.hosts import Cancel, HostGroup, Inventory
from grenade.localhost import LocalHost
from grenade.logs import LogSink


def run(
    host: LocalHost,
    script: str,
    tmp_path: Path,
    timeout: float = 10,
    cancel: Cancel | None = None,
    **kw,
):
    lines: list[str] = []
    with LogSink(tmp_path / "step.log", lines.append) as sink:
        result = host.run(
            ["bash", "-c", script],
            env={},
            cwd=tmp_path,
            timeout=timeout,
            sink=sink,
            cancel=cancel or Cancel(),
            **kw,
        )
    return result, lines


def test_output_goes_to_the_log_and_on_line(tmp_path):
    result, lines = run(LocalHost(), "echo one; echo two >&2; printf three", tmp_path)
    assert result.ok and result.exited == 0
    assert lines == ["one", "two", "three"]
    assert (tmp_path / "step.log").read_text() == "one\ntwo\nthree"


def test_exit_code_is_kept(tmp_path):
    result, _ = run(LocalHost(), "exit 7", tmp_path)
    assert result.exited == 7 and not result.ok


def test_timeout_holds_when_the_hook_closes_its_stdout(tmp_path):
    start = time.monotonic()
    result, _ = run(LocalHost(), "exec >/dev/null 2>&1; sleep 30", tmp_path, timeout=1)
    assert result.timed_out and not result.ok
    assert time.monotonic() - start < 10


def test_timeout_kills_children_and_a_hook_ignoring_sigterm(tmp_path, monkeypatch):
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    script = f"trap '' TERM; sleep 300 & echo $! > {tmp_path}/child; sleep 300"
    start = time.monotonic()
    result, _ = run(LocalHost(), script, tmp_path, timeout=1)
    assert result.timed_out
    assert time.monotonic() - start < 8
    child = int((tmp_path / "child").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or _zombie(child)


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_interrupt_kills_a_hook_ignoring_sigterm(tmp_path, monkeypatch):
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    cancel = Cancel()
    threading.Timer(0.5, cancel.set, args=(signal.SIGINT,)).start()
    start = time.monotonic()
    result, _ = run(
        LocalHost(), "trap '' TERM INT; sleep 300", tmp_path, timeout=1800, cancel=cancel
    )
    assert result.signalled == signal.SIGINT and not result.ok
    assert time.monotonic() - start < 8


def test_cancel_set_before_the_run_kills_at_once(tmp_path):
    cancel = Cancel()
    cancel.set(signal.SIGTERM)
    start = time.monotonic()
    result, _ = run(LocalHost(), "sleep 30", tmp_path, cancel=cancel)
    assert result.signalled == signal.SIGTERM and not result.ok
    assert time.monotonic() - start < 5


def test_env_adds_to_the_environment_and_cwd_applies(tmp_path):
    lines: list[str] = []
    with LogSink(tmp_path / "env.log", lines.append) as sink:
        result = LocalHost().run(
            ["bash", "-c", 'echo "$GRENADE_X|$HOME|$PWD"'],
            env={"GRENADE_X": "a b;$c"},
            cwd=tmp_path,
            sink=sink,
            cancel=Cancel(),
        )
    assert result.ok and result.host == "local"
    assert lines == [f"a b;$c|{os.environ['HOME']}|{tmp_path}"]


def test_group_runs_on_every_host_and_names_each_result(tmp_path):
    group = HostGroup("controller", (LocalHost("one"), LocalHost("two")))
    # each host's command waits until both have started: only a parallel run ends
    script = (
        'echo "$GRENADE_HOST_MARK"; touch "started.$$"; '
        "for i in $(seq 100); do [ $(ls started.* | wc -l) -ge 2 ] && exit 0; "
        "sleep 0.1; done; exit 9"
    )
    with LogSink(tmp_path / "one.log") as s1, LogSink(tmp_path / "two.log") as s2:
        results = group.run(
            ["bash", "-c", script],
            env={"GRENADE_HOST_MARK": "m"},
            cwd=tmp_path,
            timeout=30,
            sinks={"one": s1, "two": s2},
            cancel=Cancel(),
        )
    assert list(results) == ["one", "two"]
    assert all(r.ok for r in results.values())  # in parallel, like Fabric's ThreadingGroup
    assert [r.host for r in results.values()] == ["one", "two"]
    assert (tmp_path / "one.log").read_text() == "m\n" == (tmp_path / "two.log").read_text()


def test_group_interrupted_while_waiting_stops_every_host(tmp_path, monkeypatch):
    # KeyboardInterrupt outside the runner's guard (clean, say): no host keeps running
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    group = HostGroup("controller", (LocalHost("one"), LocalHost("two")))
    cancel = Cancel()
    script = 'echo $$ > "tmp.$$"; mv "tmp.$$" "pid.$$"; sleep 60'

    def interrupt() -> None:
        deadline = time.monotonic() + 20
        while len(list(tmp_path.glob("pid.*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # raised in this thread, not the main one: the main thread must still see it
        signal.raise_signal(signal.SIGINT)

    threading.Thread(target=interrupt).start()
    start = time.monotonic()
    with (
        LogSink(tmp_path / "one.log") as s1,
        LogSink(tmp_path / "two.log") as s2,
        pytest.raises(KeyboardInterrupt),
    ):
        group.run(
            ["bash", "-c", script],
            env={},
            cwd=tmp_path,
            timeout=30,
            sinks={"one": s1, "two": s2},
            cancel=cancel,
        )
    assert cancel.signum == signal.SIGINT
    assert time.monotonic() - start < 10  # not after the hooks' own 60 s
    pids = [int(p.read_text()) for p in tmp_path.glob("pid.*")]
    assert len(pids) == 2
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]


def test_group_turns_a_host_error_into_its_result(tmp_path):
    group = HostGroup("controller", (LocalHost("good"), LocalHost("bad")))
    with LogSink(tmp_path / "good.log") as s1, LogSink(tmp_path / "bad.log") as s2:
        results = group.run(
            ["true"],
            env={},
            cwd=tmp_path / "missing",
            timeout=10,
            sinks={"good": s1, "bad": s2},
            cancel=Cancel(),
        )
    assert set(results) == {"good", "bad"}
    assert all("FileNotFoundError" in r.error and not r.ok for r in results.values())
    assert results["bad"].host == "bad"
    assert results["bad"].why().startswith("FileNotFoundError")


def test_inventory_maps_groups_to_hosts():
    inv = Inventory.local()
    assert inv.group("controller").names == ["local"]
    assert inv.host_names == ["local"]
    with pytest.raises(ConfigError, match="no host group 'subnode'.*controller"):
        inv.group("subnode")
    with pytest.raises(ConfigError, match="host group 'subnode' has no hosts"):
        Inventory({"controller": [LocalHost()], "subnode": []})
    with pytest.raises(ConfigError, match="host group 'controller' names host 'local' twice"):
        Inventory({"controller": [LocalHost(), LocalHost()]})


def test_background_child_outlives_the_hook_with_a_valid_stdout(tmp_path):
    marker = tmp_path / "marker"
    script = f"(sleep 1; echo later; touch {marker}) & echo started"
    result, lines = run(LocalHost(), script, tmp_path)
    assert result.ok and lines == ["started"]
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists()  # no SIGPIPE: it wrote into the step log
    assert "later" in (tmp_path / "step.log").read_text()


def test_run_as_user_belongs_to_the_host(tmp_path):
    import pwd

    me = pwd.getpwuid(os.geteuid()).pw_name
    result, lines = run(LocalHost(), "id -un", tmp_path, user=me)
    assert result.ok and lines == [me]  # ourselves: not wrapped
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root (runuser)")
    lines = []
    with LogSink(tmp_path / "as.log", lines.append) as sink:
        result = LocalHost().run(
            ["id", "-un"], env={}, cwd="/", sink=sink, cancel=Cancel(), user="nobody"
        )
    assert result.ok and lines == ["nobody"]
