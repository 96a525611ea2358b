"""Run state: which steps ran, how they ended, and what the run was made of.

`$SAVE_DIR/run-state.json` is rewritten atomically after every step so that a task
in a new process (Zuul, a human at a terminal) continues where the last one
stopped. A lock file held for the life of a task refuses a second run on the same
stack_root.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StateError

STATE_VERSION = 1
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old or the new file, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


@dataclass
class StepRecord:
    status: str = PENDING
    exit_code: int | None = None
    started: float | None = None
    duration: float | None = None
    log: str | None = None  # the step log's file name, in $STACK_ROOT/logs/steps
    host: str = "local"
    message: str = ""

    def encode(self) -> str:
        """JSON of the fields that differ from their defaults (the file stays small:
        it is rewritten after every step)."""
        return json.dumps({k: v for k, v in vars(self).items() if v != _DEFAULT_RECORD[k]},
                          separators=(",", ":"))


_DEFAULT_RECORD = vars(StepRecord())


@dataclass
class RunState:
    """The persisted state of one run on one stack_root."""

    path: Path
    run_id: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)  # trees, settings, plan inputs
    steps: dict[str, StepRecord] = field(default_factory=dict)
    failed_step: str | None = None
    _dirty: set[str] = field(default_factory=set, repr=False)
    _encoded: dict[str, str] = field(default_factory=dict, repr=False)
    _setup_json: tuple[Any, str] = field(default=(None, ""), repr=False)
    _writer: tuple[threading.Thread, list[BaseException]] | None = field(default=None,
                                                                         repr=False)

    def __post_init__(self) -> None:
        self._dirty.update(self.steps)

    @classmethod
    def load(cls, path: Path) -> RunState:
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StateError(f"{path}: run state unreadable ({exc}); "
                             "`invoke clean` removes it") from None
        if raw.get("version") != STATE_VERSION:
            raise StateError(f"{path}: run state version {raw.get('version')} "
                             f"is not {STATE_VERSION}; `invoke clean` removes it")
        return cls(
            path=path,
            run_id=raw.get("run_id", ""),
            fingerprint=raw.get("fingerprint", {}),
            setup=raw.get("setup", {}),
            steps={k: StepRecord(**v) for k, v in raw.get("steps", {}).items()},
            failed_step=raw.get("failed_step"),
        )

    def _render(self) -> str:
        """The file's text; only steps touched since the last render are re-encoded.

        A run of hundreds of steps saves after each one, so encoding the whole
        state every time would cost more than the steps themselves.
        """
        for step_id in self._dirty:
            self._encoded[step_id] = json.dumps(step_id) + ":" + self.steps[step_id].encode()
        self._dirty.clear()
        if self._setup_json[0] is not self.setup:
            self._setup_json = (self.setup, json.dumps(self.setup, separators=(",", ":")))
        head = json.dumps({
            "version": STATE_VERSION,
            "run_id": self.run_id,
            "fingerprint": self.fingerprint,
            "failed_step": self.failed_step,
        }, separators=(",", ":"))
        return (head[:-1] + ',"setup":' + self._setup_json[1]
                + ',"steps":{' + ",".join(self._encoded[k] for k in self.steps) + "}}")

    def save(self) -> None:
        """Write the state now (after any background write still going on)."""
        text = self._render()
        self.flush()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, text)

    def save_in_background(self) -> None:
        """`save()`, the file written by a thread while the caller goes on.

        The text is made here, so later changes do not leak into it; the write (a
        rename ext4 flushes to disk) overlaps the next hook. Writes land in order:
        each waits for the one before.
        """
        text = self._render()
        self.flush()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        errors: list[BaseException] = []

        def write() -> None:
            try:
                atomic_write(self.path, text)
            except BaseException as exc:  # reported by the next flush()
                errors.append(exc)

        self._writer = (threading.Thread(target=write, name="state-writer"), errors)
        self._writer[0].start()

    def flush(self) -> None:
        """Wait for a background write to finish; raise what it failed with."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer[0].join()
            if writer[1]:
                raise StateError(f"{self.path}: writing the run state failed: {writer[1][0]}")

    @property
    def is_setup(self) -> bool:
        return bool(self.setup)

    def reset(self) -> None:
        """Start a new run: forget steps and setup, keep nothing but the path."""
        self.run_id = time.strftime("%Y%m%d-%H%M%S")
        self.fingerprint = {}
        self.setup = {}
        self.steps = {}
        self.failed_step = None
        self._dirty.clear()
        self._encoded.clear()

    def record(self, step_id: str) -> StepRecord:
        """The step's record, to be changed by the caller and written by `save()`."""
        self._dirty.add(step_id)
        return self.steps.setdefault(step_id, StepRecord())

    def changed(self, step_id: str) -> None:
        """Mark a record changed after a `save()` wrote it (re-encoded on the next save)."""
        self._dirty.add(step_id)

    def status(self, step_id: str) -> str:
        rec = self.steps.get(step_id)
        return rec.status if rec else PENDING


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable list of what changed between two fingerprints."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


class RunLock:
    """An exclusive lock on a stack_root, held for the life of one task process."""

    def __init__(self, stack_root: Path) -> None:
        self.path = stack_root / ".grenade.lock"
        self._fh: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
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
        fh.write(str(os.getpid()))
        fh.flush()
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
