"""``LiteDeployer``: stacks the base release with the lite tree's ``stack.sh``.

``check`` is the machine's prerequisites (``prereqs``); ``configure`` writes each
tree's ``local.conf`` with the shared renderer (``grenade.deployers.localconf``), the
lite layout as its template; ``stack`` runs the base tree's ``stack.sh``; ``unstack``
runs the target's then the base's ``unstack.sh`` (services, then the PostgreSQL
cluster); ``versions`` reads the venvs (``versions``), ``running_versions`` the
services' processes (``reading_command``). The trees come from the branches
repository ``build_repo`` makes in the run's cache.
"""

from __future__ import annotations

from pathlib import Path

from .. import SIDES, Command, DeployContext, RunPaths, Side
from ..base import BaseDeployer
from ..localconf import (
    LAYOUT,
    configure_tree,
    planned_services,
    render_local_conf,
    user_localrc_lines,
)
from .prereqs import check_prerequisites
from .repo import REPO_NAME, build_repo
from .tree import cache_dir
from .versions import reading_command, service_versions


def lite_layout(ctx: DeployContext, side: Side) -> dict[str, object]:
    """The lite layout: the template keys of the lite tree's ``local.conf``."""
    layout: dict[str, object] = {
        "DEST": ctx.release_dir(side),
        "DATA_DIR": ctx.stack_root / "data",
        "DATABASE_TYPE": ctx.config.database,
    }
    services = ctx.config.enabled_services
    if services:
        layout["ENABLED_SERVICES"] = services
    return layout


def render_lite_local_conf(ctx: DeployContext, side: Side, orig: str = "") -> str:
    """A side's ``local.conf``: the shared renderer with the lite layout as its template
    (then the tree's own configuration, the run's ``localrc``, plugin lines; every
    value quoted, plugin meta-sections after the localrc section)."""
    return render_local_conf(
        ctx, side, orig, template=(LAYOUT,), layout=lite_layout(ctx, side), deployer="lite"
    )


def _is_lite_tree(tree: Path) -> bool:
    return (tree / "stackrc").is_file()


class LiteDeployer(BaseDeployer):
    """Stacks the base release with the lite tree's ``stack.sh``."""

    name = "lite"

    def default_repo(self, paths: RunPaths) -> str:
        """The repository trees are cloned from when the config names none."""
        return str(build_repo(Path(paths.cache_dir) / REPO_NAME))

    def check(self, ctx: DeployContext) -> None:
        check_prerequisites(ctx)
        user_localrc_lines(ctx.config.localrc)

    def enabled_services(self, ctx: DeployContext) -> str:
        return planned_services(ctx, render_lite_local_conf)

    def configure(self, ctx: DeployContext) -> None:
        for side in SIDES:
            # without a stackrc it is no lite tree: a lite local.conf would mean nothing
            if _is_lite_tree(ctx.tree(side)):
                configure_tree(ctx, side, render_lite_local_conf)

    def stack(self, ctx: DeployContext) -> Command | None:
        return Command(
            argv=["bash", "./stack.sh"], cwd=ctx.base_devstack_dir, env=self.hook_env(ctx)
        )

    def unstack(self, ctx: DeployContext) -> list[Command]:
        commands = []
        for side in reversed(SIDES):  # the base's unstack stops the shared database
            tree = ctx.tree(side)
            if (tree / "unstack.sh").is_file():
                commands.append(
                    Command(argv=["bash", "./unstack.sh"], cwd=tree, env=self.hook_env(ctx))
                )
        return commands

    def versions(self, ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
        return service_versions(ctx)

    def running_versions(self, ctx: DeployContext) -> Command | None:
        return reading_command(ctx)

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        # Both trees (stack.sh and every upgrade.sh) share one uv cache across runs.
        return {"GRENADE_CACHE_DIR": str(cache_dir())}
