"""The plan: every step of a run, in order, as data built before anything runs.

A step is one hook run of one project in one phase, on the hosts of one group
(every step runs on `controller` until the configuration names other groups).
`invoke plan` prints the plan with the hosts of each step's group; the step
runner executes it; tests compare it as data.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .hosts import CONTROLLER, Inventory
from .plugins import Project, Settings

# The fine-grained step kinds, in run order (the `phase` task namespace).
KINDS: tuple[str, ...] = (
    "stack-base",
    "verify-base",
    "versions-base",
    "early-create",
    "create",
    "verify-pre",
    "save-state",
    "shutdown",
    "snapshot",
    "verify-noapi",
    "prep-target",
    "upgrade",
    "converge",
    "verify-post",
    "verify-target",
    "rollback",
    "verify-rollback",
    "destroy",
)

# What each kind runs, for `invoke --list` and the docs.
KIND_HELP: dict[str, str] = {
    "stack-base": "Deploy the base cloud with the deployer (the base tree's stack.sh).",
    "verify-base": "Check the base cloud: verify.sh base per project, then the smoke command.",
    "versions-base": "Record which version each service runs at the base, read from its process.",
    "early-create": "resources.sh early_create per project (horizontal resources).",
    "create": "resources.sh create per project.",
    "verify-pre": "resources.sh verify pre-upgrade per project.",
    "save-state": "Dump the registered databases of the base (register_db_to_save).",
    "shutdown": "shutdown.sh per project, in reverse order.",
    "snapshot": "snapshot.sh pre_upgrade per project (after shutdown).",
    "verify-noapi": "resources.sh verify_noapi pre-upgrade: the APIs are down.",
    "prep-target": "Prepare the target side (prep-target).",
    "upgrade": "upgrade.sh per project (per-release scripts applied inside it).",
    "converge": "Every service runs the target release's code, read from its process.",
    "verify-post": "resources.sh verify post-upgrade per project.",
    "verify-target": "Check the target: verify.sh target, smoke command, DB dumps again.",
    "rollback": "Put the snapshot back: check it, stop the target, restore, start the base.",
    "verify-rollback": "resources.sh verify rollback per project, after a rollback.",
    "destroy": "resources.sh destroy per project, in reverse order.",
}

# The coarse, chainable tasks and the kinds each one runs.
COARSE: dict[str, tuple[str, ...]] = {
    "base": ("stack-base", "verify-base", "versions-base", "early-create", "create", "verify-pre"),
    "upgrade": (
        "save-state",
        "shutdown",
        "snapshot",
        "verify-noapi",
        "prep-target",
        "upgrade",
        "converge",
    ),
    "verify": ("verify-post", "verify-target"),
    "rollback": ("rollback", "verify-rollback"),
    "destroy": ("destroy",),
}

# The kinds a later upgrade leg runs again under ids of its own (`upgrade --groups`,
# the rollback rehearsal's second upgrade): the upgrade and verify tasks'.
LEG_KINDS: tuple[str, ...] = COARSE["upgrade"] + COARSE["verify"]

# resources.sh phase and side for each resource kind (anatomy §7.5).
RESOURCE_PHASES: dict[str, tuple[str, ...]] = {
    "early-create": ("early_create",),
    "create": ("create",),
    "verify-pre": ("verify", "pre-upgrade"),
    "verify-noapi": ("verify_noapi", "pre-upgrade"),
    "verify-post": ("verify", "post-upgrade"),
    "verify-rollback": ("verify", "rollback"),
    "destroy": ("destroy",),
}
REVERSED = {"shutdown", "destroy"}
NO_HOSTS = "(none)"  # a step's group the inventory lacks (the runner refuses to start)


@dataclass(frozen=True)
class Step:
    kind: str
    project: str
    argv: tuple[str, ...]
    side: str = "base"  # which devstack tree is TOP_DIR: base or target
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    note: str = ""
    group: str = CONTROLLER  # the host group it runs on (grenade.hosts.Inventory)
    resource_side: str = ""  # pre-upgrade/post-upgrade: GRENADE_SIDE of resource steps
    # the hosts it runs on, by name (grenade.placement); empty: the whole group
    hosts: tuple[str, ...] = ()
    # a later upgrade leg's groups, "+"-joined (`upgrade --groups`): its own step ids
    leg: str = ""

    @property
    def id(self) -> str:
        where = "" if self.group == CONTROLLER else f"@{self.group}"
        leg = f"+{self.leg}" if self.leg else ""
        return f"{self.kind}/{self.project}{where}{leg}"

    @property
    def script(self) -> str:
        return self.argv[1] if self.argv[:1] == ("bash",) and len(self.argv) > 1 else self.argv[0]

    def describe(self, hosts: str | None = None) -> str:
        """One line: kind, project, group, the group's hosts when given, argv."""
        where = f"{self.group:10} " + (f"{hosts} " if hosts is not None else "")
        return f"{self.kind:13} {self.project:16} {where}{shlex.join(self.argv)}"


