"""What a person reads: the setup description, progress lines, the run's summary.

`Progress` is an observer of the step runner: one console line when a step
starts, one when it ends, and a line per host in `grenade.summary.log`.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from .errors import command_hint
from .events import StepFinished, StepStarted
from .plan import KINDS
from .plugins import HOOKS
from .reports.matrix import matrix_table, survival_matrix
from .reports.model import read_versions
from .resources import read_results
from .rollback import leg_lines, summary_lines
from .session import Session
from .state import HostRecord, RunState


class Progress:
    """`[03/20] create alpha: bash .../resources.sh create`, then `ok in 0.12s`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def step_started(self, event: StepStarted) -> None:
        step = event.step
        where = f" on {step.group} ({', '.join(event.hosts)})" if len(event.hosts) > 1 else ""
        self.session.say(
            f"[{event.index:02d}/{event.total:02d}] {step.kind} {step.project}"
            f"{where}: {shlex.join(step.argv)}"
        )

    def step_finished(self, event: StepFinished) -> None:
        log = self.session.log
        for host, result in event.results.items():
            log.step_done(event.step.id, "ok" if result.ok else "FAILED", result.duration, host)
        if event.ok:
            self.session.say(f"{'':8}ok in {event.record.duration or 0:.2f}s")


def describe_setup(session: Session) -> str:
    setup = session.setup
    out = ["setup:"]
    for side in ("base", "target"):
        t = setup.tree(side)
        out.append(
            f"  {side:6} tree {t.path}  {t.ref or t.branch}  sha {t.sha or '-'}  "
            f"release {t.release}"
        )
    for plugin in setup.plugins:
        out.append(f"  plugin {plugin.name}: {plugin.path} ({plugin.branch}) sha {plugin.sha}")
    out.append(f"  enabled services: {setup.enabled_services}")
    out.append(
        "  hosts: "
        + ", ".join(f"{g.name}: {' '.join(g.names)}" for g in session.inventory.groups.values())
    )
    # the per-release note is the plan's own: one wording, made in one place
    notes = {s.project: s.note for s in session.plan() if s.kind == "upgrade"}
    for p in setup.settings.projects:
        hooks = ", ".join(h for h in HOOKS if p.hook(h))
        out.append(f"  project {p.name}: {p.dir} [{hooks}]; {notes.get(p.name, '')}")
    if setup.settings.databases:
        out.append(f"  databases to save: {' '.join(setup.settings.databases)}")
    return "\n".join(out)


def summary_text(session: Session) -> str:
    """Per-phase times, each project's checks per phase, where the logs are."""
    state = session.state
    out = ["", "summary:"]
    if state.setup is not None:
        for side in ("base", "target"):
            tree = state.setup.tree(side)
            out.append(
                f"  {side + ' tree':13} {tree.branch} {tree.ref or ''} "
                f"sha {tree.sha or '-'} (release {tree.release})"
            )
    total = 0.0
    for kind in KINDS:
        recs = [r for sid, r in state.steps.items() if sid.split("/")[0] == kind]
        if not recs:
            continue
        dur = sum(r.duration or 0 for r in recs)
        total += dur
        states = ", ".join(sorted({r.status for r in recs}))
        out.append(f"  {kind:13} {len(recs):3} step(s) {dur:8.2f}s  {states}")
    out.append(f"  {'total':13} {'':12} {total:8.2f}s")
    out += leg_lines(list(state.steps), [r.duration or 0 for r in state.steps.values()])
    out += host_lines(state)
    if state.setup is not None:
        ctx = session.deploy_context()
        running = running_version_lines(session.paths.save_dir)
        if running:
            out += running
        else:
            for service, (before, after) in session.deployer.versions(ctx).items():
                out.append(f"  {service:13} {before or '-'} -> {after or '-'}")
        out += git_source_lines({side: ctx.release_dir(side) for side in ("base", "target")})
    results = read_results(session.paths.save_dir)
    if results:
        out.append("  resource survival (missing: not checked in that phase; -: not run yet):")
        status = {sid: r.status for sid, r in state.steps.items()}
        out += matrix_table(survival_matrix(results, status))
    paths = session.paths
    out += summary_lines(paths.save_dir, paths.base_release_dir.name, paths.target_release_dir.name)
    out.append(f"  logs: {session.paths.logs_dir} (grenade.log, grenade.summary.log, steps/)")
    return "\n".join(out)


def running_version_lines(save_dir: Path) -> list[str]:
    """With several hosts: what each service runs on each host, at the base and now,
    read from the processes (`versions-base`, `converge`); empty on one host."""
    rows = read_versions(save_dir) or []
    if len({r["host"] for r in rows}) < 2:
        return []
    out = ["  running versions (read from the processes), per host:"]
    for row in sorted(rows, key=lambda r: (r["host"], r["service"])):
        before, after = ((row[k] or {}).get("version") or "-" for k in ("before", "after"))
        out.append(f"    {row['host']:12} {row['service']:13} {before} -> {after}")
    return out


def host_lines(state: RunState) -> list[str]:
    """With several hosts: each host's steps by status and its time in them."""
    per_host: dict[str, list[HostRecord]] = {}
    for rec in state.steps.values():
        for name, host in rec.hosts.items():
            per_host.setdefault(name, []).append(host)
    if len(per_host) < 2:
        return []
    out = ["  per host (steps by status, time in them):"]
    for name, recs in per_host.items():
        counts = Counter(r.status for r in recs)
        states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        dur = sum(r.duration or 0 for r in recs)
        out.append(f"    {name:12} {states:28} {dur:8.2f}s")
    return out


def git_source_lines(release_dirs: Mapping[str, Path]) -> list[str]:
    """``keystone (target) from <repo> @ <sha>`` for each service a side installed from git:
    the ``sources.json`` its tree writes in the release directory (the lite tree's
    ``lite_git_sources``; config key ``services_from_git``)."""
    lines = []
    for side, release_dir in release_dirs.items():
        try:
            sources = json.loads((release_dir / "sources.json").read_text())
        except (OSError, ValueError):
            continue  # none from git on that side, or not installed yet
        for service, source in sorted(sources.items()):
            lines.append(
                f"  {f'{service} ({side})':13} from {source.get('repo')} @ {source.get('sha')}"
            )
    return lines


def status_text(session: Session) -> str:
    """Each step of the run on this stack_root: status, duration, and where it ran."""
    state = session.state
    if not state.is_setup:
        return f"{session.paths.stack_root}: no run set up"
    out = [f"run {state.run_id} on {session.paths.stack_root}"]
    planned = [step.id for step in session.plan()]
    # then the steps of other legs (`upgrade --groups`) the state records
    for sid in [*planned, *(sid for sid in state.steps if sid not in set(planned))]:
        rec = state.steps.get(sid)
        status = rec.status if rec else "pending"
        dur = f"{rec.duration:.2f}s" if rec and rec.duration is not None else ""
        hosts = ""
        if rec and len(rec.hosts) > 1:
            hosts = "  " + " ".join(f"{h}={r.status}" for h, r in rec.hosts.items())
        out.append(f"  {status:8} {dur:>9}  {sid}{hosts}")
    out += running_version_lines(session.paths.save_dir)
    if state.failed_step:
        out.append(f"failed at {state.failed_step}; {command_hint('run', '--resume')} continues")
    return "\n".join(out)
