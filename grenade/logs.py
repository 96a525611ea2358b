"""Logs: the full timestamped log, the one-line-per-step summary, one log per step.

`$STACK_ROOT/logs/grenade.log` gets everything and `grenade.summary.log` one line per
step with its duration. The original's names, `grenade.sh.log` and
`grenade.sh.log.summary`, are links to them so existing log collection (Zuul's
`zuul_copy_output`) finds them.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

LEGACY_LINKS = {"grenade.sh.log": "grenade.log", "grenade.sh.log.summary": "grenade.summary.log"}


def timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"


def step_log_name(index: int, step_id: str, host: str | None = None) -> str:
    """`003-create_alpha.log`, or `003-create_alpha@node1.log` for one host of a step."""
    name = f"{index:03d}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", step_id)
    if host is not None:
        name += "@" + re.sub(r"[^A-Za-z0-9_.-]+", "_", host)
    return name + ".log"


class LogSink:
    """One host's output of one step: its log file, each line handed on as it comes.

    The file is opened once, read-write in append mode. A local host gives
    `fileno()` to the child as its stdout and calls `poll()`, which reads behind
    it from our own offset; a remote host streams into `write()`.
    """

    def __init__(self, path: Path, on_line: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.offset = os.fstat(self.fd).st_size
        self.on_line = on_line
        self.pending = b""

    def fileno(self) -> int:
        return self.fd

    def write(self, text: str) -> int:
        data = text.encode(errors="replace")
        os.write(self.fd, data)
        self.poll()
        return len(text)

    def poll(self) -> None:
        if not self.on_line:
            self.offset = os.fstat(self.fd).st_size
            return
        chunks = []
        while chunk := os.pread(self.fd, 65536, self.offset):
            self.offset += len(chunk)
            chunks.append(chunk)
        if chunks:
            self.pending += b"".join(chunks)
            *lines, self.pending = self.pending.split(b"\n")
            for raw in lines:
                self.on_line(raw.decode(errors="replace"))

    def close(self) -> None:
        self.poll()
        if self.pending and self.on_line:
            self.on_line(self.pending.decode(errors="replace"))
        os.close(self.fd)

    def __enter__(self) -> LogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunLog:
    """The run's log files and console output."""

    def __init__(
        self, logs_dir: Path, console: TextIO | None = None, verbose: bool = False
    ) -> None:
        self.dir = logs_dir
        self.steps_dir = logs_dir / "steps"
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        self.console = console if console is not None else sys.stdout
        self.verbose = verbose
        self.lock = threading.Lock()  # the hosts of a group write from their own threads
        # open for the life of the run; close() ends them
        self.main = open(logs_dir / "grenade.log", "a", buffering=1)  # noqa: SIM115
        self.summary = open(logs_dir / "grenade.summary.log", "a", buffering=1)  # noqa: SIM115
        for link, target in LEGACY_LINKS.items():
            path = logs_dir / link
            if not path.is_symlink():
                if path.exists():
                    path.unlink()
                path.symlink_to(target)

    def close(self) -> None:
        self.main.close()
        self.summary.close()

    def line(self, text: str) -> None:
        """A line of hook output: into the full log, and the console when verbose."""
        with self.lock:
            self.main.write(f"{timestamp()} | {text}\n")
            if self.verbose:
                self.console.write(text + "\n")

    def info(self, text: str) -> None:
        """A message of grenade's own: full log and console."""
        with self.lock:
            self.main.write(f"{timestamp()} | {text}\n")
            self.console.write(text + "\n")
            self.console.flush()

    def step_done(self, step_id: str, status: str, duration: float, host: str) -> None:
        self.summary.write(f"{timestamp()} | {status:7} {duration:8.2f}s  {host:10} {step_id}\n")


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last `lines` lines of a file (empty if it does not exist)."""
    try:
        with open(path, errors="replace") as fh:
            return [ln.rstrip("\n") for ln in deque(fh, maxlen=lines)]
    except OSError:
        return []


def ensure_dir(path: Path) -> Path:
    os.makedirs(path, exist_ok=True)
    return path
