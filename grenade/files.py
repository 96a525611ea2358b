"""Locks and atomic writes: the one way grenade's files are locked and replaced.

Readers of a file grenade rewrites (the run state, the resource store, local.conf)
see the old or the new contents, never a torn one; no temporary file is left
behind when a write fails. Locks are `flock`s on a file of their own.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from .errors import StateError


def _write_temp(path: Path, data: str | bytes) -> str:
    """`data` in a new file beside `path` (same filesystem, so a rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, whole."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def swap_write(path: Path, data: str | bytes) -> None:
    """Like `atomic_write`, for a file rewritten after every step.

    ext4 turns a rename over an existing file into a forced flush of the new one
    (auto_da_alloc), which stalls the hooks writing their logs meanwhile. So the old
    file is first moved aside to `<name>.prev` and the new one renamed into a free
    name. `read_swapped` falls back to `.prev` in the instant `path` is missing, so
    a reader still sees the old or the new file, whole.
    """
    tmp = _write_temp(path, data)
    prev = path.with_name(path.name + ".prev")
    try:
        prev.unlink(missing_ok=True)
        with suppress(FileNotFoundError):
            os.rename(path, prev)
        os.rename(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_swapped(path: Path) -> str | None:
    """The text `swap_write` left at `path` (or, mid-swap, at `.prev`); None if none."""
    for candidate in (path, path.with_name(path.name + ".prev"), path):
        try:
            return candidate.read_text()
        except FileNotFoundError:
            continue
    return None


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (waiting for it) for the block."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "ab") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _reopen(fh: IO[Any]) -> IO[Any]:
    """`fh` with its unwritable buffer dropped, the flock kept (it is the open file
    description's, which a dup shares)."""
    dup = os.fdopen(os.dup(fh.fileno()), "a+")
    with suppress(OSError):
        fh.close()  # flushing fails again; the descriptor is closed regardless
    return dup


class RunLock:
    """An exclusive lock on a stack_root, held for the life of one task process.

    It does not wait: a second run on the same stack_root is refused, naming the
    pid that holds it.
    """

    def __init__(self, stack_root: Path) -> None:
        self.path = stack_root / ".grenade.lock"
        self._fh: IO[Any] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh: IO[Any] = open(self.path, "a+")  # noqa: SIM115  (held for the life of the task)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise StateError(
                f"another grenade run holds {self.path.parent} (pid {holder}); "
                "one run per stack_root"
            ) from None
        fh.seek(0)
        fh.truncate()
        try:
            fh.write(str(os.getpid()))
            fh.flush()
        except OSError:
            # the flock is the lock; the pid only names its holder (a full disk
            # must not stop a run from saying what the full disk broke)
            fh = _reopen(fh)
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
