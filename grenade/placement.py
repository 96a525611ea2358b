"""Where each step runs when the configuration names hosts and groups.

`build_plan` gives every step to `controller`; `place` spreads them over the
topology (group -> host names, `upgrade_groups`, each project's groups from
`register_project_groups`), as data, before anything runs:

- stack-base: each host's own stack.sh, once; the controller group first, then
  the other groups in config order, the hosts of one group at once;
- shutdown.sh, snapshot.sh and upgrade.sh: on the hosts of the project's groups
  that are in `upgrade_groups`, group by group in that order; a project none of
  whose groups is upgraded has no such step, and its hosts keep running the base;
- resources.sh early_create, create, verify, destroy and verify.sh: once, on the
  first host of the project's first group (the APIs answer the same anywhere);
- resources.sh verify_noapi: on every host of the project's groups, each host
  checking what is local to it (its files, its processes), when one of them is
  upgraded (otherwise every API of the project still answers);
- save-state and prep-target: on the controller's hosts and every upgraded host;
  in a later leg (`upgrade --groups`), on that leg's hosts only;
- versions-base and converge: on every host (a host left on the base release is
  checked to run its base processes still, grenade.versions);
- everything else (smoke, the target's dumps): the controller group.

A host that two groups share runs a step once, with the first group that
reaches it. Steps off the controller group carry `@group` in their id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .hosts import CONTROLLER
from .plan import RESOURCE_PHASES, Step
from .plugins import Project

ONCE = {"early-create", "create", "verify-pre", "verify-post", "destroy", "verify-base"}
UPGRADED = {"shutdown", "snapshot", "upgrade"}
EVERY_UPGRADED_HOST = {"save-state", "prep-target"}
EVERY_HOST = {"versions-base", "converge"}


@dataclass(frozen=True)
class Topology:
    """The configured groups (in config order, each its host names in order) and
    the groups the shutdown and upgrade phases touch, in order."""

    groups: Mapping[str, tuple[str, ...]]
    upgrade_groups: tuple[str, ...]
    later_leg: bool = False  # the groups are a later leg's: the controller's was done

    @property
    def stack_order(self) -> list[str]:
        return [CONTROLLER, *(g for g in self.groups if g != CONTROLLER)]

    def hosts(self, groups: Iterable[str]) -> list[str]:
        """The hosts of the groups, each once, in group then host order."""
        seen: dict[str, None] = {}
        for group in groups:
            seen.update(dict.fromkeys(self.groups.get(group, ())))
        return list(seen)

    def upgraded_groups(self, project: Project) -> list[str]:
        return [g for g in self.upgrade_groups if g in project.groups]


def _on(step: Step, group: str, hosts: Sequence[str]) -> Step:
    return dataclasses.replace(step, group=group, hosts=tuple(hosts))


def _per_group(step: Step, topo: Topology, groups: Iterable[str]) -> list[Step]:
    """The step once per group, each group with the hosts no earlier group had."""
    steps, done = [], set()
    for group in groups:
        hosts = [h for h in topo.groups.get(group, ()) if h not in done]
        if hosts:
            steps.append(_on(step, group, hosts))
            done.update(hosts)
    return steps


def place_step(step: Step, project: Project | None, topo: Topology) -> list[Step]:
    """The steps `step` becomes on the topology (none: it has nothing to run on)."""
    kind = step.kind
    if kind == "stack-base" or kind in EVERY_HOST:
        return _per_group(step, topo, topo.stack_order)
    if project is None:  # grenade's own steps, the smoke command
        if kind in EVERY_UPGRADED_HOST:
            groups = list(topo.upgrade_groups)
            if not topo.later_leg:
                groups.insert(0, CONTROLLER)
            hosts = topo.hosts(groups)
            return [_on(step, groups[0], hosts)] if hosts else []
        return [step]
    groups = [g for g in project.groups if g in topo.groups] or [CONTROLLER]
    if kind == "verify-noapi":
        if not topo.upgraded_groups(project):
            return []
        return _per_group(step, topo, groups)
    if kind in UPGRADED:
        return _per_group(step, topo, topo.upgraded_groups(project))
    if kind in ONCE or kind in RESOURCE_PHASES or kind == "verify-target":
        first = groups[0]
        return [_on(step, first, topo.groups[first][:1])]
    return [step]


def place(steps: Sequence[Step], projects: Sequence[Project], topo: Topology) -> list[Step]:
    """Every step of the plan on its hosts, in plan order."""
    by_name = {p.name: p for p in projects}
    placed: list[Step] = []
    for step in steps:
        placed += place_step(step, by_name.get(step.project), topo)
    return placed