@dataclass
class PlanInputs:
    """What the plan is built from; everything comes from setup."""

    settings: Settings
    grenade_dir: Path
    base_branch: str
    target_branch: str
    base_release: str
    stack: tuple[str, ...] | None = None  # the deployer's stack command
    stack_cwd: str | None = None
    stack_env: tuple[tuple[str, str], ...] = ()
    stack_user: str | None = None
    smoke: tuple[str, ...] | None = None
    verify_resources: bool = True
    base_release_name: str = "old"  # the release directory names, as in SAVE_DIR dumps
    target_release_name: str = "new"
    target_devstack: str = ""
    # the deployer's reading of what its services run (Deployer.running_versions)
    versions: tuple[str, ...] | None = None
    # the rollback's own steps (grenade.rollback), when a rollback is asked for
    rollback: tuple[Step, ...] = ()
    # the rollback's snapshot after shutdown: where the deployer can roll back
    snapshot: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def _hook_steps(
    kind: str, projects: list[Project], hook: str, args: tuple[str, ...], side: str
) -> list[Step]:
    resource_side = args[1] if hook == "resources.sh" and len(args) > 1 else ""
    steps = []
    for p in projects:
        path = p.hook(hook)
        if path is not None:
            steps.append(
                Step(
                    kind, p.name, ("bash", str(path), *args), side=side, resource_side=resource_side
                )
            )
    return steps


def _upgrade_steps(inp: PlanInputs) -> list[Step]:
    steps = []
    for p in inp.settings.projects:
        direction, script, exists = p.per_release_script(
            inp.base_branch, inp.target_branch, inp.base_release
        )
        note = f"{direction}-{inp.base_release}/upgrade-{p.name}: " + (
            "applies" if exists else "none"
        )
        steps.append(
            Step(
                "upgrade",
                p.name,
                ("bash", str(Path(p.dir) / "upgrade.sh")),
                side="target",
                note=note,
            )
        )
    return steps


def _smoke_step(kind: str, inp: PlanInputs, enabled: bool, side: str) -> list[Step]:
    if inp.smoke and enabled:
        return [Step(kind, "smoke", inp.smoke, side=side)]
    return []


def _versions_step(kind: str, inp: PlanInputs) -> list[Step]:
    """versions-base records what runs at the base; converge checks, after the upgrade,
    that it all runs code from the target release's directory (``grenade.versions``)."""
    if not inp.versions:
        return []
    # GRENADE_DIR's copy (grenade.versions is standard library only): it runs on every
    # host, and a node need not have grenade installed
    tool = ("python3", str(inp.grenade_dir / "tools" / "versions.py"))
    if kind == "versions-base":
        return [Step(kind, "grenade", (*tool, "record", "--", *inp.versions))]
    target_dir = str(Path(inp.target_devstack).parent) if inp.target_devstack else ""
    if not target_dir:
        return []  # no target release dir to compare with
    argv = (
        *tool,
        "check",
        "--target-dir",
        target_dir,
        "--",
        *inp.versions,
    )
    return [Step(kind, "grenade", argv, side="target")]


