"""Processes as /proc shows them: the one place grenade reads /proc/PID/stat and
signals process groups (the local host, the watchdog, setup's interrupts)."""

from __future__ import annotations

import contextlib
import os


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...);
    None if the process is gone. The name may hold spaces and parentheses."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def started_at(pid: int) -> float | None:
    """When a live process started, in seconds since the epoch (None if it is gone
    or a zombie: an init that does not reap may keep those for long)."""
    fields = proc_stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    try:
        with open("/proc/stat") as fh:
            boot = next(int(ln.split()[1]) for ln in fh if ln.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def group_members(pgid: int) -> list[int]:
    """The pids of the live (not zombie) processes in a process group, from /proc."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process in /proc."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := proc_stat(int(entry))) is not None:
            procs[int(entry)] = (int(fields[1]), int(fields[2]), fields[0])
    return procs
