"""The phase flow: what each task does, as one visible sequence of small functions.

`setup` folds the setup workflow (grenade.setup.SETUP) into a frozen record kept
in the run state; `run_kinds` runs the plan's steps of some kinds through the
step runner, skipping those already done; `run` is `invoke run` from end to end.
Every function takes a `Session` (grenade.session): one configuration applied
to one stack_root, its lock held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import resume
from .clean import stop_cloud
from .errors import ConfigError, Interrupted, StateError
from .events import Observer
from .interrupts import SetupInterrupts
from .plan import COARSE, KINDS, LEG_KINDS, RESOURCE_PHASES, format_plan
from .reports import Reports
from .rollback import AGAIN
from .runner import StepRunner
from .session import Session
from .setup import ensure_reachable, init_save_dir, run_setup
from .summary import Progress, describe_setup, summary_text


def setup(session: Session, force: bool = False) -> None:
    """Prepare trees, GRENADE_DIR, plugins and settings; record them and start a run."""
    state = session.state
    if state.is_setup and not force:
        resume.check_fingerprint(session)
        session.say("setup: already done for this run (use --force to start a new run)")
        return
    state.reset()
    try:
        with SetupInterrupts():
            record = run_setup(session)
    except Interrupted as exc:
        # nothing is recorded: the state on disk is what it was before setup began
        session.say(f"setup interrupted by signal {exc.exit_code - 128}; nothing was recorded")
        raise
    state.setup = record
    state.fingerprint = resume.fingerprint(session, record)
    init_save_dir(session)
    state.save()
    session.say(describe_setup(session))


def ensure_setup(session: Session) -> None:
    """Set up if this stack_root has no run yet; otherwise check it is the same run."""
    if not session.state.is_setup:
        session.say("setup: not done yet for this stack_root, running it first")
        setup(session)
    else:
        resume.check_fingerprint(session)


def observers(session: Session) -> list[Observer]:
    """Who hears about every step: the progress lines and the summary log, the reports."""
    return [Progress(session), Reports(session)]


def run_kinds(
    session: Session,
    kinds: Iterable[str],
    force: bool = False,
    resume_failed: bool = False,
    check_order: bool = True,
) -> None:
    """Run every planned step of `kinds`, in plan order, skipping done ones."""
    kinds = list(kinds)
    ensure_setup(session)
    resume.check_not_failed(session, resume_failed, force)
    plan = session.plan()
    if check_order:
        resume.check_order(session, plan, kinds)
    say_skipped_resources(session, kinds)
    selected = {s.id for s in plan if s.kind in kinds}
    skip = resume.steps_to_skip(session, plan, selected, force)
    listeners = observers(session)
    try:
        StepRunner(session, listeners).run(plan, selected, skip)
    finally:
        # what an observer still holds (the reports' last write) is out before the
        # task ends, however the steps ended
        for listener in listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                close()


def rollback(session: Session, force: bool = False, resume_failed: bool = False) -> None:
    """`invoke rollback`: the rollback's steps, whatever state the upgrade was left in
    (a failed one too: that is what a rollback is for), then what it lost."""
    ensure_setup(session)
    if not session.can_roll_back(session.setup):
        raise StateError(
            f"rollback: the {session.deployer.name} deployer cannot stop one release's "
            "services and start another's yet (the lite deployer can); nothing was touched"
        )
    if session.state.status("snapshot/grenade") != "done":
        raise StateError(
            "rollback: no snapshot was taken in this run (the snapshot step runs after "
            "shutdown, in the upgrade phase); nothing was touched"
        )
    failed = session.state.failed_step
    try:
        run_kinds(
            session,
            coarse_kinds("rollback"),
            force=force,
            # an upgrade that failed is why one rolls back: not a reason to refuse
            resume_failed=resume_failed or bool(failed and not failed.startswith("rollback/")),
            check_order=False,
        )
        # the cloud is the base's again: its upgrade is to be done again, not resumed
        state = session.state
        state.forget(
            sid for sid in list(state.steps) if sid.split("/")[0] in LEG_KINDS and "+" not in sid
        )
        state.save()
    finally:
        session.say(summary_text(session))


def say_skipped_resources(session: Session, kinds: Sequence[str]) -> None:
    """The original's words when VERIFY_RESOURCES (config or settings) turns them off."""
    if session.cfg.verify_resources and session.setup.settings.verify_resources:
        return
    for kind in kinds:
        if kind in RESOURCE_PHASES:
            session.say(f"Skipping resource phase {RESOURCE_PHASES[kind][0]} by configuration")