def _snapshot_steps(
    kind: str, inp: PlanInputs, ordered: list[Project], resources: bool
) -> list[Step]:
    """The snapshot after shutdown, and the rollback's steps when one is asked for
    (grenade.rollback)."""
    if kind == "snapshot":
        steps = _hook_steps(kind, ordered, "snapshot.sh", ("pre_upgrade",), "base")
        if not inp.snapshot:
            return steps
        # after the projects' own: it takes what they wrote into the manifest
        snapshot = ("bash", str(inp.grenade_dir / "snapshot"), "pre_upgrade")
        return [*steps, Step(kind, "grenade", snapshot)]
    if kind == "rollback":
        return list(inp.rollback)
    if inp.rollback and resources:
        return _hook_steps(kind, ordered, "resources.sh", RESOURCE_PHASES[kind], "base")
    return []


def build_plan(inp: PlanInputs) -> list[Step]:
    """Every step of a full run, in order."""
    s = inp.settings
    projects = s.projects
    gdir = inp.grenade_dir
    resources = inp.verify_resources and s.verify_resources
    steps: list[Step] = []
    for kind in KINDS:
        ordered = list(reversed(projects)) if kind in REVERSED else projects
        if kind == "stack-base":
            if inp.stack:
                steps.append(
                    Step(
                        kind,
                        "devstack",
                        inp.stack,
                        cwd=inp.stack_cwd,
                        env=inp.stack_env,
                        user=inp.stack_user,
                    )
                )
        elif kind == "verify-base":
            steps += _hook_steps(kind, ordered, "verify.sh", ("base",), "base")
            steps += _smoke_step(kind, inp, s.base_run_smoke, "base")
        elif kind in RESOURCE_PHASES and kind != "verify-rollback":
            if resources:
                steps += _hook_steps(kind, ordered, "resources.sh", RESOURCE_PHASES[kind], "base")
        elif kind == "save-state":
            steps.append(
                Step(kind, "grenade", ("bash", str(gdir / "save-state"), inp.base_release_name))
            )
        elif kind == "shutdown":
            steps += _hook_steps(kind, ordered, "shutdown.sh", (), "base")
        elif kind in ("snapshot", "rollback", "verify-rollback"):
            steps += _snapshot_steps(kind, inp, ordered, resources)
        elif kind == "prep-target":
            steps.append(Step(kind, "grenade", ("bash", str(gdir / "prep-target")), side="target"))
        elif kind == "upgrade":
            steps += _upgrade_steps(inp)
        elif kind in ("versions-base", "converge"):
            steps += _versions_step(kind, inp)
        elif kind == "verify-target":
            steps += _hook_steps(kind, ordered, "verify.sh", ("target",), "target")
            steps += _smoke_step(kind, inp, s.target_run_smoke, "target")
            steps.append(
                Step(
                    kind,
                    "save-state",
                    (
                        "bash",
                        str(gdir / "save-state"),
                        inp.target_release_name,
                        inp.target_devstack,
                    ),
                    side="target",
                )
            )
    return steps


def format_plan(steps: list[Step], inventory: Inventory | None = None) -> str:
    """The numbered plan; with the inventory, each step's group is followed by the
    hosts that run it (comma-separated)."""
    hosts = {g.name: ",".join(g.names) for g in inventory.groups.values()} if inventory else {}

    def where(step: Step) -> str:
        return ",".join(step.hosts) if step.hosts else hosts.get(step.group, NO_HOSTS)

    width = max((len(where(s)) for s in steps), default=0)
    lines = []
    for i, step in enumerate(steps, 1):
        names = where(step).ljust(width) if inventory else None
        lines.append(f"{i:3}. {step.describe(names)}")
        if step.note:
            lines.append(f"{'':5}{step.note}")
    return "\n".join(lines)
