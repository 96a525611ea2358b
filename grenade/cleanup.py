"""Cleanup after a failed run: `grenade force-destroy`.

The original's manual phase: every project's `resources.sh force_destroy` (the
in-tree dispatchers turn errexit off there and destroy what they can), then its
`resources.sh destroy`, both in reverse project order as destroy is. Unlike a
run, a failing step does not stop the cleanup: each step is tried, failures
are collected and reported together at the end, and the task then exits 1.

The steps are the plan's destroy steps and their force_destroy twins, run by
the step runner like any other (logs, run state, events, signals); the run's
own failed step is kept, so `status` and `--resume` still name what failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import StateError, StepFailed, command_hint
from .events import Observer
from .logs import tail
from .plan import Step
from .runner import StepRunner
from .session import Session
from .state import DONE, FAILED
from .summary import Progress

FORCE_DESTROY = "force-destroy"  # the step kind (and task name) of resources.sh force_destroy
REPORT_TAIL = 5


@dataclasses.dataclass(frozen=True)
class CleanupFailure:
    step: Step
    host: str
    why: str
    log: Path

    def describe(self) -> str:
        head = (
            f"FAILED step {self.step.id}: project {self.step.project}, phase {self.step.kind}, "
            f"host {self.host}, {self.why}\n  log:    {self.log}"
        )
        return "\n".join([head, *(f"    | {line}" for line in tail(self.log, REPORT_TAIL))])


def cleanup_steps(plan: Sequence[Step]) -> list[Step]:
    """force_destroy for every project that has a resources.sh, then destroy; both
    in the plan's (reverse) destroy order, on the same hosts."""
    destroy = [s for s in plan if s.kind == "destroy"]
    force = [
        dataclasses.replace(s, kind=FORCE_DESTROY, argv=(*s.argv[:-1], "force_destroy"))
        for s in destroy
    ]
    return force + destroy


def force_destroy(session: Session, observers: Iterable[Observer] | None = None) -> None:
    """Run every cleanup step, whatever fails; raise StepFailed listing the failures.

    The progress lines are its observer by default; the run's reports are not: the
    cleanup steps are not steps of the run's plan.
    """
    state = session.state
    if not state.is_setup:
        raise StateError(f"{session.paths.stack_root}: no run set up here; nothing to destroy")
    steps = cleanup_steps(session.plan())
    if not steps:
        session.say(
            "force-destroy: no resources.sh to run (no project has one, or the resource "
            "phases are turned off by configuration)"
        )
        return
    run_failed = state.failed_step
    runner = StepRunner(session, [Progress(session)] if observers is None else observers)
    failures: list[CleanupFailure] = []
    try:
        for step in steps:
            try:
                runner.run(steps, {step.id}, set())
            except StepFailed:
                found = failures_of(session, step)
                failures += found
                for failure in found:
                    session.say(f"{'':8}FAILED on {failure.host}: {failure.why}; going on")
    finally:
        # the run's own failure stays the one `--resume` names, unless cleanup fixed it
        state.failed_step = run_failed if run_failed and state.status(run_failed) != DONE else None
        state.save()
    if failures:
        report = "\n".join(f.describe() for f in failures)
        raise StepFailed(
            f"force-destroy: {len(failures)} of {len(steps)} step(s) failed:\n{report}\n"
            f"(the other steps ran; {command_hint(FORCE_DESTROY)} tries every step again)",
            exit_code=1,
        )
    session.say(f"force-destroy: all {len(steps)} step(s) done")


def failures_of(session: Session, step: Step) -> list[CleanupFailure]:
    """Each failed host of `step`, from what the runner recorded."""
    rec = session.state.steps[step.id]
    return [
        CleanupFailure(step, host, h.message, session.log.steps_dir / (h.log or ""))
        for host, h in rec.hosts.items()
        if h.status == FAILED
    ]


__all__ = ["FORCE_DESTROY", "CleanupFailure", "cleanup_steps", "failures_of", "force_destroy"]
