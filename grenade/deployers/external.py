"""The `external` deployer: the base cloud exists already (Zuul's devstack roles ran
stack.sh, as the original's GRENADE_USE_EXTERNAL_DEVSTACK=True). Nothing is stacked
or unstacked by grenade; trees at their paths are used as they are."""

from __future__ import annotations

from . import Command, DeployContext


class ExternalDeployer:
    name = "external"

    def prepare(self, ctx: DeployContext) -> None:
        return None

    def stack(self, ctx: DeployContext) -> Command | None:
        return None

    def unstack(self, ctx: DeployContext) -> list[Command]:
        return []

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        return {"GRENADE_USE_EXTERNAL_DEVSTACK": "True"}

    def default_repo(self, paths: object) -> str | None:
        return None  # the trees are where Zuul put them

    def versions(self, ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
        return {}
