"""What a dead runner left: hooks still running, steps still marked running.

A runner killed without a chance to clean up (SIGKILL, the OOM killer, a machine
that lost its terminal before the signal guard) leaves its step "running" in the
state. The watchdog (grenade.watchdog) kills a local hook within the grace; this
is the second line, and the one for remote hosts: the next grenade process that
takes the stack_root's lock — so no other runner is alive — kills each process
group still recorded, says so, and marks the step failed so that `--resume`
starts at it and nothing that had finished runs again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .logs import mask_file
from .state import FAILED, PENDING, RUNNING

if TYPE_CHECKING:
    from .session import Session


def reap(session: Session) -> list[str]:
    """Kill what dead runners left and mark their steps failed; what was done, said."""
    state = session.state
    said = []
    for step_id, rec in state.steps.items():
        if rec.status != RUNNING:
            continue
        runner = f"pid {rec.runner}" if rec.runner else "an earlier grenade process"
        for name, host_rec in rec.hosts.items():
            if host_rec.status != RUNNING:
                continue
            what = _kill(session, name, host_rec.pgid, host_rec.pgid_token)
            if not state.recovered or what.startswith("killed"):
                said.append(
                    f"step {step_id} was still running on host {name} when its runner "
                    f"({runner}) died: {what}"
                )
            if host_rec.log:
                # its runner died before it could mask the secrets the hook printed
                session.masker.refresh()
                mask_file(session.log.steps_dir / host_rec.log, session.masker)
            host_rec.status, host_rec.pgid, host_rec.pgid_token = FAILED, None, ""
            host_rec.message = "its runner died while it ran"
        if state.recovered:
            # a copy one write behind (grenade.state): "running" there may have
            # finished since; it runs again, as the recovery said
            rec.status, rec.message, rec.hosts = PENDING, "", {}
        else:
            rec.status, rec.message = FAILED, f"its runner ({runner}) died while it ran"
            state.failed_step = step_id
        state.changed(step_id)
    for line in said:
        session.say(line)
    if said:
        state.save()
    return said


def _kill(session: Session, host_name: str, pgid: int | None, token: str) -> str:
    if pgid is None:
        return "no process group was recorded for it"
    host = next(
        (h for g in session.inventory.groups.values() for h in g.hosts if h.name == host_name),
        None,
    )
    if host is None:
        return f"its process group {pgid} may still run there (no such host in the inventory)"
    try:
        killed = host.kill_leftover(pgid, token)
    except Exception as exc:  # an unreachable host must not stop the run's recovery
        return f"its process group {pgid} may still run there ({type(exc).__name__}: {exc})"
    if killed:
        return f"killed its leftover process group {pgid}"
    return f"its process group {pgid} is gone"
