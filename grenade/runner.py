"""The step runner: runs a plan's steps on the hosts of their groups, in order.

For each step it records the result of every host in the run state, publishes
step-started and step-finished events to its observers, and stops at the first
failure with a message naming project, phase, host, why, the log and its tail.
SIGINT and SIGTERM set the run's cancel token: the hosts kill the running
step's process groups and the run ends with 128 + the signal.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .errors import ConfigError, Interrupted, StepFailed
from .events import Observer, StepFinished, StepStarted
from .hosts import Cancel, HostGroup, Result
from .logs import LogSink, step_log_name, tail
from .plan import Step
from .session import Session
from .state import DONE, FAILED, RUNNING, HostRecord, StepRecord

TAIL_LINES = 20


class SignalGuard:
    """While steps run, SIGINT and SIGTERM only set the cancel token.

    Raising from the handler could land between a fork and the bookkeeping of its
    process group; the hosts see the token, kill their step, and the step loop
    raises between steps.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cancel: Cancel) -> None:
        self.cancel = cancel
        self.old: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        for sig in self.SIGNALS:
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.cancel.set(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def run_logged(
    group: HostGroup,
    logs: Mapping[str, Path],
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str | None,
    timeout: float,
    cancel: Cancel,
    user: str | None = None,
    on_line: Callable[[str], Callable[[str], None] | None] = lambda host: None,
) -> dict[str, Result]:
    """`group.run` with each host's output appended to its log in `logs`."""
    with ExitStack() as stack:
        sinks = {h: stack.enter_context(LogSink(path, on_line(h))) for h, path in logs.items()}
        return group.run(
            argv, env=env, cwd=cwd, timeout=timeout, sinks=sinks, cancel=cancel, user=user
        )


class StepRunner:
    def __init__(self, session: Session, observers: Iterable[Observer] = ()) -> None:
        self.session = session
        self.observers = list(observers)

    def run(self, plan: Sequence[Step], selected: set[str], skip: set[str]) -> None:
        """Run the `selected` steps of `plan` that are not in `skip`, in plan order."""
        state = self.session.state
        self.check_groups([s for s in plan if s.id in selected])
        try:
            with Cancel() as cancel, SignalGuard(cancel):
                for index, step in enumerate(plan, 1):
                    if cancel.signum is not None:
                        raise Interrupted(cancel.signum)
                    if step.id in selected and step.id not in skip:
                        self.run_step(index, len(plan), step, cancel)
                if cancel.signum is not None:
                    raise Interrupted(cancel.signum)
            if state.status(state.failed_step or "") == DONE:
                state.failed_step = None
        finally:
            state.save()  # the last step's record, however the loop ended

    def check_groups(self, steps: Sequence[Step]) -> None:
        """Every step's group is in the inventory, checked before any step runs."""
        groups = self.session.inventory.groups
        for step in steps:
            if step.group not in groups:
                raise ConfigError(
                    f"step {step.id} (project {step.project}, phase {step.kind}) runs on "
                    f"host group {step.group!r}, which the inventory does not have; groups: "
                    + ", ".join(groups)
                )

    def run_step(self, index: int, total: int, step: Step, cancel: Cancel) -> None:
        session, state = self.session, self.session.state
        group = session.inventory.group(step.group)
        logs = {h: session.log.steps_dir / step_log_name(index, step.id, h) for h in group.names}
        rec = state.record(step.id)
        rec.status, rec.started, rec.group = RUNNING, round(time.time(), 2), step.group
        rec.exit_code, rec.duration, rec.message = None, None, ""
        rec.hosts = {h: HostRecord(status=RUNNING, log=path.name) for h, path in logs.items()}
        self._publish("step_started", StepStarted(step, index, total, tuple(group.names), logs))
        # The previous step's record (and this one's "running") is written by a
        # thread while this step's hook runs: the state file is rewritten after
        # every step, without the write on the run's critical path.
        state.save_in_background()
        results = run_logged(
            group,
            logs,
            step.argv,
            env=session.step_env(step),
            cwd=session.step_cwd(step),
            timeout=session.timeout,
            cancel=cancel,
            user=step.user,
            on_line=lambda host: self._line_sink(host, len(logs)),
        )
        state.changed(step.id)
        self._record(rec, results)
        event = StepFinished(step, index, total, results, rec, logs)
        if event.ok:
            self._publish("step_finished", event)
            return
        state.failed_step = step.id
        state.save()
        self._publish("step_finished", event)
        message = self.failure_message(step, event.failed, logs)
        if cancel.signum is not None:
            session.say(message)
            raise Interrupted(cancel.signum)
        # (a hook that exited 0 while a signal arrived is done; the loop stops after it)
        first = next(iter(event.failed.values()))
        raise StepFailed(message, exit_code=first.exited if first.exited > 0 else 1)

    def _line_sink(self, host: str, hosts: int) -> Callable[[str], None]:
        """Hook output into the run log; tagged with the host when several run at once."""
        if hosts == 1:
            return self.session.log.line
        return lambda text: self.session.log.line(f"[{host}] {text}")

    def _record(self, rec: StepRecord, results: Mapping[str, Result]) -> None:
        for host, result in results.items():
            h = rec.hosts[host]
            h.status = DONE if result.ok else FAILED
            h.exit_code, h.duration = result.exited, round(result.duration, 3)
            h.message = "" if result.ok else result.why()
        failed = [(host, r) for host, r in results.items() if not r.ok]
        rec.duration = round(max(r.duration for r in results.values()), 3)
        rec.status = FAILED if failed else DONE
        rec.exit_code = failed[0][1].exited if failed else 0
        if len(results) == 1:
            rec.message = failed[0][1].why() if failed else ""
        else:
            rec.message = "; ".join(f"{host}: {r.why()}" for host, r in failed)

    def failure_message(
        self, step: Step, failed: Mapping[str, Result], logs: Mapping[str, Path]
    ) -> str:
        """One block per failed host: what failed where, why, the log and its last lines."""
        group = self.session.inventory.group(step.group)
        blocks = []
        for host, result in failed.items():
            lines = tail(logs[host], TAIL_LINES)
            where = (
                f"  group:  {group.name} ({len(failed)} of {len(group.hosts)} hosts "
                f"failed: {', '.join(failed)})"
                if len(group.hosts) > 1
                else None
            )
            blocks += [
                f"FAILED step {step.id}: project {step.project}, phase {step.kind}, "
                f"host {host}, {result.why()}",
                *([where] if where else []),
                f"  script: {step.script}",
                f"  log:    {logs[host]}",
                f"  last {len(lines)} lines of the log:",
                *(f"    | {ln}" for ln in lines),
            ]
        return "\n".join(blocks)

    def _publish(self, method: str, event: StepStarted | StepFinished) -> None:
        for observer in self.observers:
            getattr(observer, method)(event)
