"""The `external` deployer: the base cloud exists already (Zuul's devstack roles ran
stack.sh, as the original's GRENADE_USE_EXTERNAL_DEVSTACK=True). Nothing is stacked
or unstacked by grenade; trees at their paths are used as they are (`BaseDeployer`'s
defaults), and the trees come from where Zuul put them (no default repository)."""

from __future__ import annotations

from . import DeployContext
from .base import BaseDeployer


class ExternalDeployer(BaseDeployer):
    name = "external"

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        return {"GRENADE_USE_EXTERNAL_DEVSTACK": "True"}
