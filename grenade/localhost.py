"""This machine as a host: a child in its own process group, watched through a pidfd.

The child writes its output straight into the step's log file (the sink's
descriptor), so children it leaves running in the background keep a valid
stdout after it exits and never get SIGPIPE; the sink is polled to pass the new
lines on. The whole process group is killed when the timeout expires or the
run's cancel token is set: SIGTERM first, SIGKILL after a grace period; and
by the host's watchdog (grenade.watchdog) if the runner itself dies.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import hosts
from .hosts import Cancel, Result, Sink, Started, as_user, local_user
from .procs import group_members, kill_group, started_at
from .watchdog import Watchdog

REUSE_SLACK = 2.0  # seconds: a leader started this close to the token is the one recorded
FOLLOW_EVERY = 0.2  # seconds between reads of the step log while the hook runs


class LocalHost:
    """This machine."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self._null_fd: int | None = None
        self._user: str | None = None
        # What `env` adds to: the environment grenade started with, read once
        # (os.environ decodes every entry on each read; hundreds of steps add up).
        self._environ = dict(os.environ)
        self.watchdog = Watchdog(hosts.KILL_GRACE)

    def _devnull(self) -> int:
        """One /dev/null for every hook's stdin (opening it per step costs)."""
        if self._null_fd is None:
            self._null_fd = os.open(os.devnull, os.O_RDONLY)
        return self._null_fd

    def _as_user(self, user: str | None, argv: Sequence[str]) -> list[str]:
        if user and self._user is None:  # looked up once, and only if asked
            self._user = local_user()
        return as_user(user, argv, self._user or "", os.geteuid() == 0)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | str | None = None,
        timeout: float | None = None,
        sink: Sink,
        cancel: Cancel,
        user: str | None = None,
        started: Started | None = None,
    ) -> Result:
        start = time.monotonic()
        deadline = start + timeout if timeout and timeout > 0 else None
        timed_out = False
        kill_at: float | None = None
        self.watchdog.start()
        proc = subprocess.Popen(
            self._as_user(user, argv),
            stdin=self._devnull(),
            stdout=sink.fileno(),
            stderr=subprocess.STDOUT,
            env={**self._environ, **env, "GRENADE_HOST": self.name},
            cwd=cwd,
            start_new_session=True,  # own process group: killable as a whole
        )
        self.watchdog.watch(proc.pid)
        if started is not None:
            # The token that tells this group from a later one reusing its id: when it
            # started (reading it from /proc now would wait on the exec under way).
            started(proc.pid, f"{time.time():.2f}")
        pidfd = os.pidfd_open(proc.pid)
        sel = selectors.DefaultSelector()
        sel.register(pidfd, selectors.EVENT_READ, "exited")
        sel.register(cancel.fileno(), selectors.EVENT_READ, "cancel")
        cancelled = False
        try:
            while True:
                now = time.monotonic()
                if cancel.is_set and not cancelled:
                    cancelled = True
                    sel.unregister(cancel.fileno())  # it stays readable
                    kill_group(proc.pid, signal.SIGTERM)
                    kill_at = now + hosts.KILL_GRACE
                if deadline is not None and now >= deadline and not timed_out:
                    timed_out = True
                    kill_group(proc.pid, signal.SIGTERM)
                    kill_at = now + hosts.KILL_GRACE
                if kill_at is not None and now >= kill_at:
                    kill_group(proc.pid, signal.SIGKILL)
                    kill_at = now + hosts.KILL_GRACE
                wake = [FOLLOW_EVERY]
                for at in (deadline if not timed_out else None, kill_at):
                    if at is not None:
                        wake.append(max(at - now, 0))
                # the pidfd is readable once the hook exited
                if any(key.data == "exited" for key, _ in sel.select(min(wake))):
                    break
                sink.poll()
        except BaseException:
            kill_group(proc.pid, signal.SIGKILL)  # never leave a hook behind us
            raise
        finally:
            sel.close()
            os.close(pidfd)
            if timed_out or cancel.is_set:
                # nothing of a killed step may outlive it
                kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            # what the hook left running in its group after a normal exit is its
            # business (and was before the watchdog); after a kill nothing is left
            self.watchdog.forget(proc.pid)
            sink.poll()
        return Result(
            command=shlex.join(argv),
            exited=proc.returncode,
            duration=time.monotonic() - start,
            host=self.name,
            timeout=timeout,
            timed_out=timed_out,
            signalled=cancel.signum,
        )

    def kill_leftover(self, pgid: int, token: str) -> bool:
        """Kill the process group `pgid` a dead runner left behind, if its leader (the
        hook) still runs and is the one recorded (`token`: when it started).

        With the leader gone the hook had ended: what it left running in its group
        is its business, as after any hook that exits (and a reused id is not ours).
        """
        leader = started_at(pgid)
        if leader is None or abs(leader - float(token or 0)) > REUSE_SLACK:
            return False
        kill_group(pgid, signal.SIGTERM)
        end = time.monotonic() + hosts.KILL_GRACE
        while group_members(pgid) and time.monotonic() < end:
            time.sleep(0.05)
        kill_group(pgid, signal.SIGKILL)
        return True

    def close(self) -> None:
        self.watchdog.close()
