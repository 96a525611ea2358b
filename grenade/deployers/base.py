"""`BaseDeployer`: what a deployer does when it does nothing special.

The defaults suit a base cloud grenade does not deploy (the external deployer): no
checks, nothing written, nothing stacked or unstacked, the trees used as they are.
"""

from __future__ import annotations

from pathlib import Path

from ..plugins import enabled_services_from_tree
from . import Command, DeployContext, RunPaths, Side

# The process reading every deployer's running_versions shares: package data of
# grenade's shell library, in GRENADE_DIR on the hosts.
READING_TOOL = "tools/service_versions.py"


def reading_tool(ctx: DeployContext) -> list[str]:
    """The start of a reading command; the deployer adds where its services' pids are
    and which distribution each one is (the tool's ``--help``)."""
    return ["python3", str(ctx.grenade_dir / READING_TOOL)]


class BaseDeployer:
    """The `Deployer` protocol's defaults; a deployer overrides what it takes part in."""

    name: str

    def check(self, ctx: DeployContext) -> None:
        return None

    def enabled_services(self, ctx: DeployContext) -> str:
        """The base tree's ENABLED_SERVICES as it stands (nothing of grenade's in it),
        else the configured ones."""
        return enabled_services_from_tree(ctx.base_devstack_dir, ctx.config.enabled_services)

    def configure(self, ctx: DeployContext) -> None:
        return None

    def stack(self, ctx: DeployContext) -> Command | None:
        return None

    def unstack(self, ctx: DeployContext) -> list[Command]:
        return []

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        return {}

    def default_repo(self, paths: RunPaths) -> str | None:
        return None

    def versions(self, ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
        return {}

    def services(self, ctx: DeployContext, side: Side, action: str) -> Command | None:
        return None

    def node_files(self, ctx: DeployContext) -> list[Path]:
        return []

    def running_versions(self, ctx: DeployContext) -> Command | None:
        return None