def run(
    session: Session,
    start: str | None = None,
    end: str | None = None,
    resume_failed: bool = False,
    force: bool = False,
) -> None:
    """`invoke run`: setup (or check it), the steps from `start` to `end`, the summary."""
    if force:
        ensure_reachable(session)  # before the previous cloud is stopped
        stop_previous_cloud(session)
        setup(session, force=True)
    else:
        ensure_setup(session)
    if session.rehearse and not session.state.intent.get("rehearse"):
        session.state.intent["rehearse"] = True  # its resumes rehearse too
        session.state.save()
    try:
        run_kinds(
            session,
            kinds_between(start, end),
            resume_failed=resume_failed,
            check_order=start is None,
        )
    finally:
        session.say(summary_text(session))


def stop_previous_cloud(session: Session) -> None:
    """A new run on a stack_root where an earlier one ran: what that run's deployer
    started may still be up (grenade leaves the cloud up, as the original does), and
    would hold the ports the new cloud needs. Stopped first, as `clean` does."""
    previous = session.state.steps or any(
        p.exists() for p in (session.paths.state_file, session.paths.base_devstack)
    )
    if previous and session.deployer.unstack(session.deploy_context()):
        session.say("run --force: stopping the cloud of the previous run first")
        stop_cloud(session)


def print_plan(session: Session) -> None:
    ensure_setup(session)
    session.console.write(format_plan(session.plan(), session.inventory) + "\n")


def leg_groups(session: Session, text: str, again_ok: bool = False) -> tuple[str, ...]:
    """`--groups a,b`: groups of the configured hosts, each once, none upgraded yet
    unless `again_ok` (--resume, --force of that leg); the configured upgrade_groups
    themselves: the first leg."""
    groups = tuple(dict.fromkeys(g.strip() for g in text.split(",") if g.strip()))
    if not session.cfg.hosts:
        raise ConfigError("--groups needs hosts and groups in the configuration (grenade.hosts)")
    known = [g for g in session.inventory.groups]
    unknown = [g for g in groups if g not in known]
    if unknown or not groups:
        raise ConfigError(
            f"--groups {text!r}: no group {', '.join(unknown) or '(empty)'} "
            f"(groups: {', '.join(known)})"
        )
    if set(groups) == set(session.cfg.upgrade_groups):
        return tuple(session.cfg.upgrade_groups)
    if AGAIN in groups:
        raise ConfigError(f"--groups: {AGAIN!r} names the rollback rehearsal's leg")
    done = {*session.cfg.upgrade_groups, *([] if again_ok else session.done_legs())}
    twice = [g for g in groups if g in done]
    if twice:
        raise ConfigError(
            f"--groups {text!r}: {', '.join(twice)} upgraded already (upgrade_groups: "
            f"{', '.join(session.cfg.upgrade_groups)}; later legs: "
            f"{', '.join(session.done_legs()) or 'none'})"
        )
    return groups


def resumed_leg(session: Session) -> tuple[str, ...]:
    """The later leg a failed `upgrade --groups` stopped in, for its `--resume`."""
    failed = session.state.failed_step or ""
    _, plus, leg = failed.partition("+")
    return tuple(leg.split("+")) if plus and leg != AGAIN else ()


def coarse_kinds(name: str) -> tuple[str, ...]:
    return COARSE[name]


def kinds_between(start: str | None, end: str | None) -> Sequence[str]:
    for name in (start, end):
        if name is not None and name not in KINDS:
            raise ConfigError(f"unknown step kind {name!r}; one of: {', '.join(KINDS)}")
    lo = KINDS.index(start) if start else 0
    hi = KINDS.index(end) if end else len(KINDS) - 1
    return list(KINDS[lo : hi + 1])


__all__ = ["coarse_kinds", "kinds_between", "print_plan", "run", "run_kinds", "setup"]
