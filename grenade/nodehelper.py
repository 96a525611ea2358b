"""A small helper on each node that answers grenade's checks around every step.

Every SSH command starts the user's login shell, startup files included (a `pyenv
init` in a .bashrc costs a quarter of a second); a step on a node needs two short
exchanges (grenade.fleet: check the node's copies and install the resource memory
before, bring the memory back after). So each node gets one POSIX `sh` loop on a
channel of its SSH connection, started once, reading requests on its stdin and
answering on its stdout: an exchange costs a round trip and a few forks.

Requests are lines: the operation, then its fields, one per line (paths; data as
base64), never evaluated: the loop reads them into variables it quotes. Every
answer ends with the line ``grenade-end``; a line ``grenade-error ...`` says what
failed. The loop ends when the connection does (its stdin closes).
"""

from __future__ import annotations

import base64
import contextlib
import shlex
import threading
from collections.abc import Sequence
from typing import Any

import paramiko

from .errors import TreeError

READY, END, ERROR = b"grenade-ready\n", b"grenade-end\n", "grenade-error"
OPEN_TIMEOUT = 30  # seconds for the helper to start (the login shell's startup)

# prepare: ROOT TOKEN RESULTS DB DATA N, then N markers -> `shared` or `node`, the
#   size of RESULTS, one line per marker (`tree:DIR`: DIR/.grenade-tree, or `git:SHA`
#   for a git checkout without one; else the file's first line); unless shared, DATA
#   (base64, or `-` to leave it) replaces DB, privately and atomically.
# collect: DB RESULTS OFFSET VERSIONS -> DB in base64, then RESULTS past OFFSET in
#   base64, then VERSIONS (the node's service-versions.json) in base64.
HELPER = r"""
umask 077
echo grenade-ready
while IFS= read -r op; do
    case $op in
    prepare)
        IFS= read -r root; IFS= read -r token; IFS= read -r results
        IFS= read -r db; IFS= read -r data; IFS= read -r n
        state=node
        if [ -n "$token" ] && [ -r "$root/.grenade-controller" ]; then
            seen=
            IFS= read -r seen <"$root/.grenade-controller" || true
            if [ "$seen" = "$token" ]; then state=shared; fi
        fi
        echo "$state"
        if [ -r "$results" ]; then wc -c <"$results" | tr -d ' '; else echo 0; fi
        while [ "$n" -gt 0 ]; do
            IFS= read -r m
            n=$((n - 1))
            v=
            case $m in
            tree:*)
                d=${m#tree:}
                if [ -r "$d/.grenade-tree" ]; then
                    IFS= read -r v <"$d/.grenade-tree" || true
                elif [ -e "$d/.git" ]; then
                    v=git:$(git -C "$d" rev-parse HEAD 2>/dev/null || echo unknown)
                fi ;;
            *) if [ -r "$m" ]; then IFS= read -r v <"$m" || true; fi ;;
            esac
            printf '%s\n' "$v"
        done
        if [ "$state" = node ] && [ "$data" != - ]; then
            if ! { mkdir -p -- "${db%/*}" &&
                printf '%s' "$data" | base64 -d >"$db.grenade-upload" &&
                mv -f -- "$db.grenade-upload" "$db"; }; then
                echo "grenade-error cannot write $db"
            fi
        fi
        echo grenade-end ;;
    collect)
        IFS= read -r db; IFS= read -r results; IFS= read -r offset; IFS= read -r versions
        if [ -r "$db" ]; then base64 -w0 <"$db"; fi
        echo
        if [ -r "$results" ]; then tail -c "+$((offset + 1))" -- "$results" | base64 -w0; fi
        echo
        if [ -r "$versions" ]; then base64 -w0 <"$versions"; fi
        echo
        echo grenade-end ;;
    *)
        echo "grenade-error unknown request $op"
        echo grenade-end ;;
    esac
done
"""


class NodeHelper:
    """The helper loop on one node, over its Fabric connection; one exchange at a
    time, restarted when its channel is gone (a reconnect, a closed connection)."""

    def __init__(self, name: str, connection: Any) -> None:
        self.name, self.connection = name, connection
        self.channel: paramiko.Channel | None = None
        self.buffer = b""
        self.lock = threading.Lock()

    def _open(self, timeout: float) -> paramiko.Channel:
        self.connection.open()  # a no-op when connected
        channel = self.connection.transport.open_session(timeout=OPEN_TIMEOUT)
        channel.exec_command(shlex.join(["sh", "-c", HELPER, "grenade-helper"]))
        self.channel, self.buffer = channel, b""
        self._until(READY, OPEN_TIMEOUT, anywhere=True)  # after a login shell's chatter
        return channel

    def _until(self, end: bytes, timeout: float, anywhere: bool = False) -> bytes:
        """What the helper says before `end` (a line of its own; `anywhere`: after
        whatever a login shell printed first), which is consumed too."""
        channel = self.channel
        assert channel is not None
        channel.settimeout(timeout)
        while True:
            if anywhere or self.buffer.startswith(end):
                found = self.buffer.find(end)
            else:
                found = self.buffer.find(b"\n" + end)
                found = found + 1 if found >= 0 else -1
            if found >= 0:
                text, self.buffer = self.buffer[:found], self.buffer[found + len(end) :]
                return text
            data = channel.recv(65536)
            if not data:
                why = b""
                with contextlib.suppress(Exception):
                    while channel.recv_stderr_ready():
                        why += channel.recv_stderr(65536)
                raise EOFError(why.decode(errors="replace").strip() or "the helper ended")
            self.buffer += data

    def request(self, op: str, fields: Sequence[str], timeout: float) -> list[str]:
        """The helper's answer to `op` with `fields`, as lines (without the end)."""
        for field in fields:
            if "\n" in field:
                raise TreeError(f"{self.name}: a newline in {field!r} cannot be sent")
        message = "".join(f"{line}\n" for line in (op, *fields)).encode()
        with self.lock:
            for attempt in (1, 2):
                try:
                    channel = self.channel
                    if channel is None or channel.closed or channel.exit_status_ready():
                        channel = self._open(timeout)
                    channel.sendall(message)
                    answer = self._until(END, timeout).decode(errors="replace")
                    break
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    self.close()  # a fresh helper next time: requests can be repeated
                    if attempt == 2:
                        raise TreeError(
                            f"{self.name}: grenade's helper on the node failed ({op}): "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
        lines = answer.split("\n")[:-1]
        errors = [line for line in lines if line.startswith(ERROR)]
        if errors:
            raise TreeError(f"{self.name}: {errors[0][len(ERROR) :].strip()}")
        return lines

    def close(self) -> None:
        if self.channel is not None:
            with contextlib.suppress(Exception):
                self.channel.close()
        self.channel, self.buffer = None, b""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.strip() or b"", validate=True)
