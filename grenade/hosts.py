"""Where a command runs, behind one call shape, local or remote.

``host.run(argv, *, env, cwd, timeout, sink, cancel) -> Result`` is the whole
interface, the shape of invoke's ``Context.run`` and Fabric's ``Connection.run``:
`LocalHost` (grenade.localhost) runs on this machine, `FabricHost`
(grenade.fabrichost) over SSH. A `HostGroup` runs one call on all its hosts and
returns ``{host name: Result}`` like Fabric's ``GroupResult``; the `Inventory`
maps the group names steps carry to hosts. Steps never ask where they run.

`env` adds to the host's own environment (as invoke's and Fabric's `env` do): a
remote host gets grenade's variables, never this machine's environment.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import select
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import ConfigError

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a step's process group
JOIN_POLL = 0.1  # seconds between looks at a group's host threads
CONTROLLER = "controller"  # the group of the node that runs the control plane


@dataclass
class Result:
    """What a command did on one host: invoke's/Fabric's `Result` fields, plus timing."""

    command: str
    exited: int
    duration: float
    host: str = "local"
    timeout: float | None = None  # the limit it ran under
    timed_out: bool = False
    signalled: int | None = None  # the signal that interrupted the run, if any
    error: str = ""  # what went wrong on the host itself (no such cwd, SSH refused or lost)

    @property
    def ok(self) -> bool:
        # A hook that finished cleanly while a signal arrived is still done: the
        # run stops before the next step, not by forgetting this one.
        return self.exited == 0 and not self.timed_out and not self.error

    def why(self) -> str:
        """Why it failed, in the words of a failure message."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.timeout or 0:g}s (process group killed)"
        if self.signalled and not self.ok:
            return f"interrupted by signal {self.signalled}"
        return f"exit code {self.exited}"


class Sink(Protocol):
    """Where a command's output goes (grenade.logs.LogSink is the one we use).

    A local host may hand `fileno()` to the child as its stdout (children left
    running in the background then keep a valid stdout) and call `poll()` to pass
    on what it appended; a remote host streams into `write()`. `path` is the log
    file on this machine (a remote host keeps its own copy under the same name).
    """

    path: Path

    def fileno(self) -> int: ...

    def poll(self) -> None: ...

    def write(self, text: str) -> int: ...


class Cancel:
    """The run's interruption token: set once, from a signal handler, seen by every host.

    `fileno()` becomes readable when it is set and stays readable, so a host
    waiting in `select` on its command wakes at once, in any thread.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def set(self, signum: int) -> None:
        """Interrupt the run (async-signal-safe: a flag and one byte into a pipe)."""
        if self.signum is None:
            self.signum = signum
            with contextlib.suppress(OSError):
                os.write(self._write, b"!")

    @property
    def is_set(self) -> bool:
        return self.signum is not None

    def fileno(self) -> int:
        return self._read

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, less if the run is interrupted meanwhile."""
        if self.signum is None and timeout > 0:
            select.select([self._read], [], [], timeout)
        return self.signum is not None

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Cancel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Told the process group of a command as soon as it exists, with a token that tells
# it from a later group reusing the id: the run state records both, so a group left
# by a runner that died can be found and killed by the next one.
Started = Callable[[int, str], None]


class Host(Protocol):
    """Anything that runs an argv somewhere: `LocalHost`, `FabricHost`."""

    name: str

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
        """Run `argv` (no shell) as `user` (None: the host's own), output into `sink`.

        The command's process group is killed when `timeout` expires or `cancel`
        is set, and when the runner dies; the result says which. `started` hears
        the group's id once it runs. Never raises for the command's own failure.
        """
        ...

    def kill_leftover(self, pgid: int, token: str) -> bool:
        """Kill a process group that a dead runner's `run` left; False if it is gone."""
        ...


def as_user(user: str | None, argv: Iterable[str], current: str, root: bool) -> list[str]:
    """`argv` run as `user`: runuser when we are root, sudo otherwise; as is for ourselves."""
    if not user or user == current:
        return list(argv)
    prefix = ["runuser", "-u", user, "--"] if root else ["sudo", "-E", "-u", user, "--"]
    return prefix + list(argv)


