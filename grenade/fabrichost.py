"""A host over SSH: Fabric runs each hook on the remote in its own process group.

The remote side mirrors LocalHost: the hook writes straight into a log file on
the remote (`log_dir`/<step log name>), so whatever it leaves running keeps a
valid stdout and never holds the SSH channel open; `tail --pid` streams the new
part of that file back into the sink until the hook exits. The hook's process
group is killed remotely (SIGTERM, then SIGKILL after `hosts.KILL_GRACE`) on
timeout or when the run's cancel token is set. Every command line we send is
built with shlex: no value from a step reaches the remote shell unquoted.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import re
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import fabric
import paramiko
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut

from . import hosts
from .hosts import Cancel, Result, Sink, Started, as_user

CONNECT_TIMEOUT = 10  # seconds to reach sshd: a dead address must not hang the run
# paramiko logs a failed handshake with its traceback, which Python's last-resort
# handler would print on stderr: the errors we raise say it in one line instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
KEEPALIVE = 30  # seconds; traffic on an idle link lets a vanished peer end in an error
POLL = 0.05  # seconds between looks at the channel's exit status (paramiko has no fd)
COMMAND_TIMEOUT = 30  # seconds for a kill command
GIVE_UP = 10.0  # seconds past the SIGKILL before we close a channel that stays open

# Runs as `setsid -w sh -c WRAPPER grenade-step LOG ARGV...`: a session leader, so
# $$ is the process group to kill. It reports $$, starts tail following LOG from
# its current end for as long as $$ lives, then *becomes* the hook: run as a
# background job instead, the hook (and every service it starts) would ignore
# SIGINT and SIGQUIT for good, as POSIX sh does to asynchronous lists. tail
# ignores SIGTERM so what the hook writes while dying still arrives; the hook's
# exit (tail polls --pid every 0.1s), or our SIGKILL, ends it.
WRAPPER = """\
echo "grenade-pgid $$" >&2
log=$1
shift
: >>"$log" || exit 125
offset=$(($(wc -c <"$log") + 1))
(trap '' TERM; exec tail -c "+$offset" -s 0.1 --pid=$$ -f "$log") &
exec "$@" >>"$log" 2>&1
"""
# The hook's environment arrives on stdin as `export K='v'` lines (each value
# shlex-quoted): on the command line it would be readable by every user of the
# remote in /proc/*/cmdline for as long as the hook runs. Read after the user
# switch (sudo resets the environment); the hook itself gets /dev/null.
ENV_READER = 'eval "$(cat)" && exec "$@" </dev/null'
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PGID_LINE = re.compile(rb"grenade-pgid (\d+)")
SETSID_KILLED = re.compile(rb"setsid: child \d+ did not exit normally.*")


class _StreamingRemote(Remote):  # type: ignore[misc]
    """Fabric's runner, linear in the output: invoke re-joins everything captured
    so far for its watchers after every 1000-byte read (a minute for 20 MB of
    stack.sh). We have no watchers; anyone else on the connection keeps them."""

    read_chunk_size = 65536

    def respond(self, buffer_: list[str]) -> None:
        if self.watchers:
            super().respond(buffer_)


class _AllAtOnce(io.StringIO):
    """The env script as stdin. invoke reads a stream that is not a terminal one
    character per `input_sleep` (10 ms: 5 s for a 500-byte environment), so a
    read of any size returns the rest."""

    def read(self, size: int | None = -1) -> str:
        return super().read()


class _SinkStream:
    """An invoke output stream into the sink. invoke decodes each read on its own
    (a character split between two reads would be mangled), so it is told
    latin-1, which maps bytes to code points one to one, and we decode UTF-8
    incrementally here, replacing what is not valid. One lock for both streams:
    invoke writes stdout and stderr from two threads, and a sink is not
    thread-safe."""

    def __init__(self, sink: Sink, lock: threading.Lock) -> None:
        self.sink, self.lock = sink, lock
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.head = b""  # what _Stderr holds back until a line is complete

    def write(self, text: str) -> int:
        self.forward(text.encode("latin-1"))
        return len(text)

    def forward(self, data: bytes, final: bool = False) -> None:
        if text := self.decoder.decode(data, final):
            with self.lock:
                self.sink.write(text)

    def flush(self) -> None:
        """Nothing buffered but an incomplete character (invoke calls this)."""

    def close(self) -> None:
        self.forward(self.head, final=True)
        self.head = b""


class _Stderr(_SinkStream):
    """The wrapper's stderr, a line at a time (the hook's own goes to the log): the
    first line names the process group; `setsid -w` saying its child was killed
    is noted, not logged; anything else (a failing `cd`) goes to the log."""

    def __init__(self, sink: Sink, lock: threading.Lock) -> None:
        super().__init__(sink, lock)
        self.pgid: int | None = None
        self.killed = False

    def write(self, text: str) -> int:
        *lines, self.head = (self.head + text.encode("latin-1")).split(b"\n")
        for line in lines:
            if self.pgid is None and (match := PGID_LINE.fullmatch(line)):
                self.pgid = int(match[1])
            elif SETSID_KILLED.fullmatch(line):
                self.killed = True
            else:
                self.forward(line + b"\n")
        return len(text)


class UnknownHostKey(paramiko.SSHException):
    """The server's host key is not in known_hosts, and new keys are not accepted."""


class RejectUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """paramiko's RejectPolicy, saying which known_hosts file lacks the key."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise UnknownHostKey(
            f"host key of {hostname} ({key.get_name()} {key.fingerprint}) "
            f"not found in known_hosts {self.known_hosts}"
        )


_KNOWN_HOSTS_LOCK = threading.Lock()  # the hosts of a group connect from threads


class AcceptNewHostKey(paramiko.MissingHostKeyPolicy):
    """OpenSSH's `StrictHostKeyChecking accept-new`: the key of a host known_hosts
    does not know yet is added to it; paramiko itself refuses a key that differs
    from a known one (BadHostKeyException) before asking a policy."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        with _KNOWN_HOSTS_LOCK:
            os.makedirs(os.path.dirname(self.known_hosts) or ".", mode=0o700, exist_ok=True)
            with open(self.known_hosts, "a") as fh:
                fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)  # a reconnect knows it


class FabricHost:
    """A remote machine reached over SSH with a `fabric.Connection`."""

    def __init__(self, name: str, connection: fabric.Connection, log_dir: str) -> None:
        self.name = name
        self.connection = connection
        self.log_dir = log_dir
        if connection.connect_timeout is None:
            connection.connect_timeout = CONNECT_TIMEOUT
        connection.config.runners.remote = _StreamingRemote  # what connection.run uses
        self.user: str = connection.user
        self.root = self.user == "root"
        self.known_hosts: str | None = None  # the file its host key is checked against

    @classmethod
    def connect(
        cls, name: str, host: str, *, log_dir: str, user: str | None = None,
        port: int | None = None, key_filename: str | None = None,
        known_hosts: str | None = None, accept_new_keys: bool = False,
        connect_timeout: int = CONNECT_TIMEOUT,
    ) -> FabricHost:  # fmt: skip
        """A host from plain values; `host` may be an ``~/.ssh/config`` alias, whose
        HostName, User, Port and IdentityFile Fabric applies where these are None.

        The server's key must be in `known_hosts` (default ~/.ssh/known_hosts):
        Fabric would otherwise accept any key. `accept_new_keys` adds the key of a
        host the file does not know yet to it (throwaway test nodes); a key that
        differs from the one it knows is refused either way."""
        connection = fabric.Connection(
            host, user=user, port=port, connect_timeout=connect_timeout,
            connect_kwargs={
                # a listener that never speaks SSH fails as fast as a dead address
                "banner_timeout": connect_timeout, "auth_timeout": connect_timeout,
                **({"key_filename": key_filename} if key_filename else {}),
            },
        )  # fmt: skip
        path = known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        connection.client.set_missing_host_key_policy(
            AcceptNewHostKey(path) if accept_new_keys else RejectUnknownHostKey(path)
        )
        if os.path.isfile(path):  # none yet: every key is unknown
            connection.client.load_system_host_keys(path)
        remote = cls(name, connection, log_dir)
        remote.known_hosts = path
        return remote

    def close(self) -> None:
        self.connection.close()

    def _kill(self, pgid: int, sig: str, user: str | None) -> None:
        kill = ["kill", "-s", sig, "--", f"-{pgid}"]  # dash's kill rejects `-TERM --`
        commands = [kill]
        if not self.root and as_user(user, kill, self.user, False) != kill:
            # tail is ours, the hook's processes are `user`'s (under sudo): kill as both
            commands.append(as_user(user, kill, self.user, False))
        # on a timeout the channel is closed; the next round (or GIVE_UP) follows
        with contextlib.suppress(CommandTimedOut):
            self.connection.run(
                "; ".join(shlex.join(c) for c in commands),
                hide=True, warn=True, in_stream=False, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip

    def kill_leftover(self, pgid: int, token: str) -> bool:
        """Kill a group a dead runner left on this host (TERM, the grace, KILL).

        Unlike `LocalHost`, the group's id alone says which: a remote group is
        recorded without its leader's start time.
        """
        self.connection.open()
        if not self._group_alive(pgid):
            return False
        self._kill(pgid, "TERM", None)
        end = time.monotonic() + hosts.KILL_GRACE
        while time.monotonic() < end and self._group_alive(pgid):
            time.sleep(POLL)
        self._kill(pgid, "KILL", None)
        return True

    def _group_alive(self, pgid: int) -> bool:
        """Whether a live (not zombie) process of group `pgid` runs there."""
        live = "$1 == p && $2 !~ /^Z/ {found = 1} END {exit !found}"
        probe = self.connection.run(
            shlex.join(["ps", "-e", "-o", "pgid=,stat="])
            + " | " + shlex.join(["awk", "-v", f"p={pgid}", live]),
            hide=True, warn=True, in_stream=False, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        return probe.exited == 0

    def _kill_after_loss(self, pgid: int | None, user: str | None) -> str:
        """The hook runs on in its own session when the connection drops: reconnect
        and kill its group, so a resumed run never finds it beside the new one."""
        if pgid is None:
            return "it may not have started"
        try:
            self.connection.open()
            self._kill(pgid, "KILL", user)
        except Exception as exc:
            return f"its process group {pgid} may still run there ({type(exc).__name__}: {exc})"
        return f"its process group {pgid} was killed after reconnecting"

    def command_line(
        self, argv: Sequence[str], cwd: Path | str | None, user: str | None, log: str,
    ) -> str:  # fmt: skip
        """The remote command: every value shell-quoted; the environment comes on
        stdin (`env_script`), never on this line nor through sshd's AcceptEnv. The
        log directory is made each time: one stat when it exists, no round trip of
        its own, and a step that wiped it does not break the next."""
        hook = as_user(user, ["sh", "-c", ENV_READER, "grenade-env", *argv], self.user, self.root)
        steps = [["mkdir", "-p", "--", self.log_dir]] + ([["cd", "--", str(cwd)]] if cwd else [])
        wrapped = ["exec", "setsid", "-w", "sh", "-c", WRAPPER, "grenade-step", log, *hook]
        return " && ".join(shlex.join(step) for step in [*steps, wrapped])

    @staticmethod
    def env_script(env: Mapping[str, str]) -> str:
        """The hook's environment as shell assignments, every value quoted."""
        for key in env:
            if not SHELL_NAME.fullmatch(key):
                raise ValueError(f"not a shell variable name: {key!r}")
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())

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
        self.connection.open()  # no-op when connected; reconnects after a drop
        self.connection.transport.set_keepalive(KEEPALIVE)
        log = str(PurePosixPath(self.log_dir) / sink.path.name)
        lock = threading.Lock()
        out, err = _SinkStream(sink, lock), _Stderr(sink, lock)
        promise = self.connection.run(
            self.command_line(argv, cwd, user, log),
            asynchronous=True, hide=False, warn=True, pty=False, out_stream=out, err_stream=err,
            # latin-1 both ways (see _SinkStream): these are the script's UTF-8 bytes
            in_stream=_AllAtOnce(
                self.env_script({**env, "GRENADE_HOST": self.name}).encode().decode("latin-1")
            ),
            encoding="latin-1",
        )  # fmt: skip
        runner = promise.runner
        timed_out = term_sent = False
        kill_at: float | None = None
        give_up_at: float | None = None
        broken = False  # an IO thread died (the sink raised): join() re-raises its error
        try:
            while not runner.process_is_finished and not (broken := runner.has_dead_threads):
                now = time.monotonic()
                if started is not None and err.pgid is not None:
                    started(err.pgid, "")  # no start time here: the pgid alone
                    started = None
                if deadline is not None and now >= deadline and not timed_out:
                    timed_out = True
                if (timed_out or cancel.is_set) and kill_at is None:
                    kill_at = now + hosts.KILL_GRACE  # read now: tests shorten it
                    give_up_at = kill_at + hosts.KILL_GRACE + GIVE_UP
                if kill_at is not None and err.pgid is not None:
                    if not term_sent:
                        self._kill(err.pgid, "TERM", user)
                        term_sent = True
                    if now >= kill_at:
                        self._kill(err.pgid, "KILL", user)
                        kill_at = now + hosts.KILL_GRACE
                if give_up_at is not None and now >= give_up_at:
                    runner.kill()  # close the channel: the remote does not answer
                    break
                if cancel.is_set:  # the token stays readable: wait() would spin
                    time.sleep(POLL)
                else:
                    cancel.wait(POLL)
            if (timed_out or cancel.is_set or broken) and err.pgid is not None:
                self._kill(err.pgid, "KILL", user)  # nothing of a killed step may outlive it
        except BaseException:
            if err.pgid is not None and self.connection.is_connected:
                with contextlib.suppress(Exception):
                    self._kill(err.pgid, "KILL", user)  # never leave a hook behind us
            runner.kill()
            with contextlib.suppress(Exception):  # ours is the error to report
                promise.join()
            raise
        if broken:
            runner.kill()  # nobody reads the channel any more
        result = promise.join()
        out.close()
        err.close()
        if runner.channel.exit_status == -1 and not self.connection.is_connected:
            raise ConnectionError(
                f"connection to {self.name} lost while running "
                f"{shlex.join(argv)}; {self._kill_after_loss(err.pgid, user)}"
            )
        # setsid -w exits with the raw wait status of a killed hook: report it as
        # Popen (LocalHost) does, minus the signal number.
        exited = -(result.exited & 0x7F) if err.killed else result.exited
        return Result(
            command=shlex.join(argv),
            exited=exited,
            duration=time.monotonic() - start,
            host=self.name,
            timeout=timeout,
            timed_out=timed_out,
            signalled=cancel.signum,
        )
