"""``LiteDeployer``: stacks the base release with the lite tree's ``stack.sh``.

``check`` is the machine's prerequisites (``prereqs``); ``configure`` writes each
tree's ``local.conf`` with the shared renderer (``grenade.deployers.localconf``), the
lite layout as its template (with devstack's ``<SERVICE>_REPO``/``<SERVICE>_BRANCH``
for the services config key ``services_from_git`` names for that side); ``stack``
runs the base tree's ``stack.sh``; ``unstack`` runs the target's then the base's
``unstack.sh`` (services, then the PostgreSQL cluster); ``versions`` reads the venvs
(``versions``), ``running_versions`` the services' processes (``reading_command``).
The trees come from the branches repository ``build_repo`` makes in the run's cache.
"""

from __future__ import annotations

from pathlib import Path

from grenade.errors import DeployError

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
from .versions import reading_command, service_versions, tree_services


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
    layout.update(git_source_layout(ctx, side))
    return layout


def git_source_layout(ctx: DeployContext, side: Side) -> dict[str, object]:
    """devstack's ``<SERVICE>_REPO`` and ``<SERVICE>_BRANCH`` (and ``<SERVICE>_PBR_VERSION``)
    for each service config key ``services_from_git.<side>`` names: the tree's
    ``stack_install_service`` installs it from that checkout instead of the lock's pin."""
    layout: dict[str, object] = {}
    for service, source in ctx.config.services_from_git.get(side, {}).items():
        name = service.upper()
        layout[f"{name}_REPO"] = source.repo
        if source.ref:
            layout[f"{name}_BRANCH"] = source.ref
        if source.version:
            layout[f"{name}_PBR_VERSION"] = source.version
    return layout


def check_git_services(ctx: DeployContext, side: Side) -> None:
    """Every service ``services_from_git.<side>`` names is a service lib of that tree:
    otherwise nothing would install it, and the run would test the PyPI release."""
    known = tree_services(ctx.tree(side))
    for service in ctx.config.services_from_git.get(side, {}):
        if service not in known:
            where = ctx.config.where("services_from_git", side)
            raise DeployError(
                f"{where}: config key 'grenade.services_from_git.{side}.{service}': "
                f"the {side} tree ({ctx.tree(side)}) has no service {service} "
                f"(its services: {', '.join(known) or 'none'})"
            )


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
                check_git_services(ctx, side)
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

    def services(self, ctx: DeployContext, side: Side, action: str) -> Command | None:
        """The tree's services.sh: start_/stop_<service> alone, the database kept."""
        tree = ctx.tree(side)
        return Command(argv=["bash", "./services.sh", action], cwd=tree, env=self.hook_env(ctx))

    def node_files(self, ctx: DeployContext) -> list[Path]:
        """The ports stack.sh chose (every node serves at the ports the rings and the
        catalog name), swift's rings and swift.conf (its hash)."""
        data = ctx.stack_root / "data"
        swift = data / "etc" / "swift"
        return [
            data / "lite.env",
            swift / "swift.conf",
            swift / "rings.lite",
            *(swift / f"{ring}.ring.gz" for ring in ("account", "container", "object")),
        ]

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        # Both trees (stack.sh and every upgrade.sh) share one uv cache across runs.
        return {"GRENADE_CACHE_DIR": str(cache_dir())}