def local_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@dataclass(frozen=True)
class HostGroup:
    """Named hosts that run one call together; results keyed by host name.

    Each hook sees `GRENADE_HOST_GROUPS`: the groups its host is in, space-separated
    (`memberships`, filled by the `Inventory`; this group alone without it)."""

    name: str
    hosts: tuple[Host, ...]
    memberships: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | str | None = None,
        timeout: float | None = None,
        sinks: Mapping[str, Sink],
        cancel: Cancel,
        user: str | None = None,
        started: Callable[[str, int, str], None] | None = None,
    ) -> dict[str, Result]:
        """Run on every host (in parallel threads when there are several, as
        Fabric's ThreadingGroup does); a host that raises gets an error result
        naming what went wrong instead of ending the others' runs."""

        def one(host: Host) -> Result:
            start = time.monotonic()
            groups = " ".join(self.memberships.get(host.name, (self.name,)))
            try:
                return host.run(
                    argv,
                    env={**env, "GRENADE_HOST_GROUPS": groups},
                    cwd=cwd,
                    timeout=timeout,
                    sink=sinks[host.name],
                    cancel=cancel,
                    user=user,
                    started=(lambda pgid, token: started(host.name, pgid, token))
                    if started
                    else None,
                )
            except Exception as exc:  # reported per host, like Fabric's GroupResult
                return Result(
                    command=shlex.join(argv),
                    exited=255,
                    host=host.name,
                    duration=time.monotonic() - start,
                    timeout=timeout,
                    error=f"{type(exc).__name__}: {exc}",
                )

        if len(self.hosts) == 1:
            return {self.hosts[0].name: one(self.hosts[0])}
        results: dict[str, Result] = {}
        # Each host says when it is done. Not Thread.join: interrupted inside it,
        # CPython may mark a thread that still runs as finished.
        done = {h.name: threading.Event() for h in self.hosts}

        def worker(host: Host) -> None:
            try:
                results[host.name] = one(host)
            finally:
                done[host.name].set()

        for h in self.hosts:
            threading.Thread(target=worker, args=(h,), name=f"host-{h.name}").start()
        try:
            for event in done.values():
                # Woken now and then: a signal delivered to a host's thread runs its
                # Python handler only once the main thread runs again.
                while not event.wait(JOIN_POLL):
                    pass
        except BaseException as exc:
            # Interrupted while waiting (a KeyboardInterrupt outside the runner's
            # signal guard): the hosts stop their commands before the sinks they
            # write to are closed under them.
            cancel.set(signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM)
            for event in done.values():
                event.wait()
            raise
        return {name: results[name] for name in self.names}


class Inventory:
    """Group names (what steps carry) mapped to hosts."""

    def __init__(self, groups: Mapping[str, Sequence[Host]]) -> None:
        for name, members in groups.items():
            names = [h.name for h in members]
            if not names:
                raise ConfigError(f"host group {name!r} has no hosts")
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                # results, logs and records are all keyed by host name
                raise ConfigError(f"host group {name!r} names host {twice[0]!r} twice")
        memberships: dict[str, tuple[str, ...]] = {}
        for name, members in groups.items():
            for host in members:
                memberships[host.name] = (*memberships.get(host.name, ()), name)
        self.groups = {
            name: HostGroup(name, tuple(hosts), memberships) for name, hosts in groups.items()
        }

    @classmethod
    def local(cls) -> Inventory:
        """Without configured hosts everything is this machine, the controller."""
        from .localhost import LocalHost

        return cls({CONTROLLER: [LocalHost()]})

    def group(self, name: str) -> HostGroup:
        try:
            return self.groups[name]
        except KeyError:
            raise ConfigError(
                f"no host group {name!r} in the inventory; groups: " + ", ".join(self.groups)
            ) from None

    def hosts_of(self, group: str, names: Sequence[str]) -> HostGroup:
        """The named hosts (of any group) as one group called `group`: a step the
        placement gave to some hosts only (grenade.placement)."""
        if not names:
            return self.group(group)
        found = {h.name: h for g in self.groups.values() for h in g.hosts}
        missing = [n for n in names if n not in found]
        if missing:
            raise ConfigError(
                f"no host {missing[0]!r} in the inventory; hosts: " + ", ".join(found)
            )
        some = self.group(group) if group in self.groups else None
        memberships = some.memberships if some is not None else {}
        return HostGroup(group, tuple(found[n] for n in names), memberships)

    def close(self) -> None:
        """Close every host that holds something open (connections, watchdogs)."""
        for group in self.groups.values():
            for host in group.hosts:
                close = getattr(host, "close", None)
                if close is not None:
                    close()

    @property
    def host_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for group in self.groups.values():
            seen.update(dict.fromkeys(group.names))
        return list(seen)
