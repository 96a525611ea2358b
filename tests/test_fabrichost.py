"""FabricHost against a real sshd on 127.0.0.1: this machine is the remote, so /proc
shows what the remote side left running."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from conftest import alive
from sshd import SshdServer, free_port

from grenade import hosts
from grenade.fabrichost import FabricHost
from grenade.hosts import Cancel, HostGroup, Result
from grenade.logs import LogSink


@pytest.fixture
def host(sshd_server: SshdServer, tmp_path: Path) -> Iterator[FabricHost]:
    remote = sshd_server.make_host("remote", log_dir=tmp_path / "remote")
    yield remote
    remote.close()


def run(
    host: FabricHost,
    script: str,
    tmp_path: Path,
    *,
    name: str = "step.log",
    timeout: float = 20,
    cancel: Cancel | None = None,
    **kw: Any,
) -> tuple[Result, list[str], Path]:
    """`bash -c script` on the host; the result, the lines handed on, the local log."""
    local = tmp_path / f"local-{time.monotonic_ns()}"
    local.mkdir()
    lines: list[str] = []
    kw.setdefault("env", {})
    with Cancel() as own, LogSink(local / name, lines.append) as sink:
        result = host.run(
            ["bash", "-c", script], timeout=timeout, sink=sink, cancel=cancel or own, **kw
        )
    return result, lines, local / name


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def wait_for(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_output_lands_in_the_local_log_line_by_line(host, tmp_path):
    result, lines, log = run(host, "echo one; echo two >&2; printf three", tmp_path)
    assert result.ok and result.exited == 0 and result.host == "remote"
    assert result.command == "bash -c 'echo one; echo two >&2; printf three'"
    assert lines == ["one", "two", "three"]
    assert log.read_text() == "one\ntwo\nthree"
    assert (tmp_path / "remote" / "step.log").read_text() == "one\ntwo\nthree"  # remote copy


def test_exit_code_is_kept(host, tmp_path):
    result, _, _ = run(host, "echo failing; exit 7", tmp_path)
    assert result.exited == 7 and not result.ok and not result.timed_out


def test_env_cwd_and_argv_reach_the_remote_verbatim(host, tmp_path):
    env = {
        "SPACES": "a b  c",
        "QUOTES": 'it\'s "quoted"',
        "DOLLAR": "$HOME $(touch PWNED) `touch PWNED`",
        "SEMI": "x; touch PWNED",
        "NL": "line1\nline2",
    }
    cwd = tmp_path / "dir with 'quote' $x; && `touch PWNED`"
    cwd.mkdir()
    code = (
        "import json, os, sys; keys = json.loads(sys.argv[1]);"
        " print(json.dumps([{k: os.environ[k] for k in keys}, os.getcwd(), sys.argv[2:]]))"
    )
    weird_args = ["; touch PWNED", "$(touch PWNED)", "' \" \\"]
    local = tmp_path / "local"
    local.mkdir()
    lines: list[str] = []
    with Cancel() as cancel, LogSink(local / "env.log", lines.append) as sink:
        result = host.run(
            [sys.executable, "-c", code, json.dumps(list(env)), *weird_args],
            env=env, cwd=cwd, sink=sink, cancel=cancel, timeout=20,
        )  # fmt: skip
    assert result.ok, lines
    assert json.loads(lines[-1]) == [env, str(cwd), weird_args]
    for place in (cwd, tmp_path, Path.home(), Path("/")):
        assert not (place / "PWNED").exists()


def test_timeout_kills_the_whole_remote_group(host, tmp_path, monkeypatch):
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    script = (
        f"trap '' TERM; sleep 300 & echo $! > {tmp_path}/child; echo $$ > {tmp_path}/pgid;"
        " trap 'echo got TERM' TERM; while :; do sleep 0.1; done"
    )
    start = time.monotonic()
    result, lines, _ = run(host, script, tmp_path, timeout=1.5)
    assert result.timed_out and not result.ok and result.exited == -signal.SIGKILL
    assert time.monotonic() - start < 10
    assert "got TERM" in lines  # the hook's last words still stream after SIGTERM
    pgid = int((tmp_path / "pgid").read_text())
    child = int((tmp_path / "child").read_text())
    time.sleep(0.2)
    assert not alive(child)  # ignored SIGTERM, so SIGKILL took it
    assert group_members(pgid) == []


def test_cancel_from_another_thread_kills_the_remote_group(host, tmp_path, monkeypatch):
    monkeypatch.setattr(hosts, "KILL_GRACE", 1.0)
    script = f"trap '' TERM INT; echo $$ > {tmp_path}/pgid; sleep 300 & sleep 300"
    with Cancel() as cancel:
        threading.Timer(1.0, cancel.set, args=(signal.SIGINT,)).start()
        start = time.monotonic()
        result, _, _ = run(host, script, tmp_path, timeout=1800, cancel=cancel)
    assert result.signalled == signal.SIGINT and not result.ok and not result.timed_out
    assert time.monotonic() - start < 10
    time.sleep(0.2)
    assert group_members(int((tmp_path / "pgid").read_text())) == []


def test_a_missing_cwd_fails_with_the_reason_in_the_log(host, tmp_path):
    result, lines, _ = run(host, "echo never", tmp_path, cwd=tmp_path / "missing")
    assert result.exited != 0 and not result.ok
    assert len(lines) == 1 and "missing" in lines[0] and "never" not in lines


def test_a_failing_sink_raises_and_leaves_nothing_running(host, tmp_path):
    def broken(line: str) -> None:
        raise OSError("disk full")

    local = tmp_path / "local"
    local.mkdir()
    start = time.monotonic()
    with (
        Cancel() as cancel,
        LogSink(local / "step.log", broken) as sink,
        pytest.raises(Exception, match="disk full"),
    ):
        host.run(["bash", "-c", f"echo $$ > {tmp_path}/pgid; echo hi; sleep 300"],
                     env={}, sink=sink, cancel=cancel, timeout=60)  # fmt: skip
    assert time.monotonic() - start < 10
    time.sleep(0.2)
    assert group_members(int((tmp_path / "pgid").read_text())) == []


def test_background_child_outlives_the_hook_without_holding_the_call(host, tmp_path):
    marker = tmp_path / "marker"
    script = f"(sleep 3; echo later; touch {marker}) & echo started"
    start = time.monotonic()
    result, lines, log = run(host, script, tmp_path)
    assert result.ok and lines == ["started"]
    assert time.monotonic() - start < 2.5  # the child's sleep does not hold the channel
    assert not marker.exists()
    wait_for(marker)
    assert marker.exists()  # no SIGPIPE: its stdout is the remote log file
    time.sleep(0.1)
    assert (tmp_path / "remote" / "step.log").read_text() == "started\nlater\n"
    assert log.read_text() == "started\n"


def test_a_rerun_step_streams_only_its_new_output(host, tmp_path):
    _, first, _ = run(host, "echo first", tmp_path)
    result, second, log = run(host, "echo second", tmp_path)
    assert result.ok and first == ["first"] and second == ["second"]
    assert log.read_text() == "second\n"
    assert (tmp_path / "remote" / "step.log").read_text() == "first\nsecond\n"


def test_invalid_utf8_and_characters_split_between_reads(host, tmp_path):
    # 65535 + 2 bytes straddle invoke's read size, which we set to 65536
    script = (
        r"printf 'bad \377\376 end\n'; printf '%065535d' 0 | tr 0 a; printf '\303\251\n';"
        r" printf 'tail \342\202'"
    )
    result, lines, _ = run(host, script, tmp_path)
    assert result.ok
    assert lines == ["bad \ufffd\ufffd end", "a" * 65535 + "é", "tail \ufffd"]


def test_runs_as_another_user(host, tmp_path):
    result, lines, _ = run(host, "id -un; echo $GREETING", tmp_path, cwd="/",
                           user="nobody", env={"GREETING": "hi there"})  # fmt: skip
    assert result.ok, lines
    assert lines == ["nobody", "hi there"]


def test_large_output_streams_in_linear_time(host, tmp_path):
    start = time.monotonic()
    result, lines, log = run(host, "head -c 20000000 /dev/zero | tr '\\0' x | fold -w 99", tmp_path)
    assert result.ok and len(lines) == 202021
    assert log.stat().st_size == 20000000 + 202020  # the last line has no newline
    # Fabric's stock runner re-joins its capture per 1000-byte read: ~60 s here
    assert time.monotonic() - start < 20


def test_a_closed_port_fails_in_bounded_time(sshd_server, tmp_path):
    closed = FabricHost.connect(
        "nowhere", "127.0.0.1", port=free_port(), user=sshd_server.user,
        key_filename=str(sshd_server.key_filename), known_hosts=str(sshd_server.known_hosts),
        log_dir=str(tmp_path / "remote"), connect_timeout=5,
    )  # fmt: skip
    start = time.monotonic()
    with pytest.raises(OSError):
        run(closed, "true", tmp_path)
    local = tmp_path / "group"
    local.mkdir()
    with Cancel() as cancel, LogSink(local / "step.log") as sink:
        results = HostGroup("g", (closed,)).run(
            ["true"], env={}, sinks={"nowhere": sink}, cancel=cancel, timeout=5
        )
    assert results["nowhere"].error and not results["nowhere"].ok
    assert time.monotonic() - start < 15


def test_an_unknown_host_key_is_refused(sshd_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    stranger = FabricHost.connect(
        "stranger", sshd_server.host, port=sshd_server.port, user=sshd_server.user,
        key_filename=str(sshd_server.key_filename), known_hosts=str(empty),
        log_dir=str(tmp_path / "remote"),
    )  # fmt: skip
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        run(stranger, f"touch {tmp_path}/ran", tmp_path)
    assert not (tmp_path / "ran").exists()


def _cmdlines_containing(needle: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_the_environment_never_shows_on_a_command_line(host, tmp_path):
    # /proc/*/cmdline is readable by every user of the remote: secrets stay out of it
    secret = "s3cret-" + "x" * 8
    marker = tmp_path / "running"
    seen: list[list[int]] = []

    def look() -> None:
        wait_for(marker)
        seen.append(_cmdlines_containing(secret.encode()))

    looker = threading.Thread(target=look)
    looker.start()
    got = tmp_path / "got"
    result, lines, log = run(
        host,
        f'printf %s "$DB_PASSWORD" > {got}; touch {marker}; sleep 1; echo done',
        tmp_path,
        env={"DB_PASSWORD": secret},
    )
    looker.join()
    assert result.ok and lines == ["done"]
    assert got.read_text() == secret  # the hook had it
    assert seen == [[]]  # no process showed it
    assert secret not in log.read_text()


def test_a_large_environment_arrives_quickly(host, tmp_path):
    env = {f"VAR_{i}": "v" * 200 + f" '{i}' $x" for i in range(250)}  # ~55 KB
    start = time.monotonic()
    result, lines, _ = run(host, 'echo "${VAR_249}"; env | grep -c ^VAR_', tmp_path, env=env)
    assert result.ok and lines == ["v" * 200 + " '249' $x", "250"]
    assert time.monotonic() - start < 5


def test_a_bad_variable_name_is_refused_before_anything_runs(host, tmp_path):
    with pytest.raises(ValueError, match="not a shell variable name: 'A;B'"):
        run(host, f"touch {tmp_path}/ran", tmp_path, env={"A;B": "1"})
    assert not (tmp_path / "ran").exists()


def test_a_dropped_connection_kills_the_hook_after_reconnecting(host, tmp_path):
    pids = tmp_path / "pids"
    # the hook's pid, and the sshd process serving the session (setsid's parent)
    script = f"echo $$ $(ps -o ppid= -p $PPID) > {pids}.tmp; mv {pids}.tmp {pids}; sleep 60"
    outcome: list[BaseException | Result] = []

    def go() -> None:
        try:
            outcome.append(run(host, script, tmp_path, timeout=60)[0])
        except BaseException as exc:
            outcome.append(exc)

    runner = threading.Thread(target=go)
    start = time.monotonic()
    runner.start()
    wait_for(pids)
    hook, session = (int(x) for x in pids.read_text().split())
    os.kill(session, signal.SIGKILL)
    runner.join(30)
    assert not runner.is_alive() and time.monotonic() - start < 30
    assert isinstance(outcome[0], ConnectionError)
    assert "connection to remote lost while running bash -c" in str(outcome[0])
    assert f"its process group {hook} was killed after reconnecting" in str(outcome[0])
    time.sleep(0.3)
    assert not alive(hook)


def test_leftover_group_on_the_remote_is_killed_by_pgid(host, tmp_path):
    """What the next runner does with a group a dead one left on a remote host."""
    result, lines, _ = run(
        host, "setsid bash -c 'echo $$; exec sleep 1000' </dev/null >&2 & sleep 0.3", tmp_path
    )
    assert result.ok, lines
    pgid = int(next(line for line in lines if line.strip().isdigit()))
    assert group_members(pgid)
    monkey_grace = hosts.KILL_GRACE
    hosts.KILL_GRACE = 0.2
    try:
        assert host.kill_leftover(pgid, "") is True
        assert not group_members(pgid)
        assert host.kill_leftover(pgid, "") is False  # gone: nothing to kill
    finally:
        hosts.KILL_GRACE = monkey_grace
