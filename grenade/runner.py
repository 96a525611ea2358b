"""The step runner: runs a plan's steps on the hosts of their groups, in order.

For each step it records the result of every host in the run state, publishes
step-started and step-finished events to its observers, and stops at the first
failure with a message naming project, phase, host, why, the log and its tail.
SIGINT, SIGTERM and SIGHUP set the run's cancel token: the hosts kill the running
step's process groups and the run ends with 128 + the signal. Each running
hook's process group is recorded as it starts, so a runner that dies without
cleaning up (SIGKILL) leaves enough for the next one to kill what it left.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .errors import ConfigError, Interrupted, StateWriteError, StepFailed, command_hint
from .events import Observer, StepFinished, StepStarted
from .hosts import Cancel, HostGroup, Result
from .logs import LogSink, RunLog, step_log_name, tail
from .plan import Step
from .resources import latest_attempts, read_results
from .session import Session
from .state import DONE, FAILED, RUNNING, HostRecord, StepRecord

TAIL_LINES = 20
TIMED_OUT_EXIT = 124  # a hook killed at the timeout (timeout(1)'s code)


class SignalGuard:
    """While steps run, SIGINT, SIGTERM and SIGHUP only set the cancel token.

    SIGHUP comes when the terminal or the SSH session the run was started from
    goes away: the run stops as for SIGTERM, recorded, its hooks killed.

    Raising from the handler could land between a fork and the bookkeeping of its
    process group; the hosts see the token, kill their step, and the step loop
    raises between steps.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, cancel: Cancel) -> None:
        self.cancel = cancel
        self.old: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        for sig in self.handled():
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    @classmethod
    def handled(cls) -> list[int]:
        """The signals to handle: not those we were started ignoring (`nohup`, a
        background job without job control), which must keep not stopping the run."""
        return [sig for sig in cls.SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]

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
    started: Callable[[str, int, str], None] | None = None,
    run_log: RunLog | None = None,
) -> dict[str, Result]:
    """`group.run` with each host's output appended to its log in `logs`.

    With the run's `run_log`, the logs are private and masked with its masker,
    which first learns the secrets of `env` (and of localrc files that changed).
    """
    if run_log is not None:
        run_log.masker.refresh()
        run_log.masker.add_env(env)
    open_sink = run_log.sink if run_log is not None else LogSink
    with ExitStack() as stack:
        sinks = {h: stack.enter_context(open_sink(path, on_line(h))) for h, path in logs.items()}
        return group.run(
            argv,
            env=env,
            cwd=cwd,
            timeout=timeout,
            sinks=sinks,
            cancel=cancel,
            user=user,
            started=started,
        )


class StepRunner:
    def __init__(self, session: Session, observers: Iterable[Observer] = ()) -> None:
        self.session = session
        self.observers = list(observers)
        self._lock = threading.Lock()  # hosts report their groups from their threads

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
                        # what the last write could not record stops the run here,
                        # before another hook runs unrecorded
                        state.checkpoint()
                        self.run_step(index, len(plan), step, cancel)
                if cancel.signum is not None:
                    raise Interrupted(cancel.signum)
            if state.status(state.failed_step or "") == DONE:
                state.failed_step = None
        except StateWriteError:
            raise  # the one line to report; trying again would only repeat it
        except BaseException:
            self._save_after_error()
            raise
        state.save()  # the last step's record

    def _save_after_error(self) -> None:
        """The state, as the run stops on an error that is about to be reported: if
        it cannot be written, say so in one line, without hiding that error."""
        try:
            self.session.state.save()
        except StateWriteError as exc:
            self.session.say(f"grenade: {exc}")

    def check_groups(self, steps: Sequence[Step]) -> None:
        """Every step's group is in the inventory, checked before any step runs."""
        inventory = self.session.inventory
        groups = inventory.groups
        for step in steps:
            if step.hosts:
                inventory.hosts_of(step.group, step.hosts)  # names every unknown host
                continue
            if step.group not in groups:
                raise ConfigError(
                    f"step {step.id} (project {step.project}, phase {step.kind}) runs on "
                    f"host group {step.group!r}, which the inventory does not have; groups: "
                    + ", ".join(groups)
                )

    def run_step(self, index: int, total: int, step: Step, cancel: Cancel) -> None:
        session, state = self.session, self.session.state
        group = session.inventory.hosts_of(step.group, step.hosts)
        if session.fleet is not None:
            group = session.fleet.wrap(group)  # remote hosts run from their node's copies
        logs = {h: session.log.steps_dir / step_log_name(index, step.id, h) for h in group.names}
        rec = state.record(step.id)
        rec.status, rec.started, rec.group = RUNNING, round(time.time(), 2), step.group
        rec.exit_code, rec.duration, rec.message = None, None, ""
        rec.runner = os.getpid()
        rec.hosts = {h: HostRecord(status=RUNNING, log=path.name) for h, path in logs.items()}
        self._publish("step_started", StepStarted(step, index, total, tuple(group.names), logs))

        def started(host: str, pgid: int, token: str) -> None:
            # This step's "running", with the hook's process group, is written by a
            # thread while the hook runs: the state file is rewritten for every
            # step without the write on the run's critical path.
            with self._lock:
                rec.hosts[host].pgid, rec.hosts[host].pgid_token = pgid, token
                state.changed(step.id)
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
            started=started,
            run_log=session.log,
        )
        state.changed(step.id)
        self._record(rec, results)
        event = StepFinished(step, index, total, results, rec, logs)
        if event.ok:
            state.save_in_background()  # "done" on disk at once; nothing waits for it
            self._publish("step_finished", event)
            return
        state.failed_step = step.id
        self._save_after_error()
        self._publish("step_finished", event)
        message = self.failure_message(step, event.failed, logs) + "\n" + self.resume_hint()
        if cancel.signum is not None:
            session.say(message)
            raise Interrupted(cancel.signum)
        # (a hook that exited 0 while a signal arrived is done; the loop stops after it)
        first = next(iter(event.failed.values()))
        code = first.exited if first.exited > 0 else 1
        raise StepFailed(message, exit_code=TIMED_OUT_EXIT if first.timed_out else code)

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
            h.pgid, h.pgid_token = None, ""  # nothing of it is left to kill
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
        """One block per failed host: what failed where, why, the resource checks the
        step reported failed (`FAIL project resource: detail`), the log and its last lines."""
        group = self.session.inventory.hosts_of(step.group, step.hosts)
        checks = list(
            dict.fromkeys(
                f"  FAIL {r.get('project')} {r.get('resource')}: {r.get('detail', '')}"
                for r in latest_attempts(read_results(self.session.paths.save_dir))
                if r.get("result") == "fail"
                and r.get("project") == step.project
                and r.get("phase") == step.kind
                and r.get("side", "") == step.resource_side
            )
        )
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
                *(line.replace("\n", "\n      ") for line in checks),
                *([where] if where else []),
                f"  script: {step.script}",
                f"  log:    {logs[host]}",
                f"  last {len(lines)} lines of the log:",
                *(f"    | {ln}" for ln in lines),
            ]
        return "\n".join(blocks)

    def resume_hint(self) -> str:
        task = self.session.task
        hint = f"to continue at this step once it is fixed: {command_hint(task, '--resume')}"
        if task != "run":
            hint += f" (or {command_hint('run', '--resume')} for the rest of the run)"
        return hint

    def _publish(self, method: str, event: StepStarted | StepFinished) -> None:
        for observer in self.observers:
            getattr(observer, method)(event)
