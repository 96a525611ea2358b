"""The rollback: its steps, the rehearsal's legs, and what the reports say about it.

A snapshot is taken in every run (the `snapshot` step after shutdown,
``GRENADE_DIR/snapshot``: databases, register_data_to_save paths, the projects'
snapshot.sh output, the resource memory, a manifest; ``shell/inc/snapshot``). The
rollback puts it back, as steps of the plan (`invoke rollback`, or
`run --rehearse-rollback`):

1. ``rollback/check``: every file of the snapshot is there with its checksum, before
   anything is touched (a missing or changed file named, with both checksums);
2. ``rollback/loss``: each database described as it is now: what the rollback loses;
3. ``rollback/stop``: the target release's services stopped (the deployer's
   ``services(target, stop)``);
4. ``rollback/restore``: databases dropped, created and restored, their migration
   version checked against the snapshot's before old code may run on them; the data
   paths and the resource memory put back with them;
5. ``rollback/start``: the base release's services started from the base tree
   (``services(base, start)``);
6. ``verify-rollback/<project>``: ``resources.sh verify rollback`` (plugins that
   ignore an unknown side keep working).

The rehearsal (`run --rehearse-rollback`) is upgrade, verify, rollback, verify
rollback, then the upgrade and verify again under ids of their own (``+again``);
resume works inside any of them. The reports gain the dump comparison (schema and
row counts of each database between the base's dumps and the target's, from
save-state's records) and what the rollback lost.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import dumpdiff
from .deployers import Command
from .errors import DeployError
from .plan import LEG_KINDS, Step

SNAPSHOT = "pre_upgrade"  # the label of the snapshot the snapshot step takes
AGAIN = "again"  # the leg of the rehearsal's second upgrade
REVOCATIONS = {"revocation_event"}  # keystone's: rows lost bring revoked tokens back


def _command_step(project: str, command: Command) -> Step:
    return Step(
        "rollback",
        project,
        tuple(command.argv),
        side="base",
        cwd=str(command.cwd) if command.cwd else None,
        env=tuple(command.env.items()),
        user=command.user,
    )


def rollback_steps(
    grenade_dir: Path, deployer: str, stop: Command | None, start: Command | None
) -> list[Step]:
    """The rollback kind's steps (the projects' verify rollback are hook steps)."""
    if stop is None or start is None:
        raise DeployError(
            f"rollback: the {deployer} deployer cannot stop one release's services and "
            "start another's yet; the lite deployer (the embedded default) can"
        )
    script = str(grenade_dir / "rollback")
    return [
        Step("rollback", "check", ("bash", script, "check", SNAPSHOT)),
        Step("rollback", "loss", ("bash", script, "describe", SNAPSHOT)),
        _command_step("stop", stop),
        Step("rollback", "restore", ("bash", script, "restore", SNAPSHOT)),
        _command_step("start", start),
    ]


def with_second_upgrade(plan: Sequence[Step]) -> list[Step]:
    """The rehearsal's plan: the upgrade and verify steps again, leg ``again``, after
    the rollback's verification and before destroy."""
    again = [dataclasses.replace(s, leg=AGAIN) for s in plan if s.kind in LEG_KINDS]
    out: list[Step] = []
    for step in plan:
        if step.kind == "destroy" and again:
            out += again
            again = []
        out.append(step)
    return out + again


# -- what the reports say -------------------------------------------------------------


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def dump_comparison(save_dir: Path, base: str, target: str) -> list[dumpdiff.SchemaDiff]:
    """Each database's schema and row counts between save-state's dumps of the base
    (before the upgrade) and of the target (after it): ``dumps/<release>/<db>.dump.json``."""
    diffs = []
    for record in sorted((save_dir / "dumps" / base).glob("*.dump.json")):
        after = _load(save_dir / "dumps" / target / record.name)
        before = _load(record)
        if before is not None and after is not None:
            diffs.append(dumpdiff.compare(before, after, record.name.removesuffix(".dump.json")))
    return diffs


def rollback_losses(save_dir: Path) -> list[dumpdiff.RollbackLoss]:
    """What the rollback took away from each database: the snapshot's description
    against the one taken just before the restore (``rollback/<label>/<db>.now.json``)."""
    losses = []
    now_dir = save_dir / "rollback" / SNAPSHOT
    for now_file in sorted(now_dir.glob("*.now.json")):
        db = now_file.name.removesuffix(".now.json")
        snap = _load(save_dir / "snapshots" / SNAPSHOT / "db" / f"{db}.dump.json")
        now = _load(now_file)
        if snap is not None and now is not None:
            losses.append(dumpdiff.loss(snap, now, db))
    return losses


def report_sections(save_dir: Path, base: str, target: str) -> dict[str, Any]:
    """report.json's ``dump_comparison`` and ``rollback_loss``."""
    return {
        "dump_comparison": [d.to_json() for d in dump_comparison(save_dir, base, target)],
        "rollback_loss": [loss.to_json() for loss in rollback_losses(save_dir)],
    }


def summary_lines(save_dir: Path, base: str, target: str) -> list[str]:
    out = []
    diffs = dump_comparison(save_dir, base, target)
    if diffs:
        out.append(f"  databases, {base} -> {target} (save-state's dumps):")
        out += [f"    {line}" for line in dumpdiff.render(diffs)]
    losses = rollback_losses(save_dir)
    if losses:
        out.append("  rollback:")
        out += [f"    {loss.summary()}" for loss in losses]
        revoked = sum(t.lost for loss in losses for t in loss.tables if t.table in REVOCATIONS)
        if revoked:
            out.append(
                f"    {revoked} revocation(s) made after the snapshot are gone: the tokens "
                "they revoked validate again"
            )
    return out


def leg_lines(step_ids: Sequence[str], durations: Sequence[float]) -> list[str]:
    """The summary's line per later leg (`+again`, `+subnode`): its steps and time."""
    legs: dict[str, list[float]] = {}
    for sid, took in zip(step_ids, durations, strict=True):
        _, plus, leg = sid.partition("+")
        if plus:
            legs.setdefault(leg, []).append(took)
    return [
        f"  leg +{leg:11} {len(times):3} step(s) {sum(times):8.2f}s" for leg, times in legs.items()
    ]
