"""Logs: the full timestamped log, the one-line-per-step summary, one log per step.

`$STACK_ROOT/logs/grenade.log` gets everything and `grenade.summary.log` one line per
step with its duration. The original's names, `grenade.sh.log` and
`grenade.sh.log.summary`, are links to them so existing log collection (Zuul's
`zuul_copy_output`) finds them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .secrets import Masker, Owner, private_dir, private_fd

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

    The file is opened once, read-write in append mode, private (0600). A local
    host gives `fileno()` to the child as its stdout and calls `poll()`, which
    reads behind it from our own offset; a remote host streams into `write()`.

    With a `masker`, the lines handed on are masked as they come, and `close()`
    rewrites the file masked in place: the hook writes raw output into a real file
    (children it leaves in the background keep a valid stdout), so the secrets it
    printed are only in the file while the step runs.
    """

    def __init__(
        self,
        path: Path,
        on_line: Callable[[str], None] | None = None,
        *,
        masker: Masker | None = None,
        owner: Owner | None = None,
    ) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        private_fd(self.fd, owner)  # a log left by an older grenade may be 0644
        self.offset = os.fstat(self.fd).st_size
        self.on_line = on_line
        self.masker = masker
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
                self.on_line(self._text(raw))

    def _text(self, raw: bytes) -> str:
        text = raw.decode(errors="replace")
        return self.masker.mask(text) if self.masker else text

    def close(self) -> None:
        try:
            self.poll()
            if self.pending and self.on_line:
                self.on_line(self._text(self.pending))
            if self.masker:
                mask_in_place(self.fd, self.masker)
        finally:
            os.close(self.fd)

    def __enter__(self) -> LogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_from(fd: int, offset: int) -> bytes:
    chunks = []
    while chunk := os.pread(fd, 1 << 20, offset):
        offset += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def mask_file(path: Path, masker: Masker) -> bool:
    """`mask_in_place` for a log no sink has open (a dead runner's step log)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return mask_in_place(fd, masker)
    finally:
        os.close(fd)


def mask_in_place(fd: int, masker: Masker) -> bool:
    """Rewrite the file open at `fd` masked, on the same inode; True if it changed.

    Not by rename: children of the hook left running in the background hold the
    file open with O_APPEND and keep appending at its end. Each value becomes as
    many `*` as it has bytes, so the file keeps its length: nothing is truncated
    (what they append meanwhile stays) and a full disk needs no room for it. What
    they append after the rewrite is not masked (the hook has ended). Never raises:
    the step's result, recorded after it, matters more than its log.
    """
    try:
        data = _read_from(fd, 0)
        masked = masker.mask_bytes(data, same_length=True)
        if masked == data:
            return False
        # pwrite on an O_APPEND descriptor appends whatever the offset (Linux): write
        # through a second one, opened on the same file, without it.
        out = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            done = 0
            while done < len(masked):
                done += os.pwrite(out, masked[done:], done)
        finally:
            os.close(out)
    except OSError:
        return False
    return True


class RunLog:
    """The run's log files and console output, every line masked (grenade.secrets).

    `logs_dir` (and `steps/` in it) is private to the user hooks run as: 0700,
    the files grenade writes there 0600, `owner`'s when given.
    """

    def __init__(
        self,
        logs_dir: Path,
        console: TextIO | None = None,
        verbose: bool = False,
        masker: Masker | None = None,
        owner: Owner | None = None,
    ) -> None:
        self.dir = private_dir(logs_dir, owner)
        self.steps_dir = private_dir(logs_dir / "steps", owner)
        self.console = console if console is not None else sys.stdout
        self.verbose = verbose
        self.masker = masker if masker is not None else Masker()
        self.owner = owner
        self.lock = threading.RLock()  # the hosts of a group write from their own threads
        self.failed: set[TextIO] = set()  # log files that could not be written
        # open for the life of the run; close() ends them
        self.main = self._open(logs_dir / "grenade.log")
        self.summary = self._open(logs_dir / "grenade.summary.log")
        for link, target in LEGACY_LINKS.items():
            path = logs_dir / link
            if not path.is_symlink():
                if path.exists():
                    path.unlink()
                path.symlink_to(target)

    def _open(self, path: Path) -> TextIO:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        private_fd(fd, self.owner)
        return open(fd, "a", buffering=1)  # noqa: SIM115  (closed by close())

    def sink(self, path: Path, on_line: Callable[[str], None] | None = None) -> LogSink:
        """A step's log in this run: private like the others, masked with the run's masker."""
        return LogSink(path, on_line, masker=self.masker, owner=self.owner)

    def close(self) -> None:
        for fh in (self.main, self.summary):
            with contextlib.suppress(OSError):  # what is still buffered on a full disk
                fh.close()

    def _put(self, fh: TextIO, text: str) -> None:
        """Write, never raise: a full disk (or a console gone with its terminal) must
        not turn the message that says what went wrong into a traceback. The first
        failure of a log file is said once, on the console."""
        try:
            fh.write(text)
            if fh is self.console:
                fh.flush()
        except (OSError, ValueError) as exc:
            if fh is not self.console and fh not in self.failed:
                self.failed.add(fh)
                self._put(self.console, f"grenade: cannot write {fh.name}: {exc}\n")

    def line(self, text: str) -> None:
        """A line of hook output: into the full log, and the console when verbose."""
        text = self.masker.mask(text)
        with self.lock:
            self._put(self.main, f"{timestamp()} | {text}\n")
            if self.verbose:
                self._put(self.console, text + "\n")

    def info(self, text: str) -> None:
        """A message of grenade's own: full log and console."""
        text = self.masker.mask(text)
        with self.lock:
            self._put(self.main, f"{timestamp()} | {text}\n")
            self._put(self.console, text + "\n")

    def record(self, text: str) -> None:
        """A message for the full log only (the console got it another way)."""
        text = self.masker.mask(text)
        with self.lock:
            self._put(self.main, f"{timestamp()} | {text}\n")

    def step_done(self, step_id: str, status: str, duration: float, host: str) -> None:
        line = f"{timestamp()} | {status:7} {duration:8.2f}s  {host:10} {step_id}\n"
        with self.lock:
            self._put(self.summary, self.masker.mask(line))


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
