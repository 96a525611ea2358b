"""The hooks' watchdog: when the runner dies, its hooks die with it.

A runner killed with SIGKILL (or by a hangup it could not handle) runs no
cleanup, and its hooks live in process groups of their own. So each `LocalHost`
starts one small process, in a session of its own, that holds the read end of a
pipe; the runner writes `+PGID` when a hook starts and `-PGID` when it ended. The
write end is the runner's alone (close-on-exec, never inherited by a hook): when
the runner dies, however it dies, the kernel closes it, the watchdog reads EOF
and kills the groups still listed (SIGTERM, then SIGKILL after the grace), and
exits. Only those groups: services that stack.sh or upgrade.sh started in
sessions of their own keep running. A normal end closes the pipe with nothing
listed, and the watchdog just exits.

`python3 -m grenade.watchdog GRACE` is the watchdog itself; it imports only
grenade.procs, so it starts in about the time of a bare interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from grenade.procs import group_members, kill_group


class Watchdog:
    """The runner's side: starts the watchdog on first use, tells it about groups."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # the hosts of a group start hooks from threads

    def start(self) -> None:
        """Start the watchdog if it is not running (before the first hook: a runner
        killed right after forking one must find it there)."""
        with self._lock:
            if self._fd is None:
                read, self._fd = os.pipe()  # both close-on-exec: no hook inherits them
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "grenade.watchdog", str(self.grace)],
                    stdin=read,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a hangup or Ctrl-C of ours does not reach it
                )
                os.close(read)

    def _send(self, line: str) -> None:
        self.start()
        with self._lock, contextlib.suppress(OSError):  # a dead watchdog must not stop a run
            os.write(self._fd, line.encode())  # type: ignore[arg-type]

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """End the watchdog (it kills what is still listed: nothing, normally)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=1)
                self._proc = None


def main(grace: float) -> None:
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        op, pgid = line[:1], line[1:].strip()
        if pgid.isdigit():
            (groups.add if op == b"+" else groups.discard)(int(pgid))
    # EOF: the runner is gone (or done, with nothing listed)
    if not groups:
        return
    for pgid in groups:
        kill_group(pgid, signal.SIGTERM)
    end = time.monotonic() + grace
    while (alive := [g for g in groups if group_members(g)]) and time.monotonic() < end:
        time.sleep(0.05)
    for pgid in alive:
        kill_group(pgid, signal.SIGKILL)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
