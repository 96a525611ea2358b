"""Where a command runs, behind one call shape: ``host.run(argv, ...) -> Result``.

`LocalHost` runs a command as a child in its own process group, tees its output
into the step log and the run log, and kills the whole group when the step's
timeout expires or the run is interrupted. Steps never ask whether they are
local: they get a host and call `run`.
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
DRAIN_GRACE = 0.2  # seconds to keep reading after the hook exits (background children)


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
        return self.exited == 0 and not self.timed_out and self.signalled is None


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class LocalHost:
    """This machine. `current` is the process group of the step running now."""

    name = "local"

    def __init__(self) -> None:
        self.current_pgid: int | None = None
        self.interrupted_by: int | None = None

    def interrupt(self, signum: int) -> None:
        """Stop the running step (called from a signal handler)."""
        self.interrupted_by = signum
        if self.current_pgid is not None:
            _kill_group(self.current_pgid, signal.SIGTERM)

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

        `on_start` is called once the command is running: work the caller can do
        while the command runs (writing the previous step's state) goes there.
        """
        start = time.monotonic()
        timed_out = False
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,  # own process group: killable as a whole
            )
            self.current_pgid = proc.pid
            if self.interrupted_by is not None:  # a signal arrived while we forked
                _kill_group(proc.pid, signal.SIGTERM)
            if on_start is not None:
                on_start()
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            pending = b""
            deadline = start + timeout if timeout else None
            exited_at: float | None = None
            try:
                while True:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline and not timed_out:
                        timed_out = True
                        self._terminate(proc)
                    wait = 0.5
                    if deadline is not None and not timed_out:
                        wait = min(wait, max(deadline - now, 0))
                    if exited_at is not None:
                        wait = max(0.0, exited_at + DRAIN_GRACE - now)
                    events = sel.select(wait)
                    chunk = b""
                    if events:
                        try:
                            chunk = os.read(proc.stdout.fileno(), 65536)
                        except BlockingIOError:
                            chunk = b""
                        if not chunk:  # EOF: every writer is gone
                            break
                        log.write(chunk)
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        if on_line:
                            for raw in lines:
                                on_line(raw.decode(errors="replace"))
                    if exited_at is None and proc.poll() is not None:
                        exited_at = time.monotonic()
                    elif exited_at is not None and time.monotonic() >= exited_at + DRAIN_GRACE:
                        # The hook is done but a background child keeps the pipe open.
                        break
            finally:
                sel.close()
                proc.stdout.close()
                if pending and on_line:
                    on_line(pending.decode(errors="replace"))
                if timed_out or self.interrupted_by is not None:
                    _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
                self.current_pgid = None
        return Result(
            command=" ".join(argv),
            exited=proc.returncode,
            duration=time.monotonic() - start,
            timed_out=timed_out,
            signalled=self.interrupted_by,
        )

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the group, then SIGKILL it once the hook exits or the grace ends."""
        _kill_group(proc.pid, signal.SIGTERM)
        end = time.monotonic() + KILL_GRACE
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        _kill_group(proc.pid, signal.SIGKILL)
