"""Run state: which steps ran, how they ended, and what the run was made of.

`$SAVE_DIR/run-state.json` is rewritten atomically after every step so that a task
in a new process (Zuul, a human at a terminal) continues where the last one
stopped (the lock that makes a stack_root one run's is grenade.files.RunLock).
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StateError, StateWriteError, command_hint
from .files import read_swapped, swap_write
from .hosts import CONTROLLER
from .record import SetupRecord

STATE_VERSION = 2
# Room kept beside the state for its last writes when the disk fills up: a run
# stopped by a full disk still records how far it got, so a resume re-runs nothing.
RESERVE_BYTES = 512 * 1024
# Below this much free space the state is written before each hook, not beside it:
# a write that fails then stops the run before the hook, not one hook later.
LOW_SPACE_BYTES = 64 * 1024 * 1024
FULL = (errno.ENOSPC, errno.EDQUOT)
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"


def write_state(path: Path, text: str) -> None:
    """Write the state file; on a full disk, into the room of its reserve.

    Raises StateWriteError, naming the file and the reason, when the file could not
    be written or could only be written by using up the reserve: either way the
    run must stop before its next hook.
    """
    reserve = path.with_name("." + path.name + ".reserve")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        swap_write(path, text)
    except OSError as exc:
        why = f"cannot write {path}: {exc.strerror or exc}"
        if exc.errno not in FULL or not reserve.exists():
            raise StateWriteError(why) from None
        reserve.unlink()
        try:
            swap_write(path, text)
        except OSError:
            raise StateWriteError(why) from None
        raise StateWriteError(
            why + " (this last state was written into the room kept for it)"
        ) from None
    if not reserve.exists():
        keep_room(reserve)


def low_on_space(directory: Path) -> bool:
    try:
        st = os.statvfs(directory)
    except OSError:
        return True  # cannot tell: write now, and hear why if it fails
    return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES


def keep_room(reserve: Path) -> None:
    """Allocate the reserve (really allocated, not sparse); nothing if there is no room."""
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except OSError:
        os.close(fd)
        reserve.unlink(missing_ok=True)
        return
    os.close(fd)


class _Writer:
    """One thread writing the newest submitted text of a state file, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cond = threading.Condition()
        self.pending: str | None = None
        self.busy = False
        self.error: BaseException | None = None
        threading.Thread(target=self._loop, name="state-writer", daemon=True).start()

    def submit(self, text: str) -> None:
        with self.cond:
            self.pending = text  # a newer state replaces one not yet written
            self.cond.notify_all()

    def failed(self) -> bool:
        """Whether a finished write failed (without waiting for one in flight)."""
        with self.cond:
            return self.error is not None

    def flush(self) -> None:
        with self.cond:
            while self.pending is not None or self.busy:
                self.cond.wait()
            error, self.error = self.error, None
        if error is not None:
            raise error

    def _loop(self) -> None:
        while True:
            with self.cond:
                while self.pending is None:
                    self.cond.wait()
                text, self.pending, self.busy = self.pending, None, True
            try:
                write_state(self.path, text)
            except BaseException as exc:  # raised by the next flush()
                self.error = exc
            with self.cond:
                self.busy = False
                self.cond.notify_all()


def _compact(obj: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if v != defaults[k]}


@dataclass
class HostRecord:
    """How one host's run of a step ended."""

    status: str = PENDING
    exit_code: int | None = None
    duration: float | None = None
    log: str | None = None  # the step log's file name, in $STACK_ROOT/logs/steps
    message: str = ""
    # while it runs: its process group and what tells it from a later one reusing
    # the id, so that the next runner kills what a dead one left behind
    pgid: int | None = None
    pgid_token: str = ""


_DEFAULT_HOST = vars(HostRecord())


