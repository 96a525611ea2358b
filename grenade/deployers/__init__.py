"""Deployers: who stacks the base cloud and tears it down.

A deployer never runs anything itself: it describes commands (`Command`) that the
step runner executes like any hook, so logs, timeouts and signals behave the same
for `stack.sh` as for a plugin's `upgrade.sh`.

Setup asks a deployer three things, in this order (`grenade.setup.SETUP`): `check`
(prerequisites, nothing written) once the trees exist, `enabled_services` (the base
cloud's services, which the plugin settings are sourced with), then `configure`
(local.conf and the like, with the settings' `devstack_localrc` lines) once.

This package's modules: `registry` (the deployer names), `base` (`BaseDeployer`, the
defaults), `localconf` (the local.conf renderer the devstack and lite deployers
share), `devstack`, `external`, and `lite` (a package: the embedded lite tree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # grenade.config imports the registry, which imports this package
    from ..config import GrenadeConfig

Side = Literal["base", "target"]
SIDES: tuple[Side, Side] = ("base", "target")


@dataclass(frozen=True)
class Command:
    """One command line to run through the hook runner."""

    argv: list[str]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # run as this user (sudo -u / runuser) when set


@dataclass(frozen=True)
class DeployContext:
    """What a deployer knows about the run."""

    stack_root: Path
    base_devstack_dir: Path
    target_devstack_dir: Path
    grenade_dir: Path
    save_dir: Path
    logs_dir: Path
    base_branch: str
    target_branch: str
    config: GrenadeConfig
    # side -> [(settings file, line)], from `devstack_localrc base|target ...` in settings
    devstack_localrc: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)

    def tree(self, side: Side) -> Path:
        """The devstack tree of one side."""
        return self.base_devstack_dir if side == "base" else self.target_devstack_dir

    def release_dir(self, side: Side) -> Path:
        """The directory holding a side's tree (devstack's DEST for that release)."""
        return self.tree(side).parent

    def without_plugin_lines(self) -> DeployContext:
        """This context as it is before the plugin settings have been sourced."""
        return dataclasses.replace(self, devstack_localrc={})


class RunPaths(Protocol):
    """What `default_repo` needs of the run's paths (`grenade.rundir.Paths`)."""

    @property
    def cache_dir(self) -> Path: ...


class Deployer(Protocol):
    name: str

    def check(self, ctx: DeployContext) -> None:
        """Fail with a DeployError naming the fix when the run cannot work; write nothing."""

    def enabled_services(self, ctx: DeployContext) -> str:
        """ENABLED_SERVICES of the base cloud as configured, before plugin settings add
        their lines: what the settings are sourced with. Writes nothing."""

    def configure(self, ctx: DeployContext) -> None:
        """Setup-time writes (each tree's local.conf), with the settings' plugin lines."""

    def stack(self, ctx: DeployContext) -> Command | None:
        """The command that deploys the base cloud, or None when someone else did."""

    def unstack(self, ctx: DeployContext) -> list[Command]:
        """Commands that stop everything this deployer started (both releases)."""

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        """Extra environment every hook receives."""

    def default_repo(self, paths: RunPaths) -> str | None:
        """Where the trees come from when the config names no repo (None: nowhere)."""

    def versions(self, ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
        """Each service's version on the base and the target side, for the summary."""

    def services(self, ctx: DeployContext, side: Side, action: str) -> Command | None:
        """A command that starts (``action`` "start") or stops ("stop") one release's
        services alone, without installing or configuring anything: what a rollback
        needs (grenade.rollback). None: the deployer cannot (no rollback)."""

    def node_files(self, ctx: DeployContext) -> list[Path]:
        """Files the base cloud's stack makes on the controller that every other node
        needs before its own stack (the lite tree's ports, swift's rings): sent to the
        nodes once they exist and whenever they change (grenade.nodeconf)."""

    def running_versions(self, ctx: DeployContext) -> Command | None:
        """A command that, run on a host, prints what each of the deployer's services
        found running there runs, read from its process (not from what is installed):
        ``{"<service>": {"pid": N, "version": "x.y.z", "code": "<path>"}}`` (see
        ``grenade.versions``). None: no reading, so no convergence check."""
