"""Deployers: who stacks the base cloud and tears it down.

A deployer never runs anything itself: it describes commands (`Command`) that the
step runner executes like any hook, so logs, timeouts and signals behave the same
for `stack.sh` as for a plugin's `upgrade.sh`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Command:
    """One command line to run through the hook runner."""

    argv: list[str]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # run as this user (sudo -u / runuser) when set


@dataclass
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
    config: dict  # the validated `grenade:` config as a plain dict
    # side -> [(settings file, line)], from `devstack_localrc base|target ...` in settings
    devstack_localrc: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


class Deployer(Protocol):
    name: str

    def prepare(self, ctx: DeployContext) -> None:
        """Setup-time work before the trees are used (write local.conf, check prerequisites)."""

    def stack(self, ctx: DeployContext) -> Command | None:
        """The command that deploys the base cloud, or None when someone else did."""

    def unstack(self, ctx: DeployContext) -> list[Command]:
        """Commands that stop everything this deployer started (both releases)."""

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        """Extra environment every hook receives."""

    def default_repo(self, paths: object) -> str | None:
        """Where the trees come from when the config names no repo (None: nowhere)."""

    def versions(self, ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
        """Each service's version on the base and the target side, for the summary."""