@dataclass
class StepRecord:
    """A step of the plan on the hosts of its group; `hosts` keeps each host's result."""

    status: str = PENDING
    exit_code: int | None = None
    started: float | None = None
    duration: float | None = None
    group: str = CONTROLLER
    message: str = ""
    runner: int | None = None  # the pid of the grenade process running it
    hosts: dict[str, HostRecord] = field(default_factory=dict)

    def encode(self) -> str:
        """JSON of the fields that differ from their defaults (the file stays small:
        it is rewritten after every step)."""
        raw = _compact(self, _DEFAULT_RECORD)
        if self.hosts:
            raw["hosts"] = {name: _compact(h, _DEFAULT_HOST) for name, h in self.hosts.items()}
        return json.dumps(raw, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> StepRecord:
        hosts = {name: HostRecord(**h) for name, h in raw.get("hosts", {}).items()}
        return cls(**{**raw, "hosts": hosts})


_DEFAULT_RECORD = {k: v for k, v in vars(StepRecord()).items() if k != "hosts"}
_DEFAULT_RECORD["hosts"] = {}


@dataclass
class RunState:
    """The persisted state of one run on one stack_root."""

    path: Path
    run_id: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    setup: SetupRecord | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    failed_step: str | None = None
    # what the run was started to do beyond the plain flow, for its resumes:
    # {"rehearse": true} (run --rehearse-rollback)
    intent: dict[str, Any] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set, repr=False)
    _encoded: dict[str, str] = field(default_factory=dict, repr=False)
    _setup_json: tuple[SetupRecord | None, str] = field(default=(None, "null"), repr=False)
    _writer: _Writer | None = field(default=None, repr=False)
    recovered: str = field(default="", repr=False)  # how a damaged file was recovered

    def __post_init__(self) -> None:
        self._dirty.update(self.steps)

    @classmethod
    def load(cls, path: Path) -> RunState:
        recovered = ""
        try:
            text = read_swapped(path)
            if text is None:
                return cls(path)
            raw = json.loads(text)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            # a torn or damaged file: the copy swap_write keeps of the one before
            prev = path.with_name(path.name + ".prev")
            try:
                raw = json.loads(prev.read_text())
            except (OSError, ValueError):
                raise StateError(
                    f"{path}: run state unreadable ({exc}); {command_hint('clean')} removes it"
                ) from None
            recovered = (
                f"{path}: run state unreadable ({exc}); continuing from the copy of the "
                f"one before, {prev.name} (it may be a step behind: that step runs again)"
            )
        if raw.get("version") == 1:
            raw = _from_v1(raw)
        if raw.get("version") != STATE_VERSION:
            raise StateError(
                f"{path}: run state version {raw.get('version')} "
                f"is not {STATE_VERSION}; {command_hint('clean')} removes it"
            )
        return cls(
            path=path,
            recovered=recovered,
            run_id=raw.get("run_id", ""),
            fingerprint=raw.get("fingerprint", {}),
            setup=SetupRecord.from_dict(raw["setup"]) if raw.get("setup") else None,
            steps={k: StepRecord.decode(v) for k, v in raw.get("steps", {}).items()},
            failed_step=raw.get("failed_step"),
            intent=raw.get("intent") or {},
        )

    def _render(self) -> str:
        """The file's text; only steps touched since the last render are re-encoded.

        A run of hundreds of steps saves after each one, so encoding the whole
        state every time would cost more than the steps themselves.
        """
        for step_id in self._dirty:
            self._encoded[step_id] = json.dumps(step_id) + ":" + self.steps[step_id].encode()
        self._dirty.clear()
        if self._setup_json[0] is not self.setup:  # frozen: the same object, the same text
            text = json.dumps(self.setup.to_dict() if self.setup else None, separators=(",", ":"))
            self._setup_json = (self.setup, text)
        head = json.dumps(
            {
                "version": STATE_VERSION,
                "run_id": self.run_id,
                "fingerprint": self.fingerprint,
                "failed_step": self.failed_step,
                "intent": self.intent,
            },
            separators=(",", ":"),
        )
        # _encoded holds the steps in the order they were first recorded, as steps does
        return (
            head[:-1]
            + ',"setup":'
            + self._setup_json[1]
            + ',"steps":{'
            + ",".join(self._encoded.values())
            + "}}"
        )

    def save(self) -> None:
        """Write the state now (after any background write still going on).

        Raises StateWriteError when it cannot be written, or when a background
        write failed before (after writing this newer text, if it can)."""
        text = self._render()
        try:
            self.flush()
        except StateWriteError as exc:
            # the newest text still goes to disk (into the reserve's room, if that is
            # what is left), but a disk that refused a write stops the run
            write_state(self.path, text)
            raise exc from None
        write_state(self.path, text)

    def save_in_background(self) -> None:
        """`save()` without waiting: a writer thread writes the newest state.

        The text is made here, so later changes do not leak into it. If the disk
        is still busy with the previous write when the next step ends, the two are
        folded into one write of the newer text: the file never lags more than the
        write in flight, and the hooks never wait for it. `flush()` (and every
        `save()`) waits until the newest text is on disk.
        """
        if self._writer is None:
            self._writer = _Writer(self.path)
        self._writer.submit(self._render())

    def flush(self) -> None:
        """Wait until everything submitted is written; raise what a write failed with
        (StateWriteError, naming the file and the reason)."""
        if self._writer is not None:
            self._writer.flush()

    def checkpoint(self) -> None:
        """Before a hook: raise what a background write failed with; and on a nearly
        full disk, write now, so that a state that cannot be written stops the run
        before the hook runs unrecorded (StateWriteError either way)."""
        failed = self._writer is not None and self._writer.failed()
        if failed or low_on_space(self.path.parent):
            self.save()

    @property
    def is_setup(self) -> bool:
        return self.setup is not None

    def reset(self) -> None:
        """Start a new run: forget steps and setup, keep nothing but the path."""
        self.run_id = time.strftime("%Y%m%d-%H%M%S")
        self.fingerprint = {}
        self.setup = None
        self.steps = {}
        self.failed_step = None
        self.intent = {}
        self._dirty.clear()
        self._encoded.clear()

    def forget(self, step_ids: Iterable[str]) -> None:
        """Drop these steps' records: they are to run again (after a rollback)."""
        for step_id in list(step_ids):
            self.steps.pop(step_id, None)
            self._encoded.pop(step_id, None)
            self._dirty.discard(step_id)
            if self.failed_step == step_id:
                self.failed_step = None

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


def _from_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A state written before steps ran on host groups: one host ("local") per step,
    the setup as a loose dict. A run set up by an older grenade still resumes."""
    steps = {}
    for step_id, rec in raw.get("steps", {}).items():
        host = rec.pop("host", "local")
        per_host = {k: rec[k] for k in ("status", "exit_code", "duration", "message") if k in rec}
        if "log" in rec:
            per_host["log"] = rec.pop("log")
        steps[step_id] = {**rec, "hosts": {host: per_host}}
    setup = raw.get("setup") or None
    if setup:
        plan = setup.get("plan_inputs", {})
        setup = {
            "base": setup["trees"]["base"],
            "target": setup["trees"]["target"],
            "plugins": [{"name": name, **p} for name, p in setup.get("plugins", {}).items()],
            "enabled_services": setup.get("enabled_services", ""),
            "settings": setup.get("settings", {}),
            **{k: plan.get(k) for k in ("stack", "stack_cwd", "stack_user", "smoke")},
            "stack_env": plan.get("stack_env", []),
        }
    return {**raw, "version": STATE_VERSION, "steps": steps, "setup": setup}


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable list of what changed between two fingerprints."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes
