"""LocalHost: real processes, real process groups, real signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from grenade import hosts
from grenade.hosts import LocalHost


def run(host: LocalHost, script: str, tmp_path: Path, timeout: float = 10, **kw):
    lines: list[str] = []
    result = host.run(["bash", "-c", script], env=dict(os.environ), cwd=tmp_path,
                      timeout=timeout, log_path=tmp_path / "step.log", on_line=lines.append,
                      **kw)
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
    host = LocalHost()
    threading.Timer(0.5, host.interrupt, args=(signal.SIGINT,)).start()
    start = time.monotonic()
    result, _ = run(host, "trap '' TERM INT; sleep 300", tmp_path, timeout=1800)
    assert result.signalled == signal.SIGINT and not result.ok
    assert time.monotonic() - start < 8


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


def test_on_start_runs_while_the_command_runs(tmp_path):
    seen = []
    result, _ = run(LocalHost(), "sleep 0.3", tmp_path,
                    on_start=lambda: seen.append(time.monotonic()))
    assert result.ok and len(seen) == 1
