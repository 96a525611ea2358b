"""Where a command runs, behind one call shape: ``host.run(argv, ...) -> Result``.

`LocalHost` runs a command as a child in its own process group with its output
going straight to the step's log file, follows that file into the run log, and
kills the whole group when the step's timeout expires or the run is interrupted.
Steps never ask whether they are local: they get a host and call `run`.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a step's process group
FOLLOW_EVERY = 0.2  # seconds between reads of the step log while the hook runs


@dataclass
class Result:
    """What a command did: the same fields as invoke's/Fabric's `Result`, plus timing."""

    command: str
    exited: int
    duration: float
    timed_out: bool = False
    signalled: int | None = None  # the signal that interrupted the run, if any

    @property
    def ok(self) -> bool:
        # A hook that finished cleanly while a signal arrived is still done: the
        # run stops before the next step, not by forgetting this one.
        return self.exited == 0 and not self.timed_out


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _LogFollower:
    """Reads what a hook appended to its log and hands it on line by line.

    The log is opened once, read-write in append mode: the hook gets the same
    descriptor as its stdout, and we read behind it from our own offset.
    """

    def __init__(self, path: Path, on_line: Callable[[str], None] | None) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.offset = os.fstat(self.fd).st_size
        self.on_line = on_line
        self.pending = b""

    def _read(self) -> bytes:
        chunks = []
        while chunk := os.pread(self.fd, 65536, self.offset):
            self.offset += len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)

    def poll(self) -> None:
        if not self.on_line:
            return
        chunk = self._read()
        if chunk:
            self.pending += chunk
            *lines, self.pending = self.pending.split(b"\n")
            for raw in lines:
                self.on_line(raw.decode(errors="replace"))

    def close(self) -> None:
        self.poll()
        if self.pending and self.on_line:
            self.on_line(self.pending.decode(errors="replace"))
        os.close(self.fd)


class LocalHost:
    """This machine. `current_pgid` is the process group of the step running now."""

    name = "local"

    def __init__(self) -> None:
        self.current_pgid: int | None = None
        self.interrupted_by: int | None = None
        self._kill_at: float | None = None
        self._null_fd: int | None = None

    def _devnull(self) -> int:
        """One /dev/null for every hook's stdin (opening it per step costs)."""
        if self._null_fd is None:
            self._null_fd = os.open(os.devnull, os.O_RDONLY)
        return self._null_fd

    def interrupt(self, signum: int) -> None:
        """Stop the running step (called from a signal handler; never raises)."""
        self.interrupted_by = signum
        if self.current_pgid is not None:
            _kill_group(self.current_pgid, signal.SIGTERM)
            self._kill_at = time.monotonic() + KILL_GRACE

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | str | None = None,
        timeout: float | None = None,
        log_path: Path,
        on_line: Callable[[str], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Result:
        """Run `argv` (no shell), its output appended to `log_path` and given to `on_line`.

        The hook writes to the log file itself, so children it leaves running in
        the background keep a valid stdout after it exits. `on_start` is called once
        the command is running: work the caller can overlap with it goes there.
        """
        start = time.monotonic()
        deadline = start + timeout if timeout and timeout > 0 else None
        timed_out = False
        follower = _LogFollower(log_path, on_line)
        try:
            proc = subprocess.Popen(
                list(argv), stdin=self._devnull(), stdout=follower.fd,
                stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
                start_new_session=True,  # own process group: killable as a whole
            )
        except BaseException:
            os.close(follower.fd)
            raise
        self.current_pgid = proc.pid
        self._kill_at = None
        if self.interrupted_by is not None:  # a signal arrived while we forked
            self.interrupt(self.interrupted_by)
        pidfd = os.pidfd_open(proc.pid)
        sel = selectors.DefaultSelector()
        sel.register(pidfd, selectors.EVENT_READ)
        try:
            if on_start is not None:
                on_start()
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline and not timed_out:
                    timed_out = True
                    _kill_group(proc.pid, signal.SIGTERM)
                    self._kill_at = now + KILL_GRACE
                if self._kill_at is not None and now >= self._kill_at:
                    _kill_group(proc.pid, signal.SIGKILL)
                    self._kill_at = now + KILL_GRACE
                wake = [FOLLOW_EVERY]
                for at in (deadline if not timed_out else None, self._kill_at):
                    if at is not None:
                        wake.append(max(at - now, 0))
                if sel.select(min(wake)):  # the pidfd is readable once the hook exited
                    break
                follower.poll()
        except BaseException:
            _kill_group(proc.pid, signal.SIGKILL)  # never leave a hook behind us
            raise
        finally:
            sel.close()
            os.close(pidfd)
            if timed_out or self.interrupted_by is not None:
                # nothing of a killed step may outlive it
                _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            self.current_pgid = None
            follower.close()
        return Result(
            command=" ".join(argv),
            exited=proc.returncode,
            duration=time.monotonic() - start,
            timed_out=timed_out,
            signalled=self.interrupted_by,
        )
