"""The reports' observer: keeps the steps' entries as the runner's events come in,
and has a writer thread rewrite report/ with the newest snapshot.

The hooks never wait for a report: an event only replaces one step's entry and
wakes the writer; the writer takes a snapshot of the newest entries, writes it, and
rests (at least MIN_REST, and in proportion to how long the write took), so a run
of hundreds of short steps spends little on reports: what changed meanwhile is in
the next write. `close()` writes the final reports and waits for them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ..events import StepFinished, StepStarted
from ..files import atomic_write
from ..plan import KINDS, RESOURCE_PHASES, REVERSED, Step
from ..secrets import hook_owner, private_dir, private_file
from ..session import Session
from ..state import StepRecord
from .html import report_html
from .junit import junit_xml
from .model import (
    BY_CONFIG,
    Context,
    ResultsReader,
    Snapshot,
    build_report,
    installed_versions,
    read_versions,
    skipped_entry,
    step_entry,
)

REPORT_DIR = "report"
# The writer rests this many times as long as its last write took: at most about a
# thirtieth of the run's time goes to reports, however many steps it has.
REST_FACTOR = 30.0
MIN_REST = 2.0  # seconds: a killed run's reports lag its state by about this much
# What changes the installed versions (the fallback, read from the deployer).
VERSION_KINDS = frozenset({"stack-base", "prep-target", "upgrade"})


def config_skipped(session: Session) -> list[Step]:
    """The resource steps VERIFY_RESOURCES (config or settings) turned off."""
    setup = session.setup
    if session.cfg.verify_resources and setup.settings.verify_resources:
        return []
    out = []
    for kind, args in RESOURCE_PHASES.items():
        if kind == "verify-rollback" and not session.wants_rollback():
            continue  # no rollback in this run: nothing was turned off
        projects = setup.settings.projects
        for p in reversed(projects) if kind in REVERSED else projects:
            path = p.hook("resources.sh")
            if path is not None:
                out.append(Step(kind, p.name, ("bash", str(path), *args)))
    return out


class Reports:
    """An observer of the step runner writing `$STACK_ROOT/logs/report/`."""

    def __init__(self, session: Session) -> None:
        self.session = session
        paths = session.paths
        self.dir = paths.logs_dir / REPORT_DIR
        self.steps_dir = paths.logs_dir / "steps"
        inv = session.inventory
        hosts: dict[str, list[str]] = {}
        for group in inv.groups.values():
            for name in group.names:
                hosts.setdefault(name, []).append(group.name)
        self.ctx = Context(
            run_id=session.state.run_id,
            stack_root=paths.stack_root,
            logs_dir=paths.logs_dir,
            save_dir=paths.save_dir,
            setup=session.setup,
            hosts=hosts,
            controller=next(iter(hosts), ""),
            base_name=paths.base_release_dir.name,
            target_name=paths.target_release_dir.name,
        )
        self.results = ResultsReader(paths.save_dir)
        self.entries: dict[str, dict[str, Any]] = {}
        state = session.state
        for index, step in enumerate(session.plan(), 1):
            self.entries[step.id] = step_entry(
                step, index, state.steps.get(step.id), self.steps_dir
            )
        for step in config_skipped(session):
            self.entries.setdefault(step.id, skipped_entry(step, BY_CONFIG))
        self._order = {sid: n for n, sid in enumerate(sorted(self.entries, key=self._kind_pos))}
        self._installed: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._failed = False
        self.owner = hook_owner(session.cfg.stack_user)
        self.writer = SnapshotWriter(self._write)

    def _kind_pos(self, step_id: str) -> int:
        return KINDS.index(self.entries[step_id]["kind"])

    # -- events (the runner's thread) --------------------------------------------------

    def step_started(self, event: StepStarted) -> None:
        self._update(event.step, event.index, None)

    def step_finished(self, event: StepFinished) -> None:
        if event.step.kind in VERSION_KINDS:
            self._installed = None
        self._update(event.step, event.index, event.record)

    def _update(self, step: Step, index: int, rec: StepRecord | None) -> None:
        try:
            rec = rec or self.session.state.steps.get(step.id)
            entry = step_entry(step, index, rec, self.steps_dir)
            with self._lock:
                self.entries[step.id] = entry
            self.writer.submit()
        except Exception as exc:  # an observer must not stop the run
            self._say_once(exc)

    def snapshot(self, final: bool) -> Snapshot:
        with self._lock:
            entries = list(self.entries.values())
        entries.sort(key=lambda e: self._order.get(e["id"], len(self._order)))
        return Snapshot(tuple(entries), final)

    def close(self) -> None:
        """The final reports, written before this returns."""
        try:
            self._installed = None
            self.writer.submit(final=True)
            self.writer.flush()
        except Exception as exc:
            self._say_once(exc)
        self.writer.stop()

    # -- the writer's thread -----------------------------------------------------------

    def report(self, snap: Snapshot) -> dict[str, Any]:
        versions = read_versions(self.ctx.save_dir)
        if versions is None:
            if self._installed is None:
                got = self.session.deployer.versions(self.session.deploy_context())
                self._installed = installed_versions(got, self.ctx.controller)
            versions = self._installed
        return build_report(self.ctx, snap, self.results.read(), versions)

    def _write(self, final: bool) -> None:
        try:
            report = self.report(self.snapshot(final))
            mask = self.session.masker.mask
            owner = self.owner
            private_dir(self.dir, owner)
            texts = {
                "report.json": json.dumps(report),
                "junit.xml": junit_xml(report),
                "report.html": report_html(report),
            }
            for name, text in texts.items():
                path = self.dir / name
                atomic_write(path, mask(text))
                private_file(path, owner)
        except Exception as exc:
            self._say_once(exc)

    def _say_once(self, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            self.session.log.info(f"grenade: cannot write the reports in {self.dir}: {exc}")


class SnapshotWriter:
    """One thread calling `write(final)` when something changed since its last call."""

    def __init__(self, write: Callable[[bool], None]) -> None:
        self.write = write
        self.cond = threading.Condition()
        self.pending = False
        self.final = False
        self.busy = False
        self.stopped = False
        self.rest_until = 0.0
        threading.Thread(target=self._loop, name="report-writer", daemon=True).start()

    def submit(self, final: bool = False) -> None:
        with self.cond:
            self.pending = True
            if final:
                self.final, self.rest_until = True, 0.0  # the last one is not held back
            self.cond.notify_all()

    def flush(self) -> None:
        with self.cond:
            while self.pending or self.busy:
                self.cond.wait()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopped and (not self.pending or time.monotonic() < self.rest_until):
                    wait = self.rest_until - time.monotonic() if self.pending else None
                    self.cond.wait(wait)
                if self.stopped:
                    return
                final, self.pending, self.busy = self.final, False, True
            began = time.monotonic()
            self.write(final)
            with self.cond:
                self.busy = False
                took = time.monotonic() - began
                # the final snapshot, asked for while this one was written, is not
                # held back by this one's rest: close() waits for it
                rest = 0.0 if self.pending and self.final else max(MIN_REST, took * REST_FACTOR)
                self.rest_until = time.monotonic() + rest
                self.cond.notify_all()
