"""Interrupting setup: SIGINT, SIGTERM and SIGHUP end it with 128 + the signal.

While steps run, the runner's `SignalGuard` only sets a token its hosts watch.
Setup has no such loop: it is GitPython calls, a bash sourcing the settings, files
written. So while setup runs (`SetupInterrupts`), a signal first stops what setup
started and then raises `Interrupted` in the main thread, where the `finally` and
`except BaseException` blocks of setup undo what it half made (a first checkout,
the settings' scratch directory). The processes are found in /proc rather than
from bookkeeping, so one forked a moment before the signal is found too:

- our descendants in our own process group: git and its helpers, the bash that
  reads a stackrc (a Ctrl-C at a terminal reaches them anyway; a SIGTERM sent to
  grenade alone does not);
- the process group of each child of ours that leads its own: the settings bash,
  started in a session of its own, and what the settings started in it.

A daemon a settings file started in a session of its own is left alone, as the
runner leaves the services of stack.sh. SIGTERM first, so git removes its lock
files; SIGKILL for what is left after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

from .errors import Interrupted
from .procs import kill_group, processes
from .runner import SignalGuard

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
POLL = 0.02


def started_by_us() -> tuple[list[int], list[int]]:
    """(pids, process groups) setup started and an interrupt stops (see the module doc)."""
    me, group = os.getpid(), os.getpgid(0)
    procs = processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    descendants, todo = [], list(children.get(me, []))
    while todo:
        pid = todo.pop()
        descendants.append(pid)
        todo.extend(children.get(pid, []))
    pids = [p for p in descendants if procs[p][1] == group]
    groups = [p for p in children.get(me, []) if procs[p][1] == p]
    return pids, groups


def _alive(pids: list[int], groups: list[int]) -> bool:
    procs = processes()
    wanted = set(groups)
    return any(
        state != "Z" and (pid in pids or pgrp in wanted) for pid, (_, pgrp, state) in procs.items()
    )


def _send(pids: list[int], groups: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    for pgid in groups:
        kill_group(pgid, sig)


def stop_started_processes(grace: float = KILL_GRACE) -> None:
    """SIGTERM what setup started, SIGKILL what is left after `grace` seconds."""
    pids, groups = started_by_us()
    if not pids and not groups:
        return
    _send(pids, groups, signal.SIGTERM)
    end = time.monotonic() + grace
    while _alive(pids, groups):
        if time.monotonic() >= end:
            _send(pids, groups, signal.SIGKILL)
            return
        time.sleep(POLL)


class SetupInterrupts:
    """`with SetupInterrupts():` the run's signals stop setup's processes and raise
    `Interrupted` (once: a second signal while setup unwinds changes nothing).

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.old: dict[int, Any] = {}

    def __enter__(self) -> SetupInterrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in SignalGuard.handled():
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        stop_started_processes()
        raise Interrupted(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            # None: a handler not installed from Python; the default is the closest
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
