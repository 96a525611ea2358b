"""The devstack deployer: a real devstack on a gate VM stacks the base cloud.

``check`` makes sure both trees are devstack checkouts; ``configure`` writes each
tree's ``local.conf`` (grenade's ``TEMPLATE`` first, see ``grenade.deployers.localconf``
for the rest); ``stack`` is the base tree's ``stack.sh``; ``unstack`` is each tree's
``unstack.sh``.
"""

from __future__ import annotations

from grenade.errors import DeployError
from grenade.trees import tree_has_devstack_functions

from . import SIDES, Command, DeployContext, RunPaths, Side
from .base import BaseDeployer, reading_tool
from .localconf import (
    LAYOUT,
    configure_tree,
    planned_services,
    render_local_conf,
    user_localrc_lines,
)

# The original's default (GIT_BASE/openstack/devstack).
DEVSTACK_REPO = "https://opendev.org/openstack/devstack"

# grenade's defaults for both sides (the original's devstack.local.conf.base/target,
# without the screen-era settings); LAYOUT is DEST and DATA_DIR (``devstack_layout``).
TEMPLATE = (
    "unset HOST_IP",
    LAYOUT,
    "SWIFT_DATA_DIR=${DATA_DIR}/swift",
    "ACTIVE_TIMEOUT=120",
    "ASSOCIATE_TIMEOUT=60",
    "BOOT_TIMEOUT=120",
    "SERVICE_TIMEOUT=120",
    "ADMIN_PASSWORD=0penstack",
    "LOGDAYS=1",
    "LOGFILE=$DEST/logs/stack.sh.log",
    "MYSQL_PASSWORD=superstack",
    "RABBIT_HOST=localhost",
    "RABBIT_PASSWORD=superstack",
    "SERVICE_PASSWORD=$ADMIN_PASSWORD",
    "SERVICE_TOKEN=cd0d1a03-b701-4fcb-801a-8b4d0bc3d06e",
    "VOLUME_BACKING_FILE_SIZE=10000M",
    # The original appends this after the settings (grenade.sh step 13); as a template
    # key a run configuration may override it (multinode superconductor setups).
    "CELLSV2_SETUP=singleconductor",
    "enable_service s-account s-container s-object s-proxy",
    "SWIFT_HASH=8213897fads879789asdf789",
    "SWIFT_REPLICAS=1",
)


# devstack's systemd units (devstack@<service>.service) and the distribution each
# runs: what running_versions reads on a gate VM.
UNIT_DISTRIBUTIONS = {
    "keystone": "keystone",
    "placement-api": "openstack-placement",
    "g-api": "glance",
    "n-api": "nova",
    "n-api-meta": "nova",
    "n-cond-cell1": "nova",
    "n-cpu": "nova",
    "n-sch": "nova",
    "n-super-cond": "nova",
    "c-api": "cinder",
    "c-sch": "cinder",
    "c-vol": "cinder",
    "q-svc": "neutron",
    "neutron-api": "neutron",
    "s-proxy": "swift",
    "s-account": "swift",
    "s-container": "swift",
    "s-object": "swift",
}


def devstack_layout(ctx: DeployContext, side: Side) -> dict[str, object]:
    """The run layout grenade's devstack template sets: DEST and DATA_DIR."""
    return {"DEST": ctx.release_dir(side), "DATA_DIR": ctx.stack_root / "data"}


def render_devstack_local_conf(ctx: DeployContext, side: Side, orig: str = "") -> str:
    """A side's ``local.conf`` on grenade's devstack template."""
    return render_local_conf(ctx, side, orig, template=TEMPLATE, layout=devstack_layout(ctx, side))


class DevstackDeployer(BaseDeployer):
    """Stacks the base release with the base tree's ``stack.sh`` (not external devstack).

    No ``versions``: a gate VM's services come from git trees, not one venv per side;
    ``running_versions`` reads devstack's systemd units' processes.
    """

    name = "devstack"

    def check(self, ctx: DeployContext) -> None:
        """Both trees are devstack checkouts and the configuration's localrc renders."""
        for side in SIDES:
            tree = ctx.tree(side)
            if not tree_has_devstack_functions(tree):
                raise DeployError(
                    f"{side} devstack tree {tree} has no functions/functions-common; "
                    "is it a devstack checkout?"
                )
        if not (ctx.base_devstack_dir / "stack.sh").is_file():
            raise DeployError(f"base devstack tree {ctx.base_devstack_dir} has no stack.sh")
        user_localrc_lines(ctx.config.localrc)

    def enabled_services(self, ctx: DeployContext) -> str:
        return planned_services(ctx, render_devstack_local_conf)

    def configure(self, ctx: DeployContext) -> None:
        """Write both trees' ``local.conf`` and ``.localrc.auto``."""
        for side in SIDES:
            configure_tree(ctx, side, render_devstack_local_conf)

    def stack(self, ctx: DeployContext) -> Command | None:
        return Command(
            argv=["bash", "./stack.sh"],
            cwd=ctx.base_devstack_dir,
            user=ctx.config.stack_user,
        )

    def unstack(self, ctx: DeployContext) -> list[Command]:
        commands = []
        for side in reversed(SIDES):  # what the base shares (its database) stops last
            tree = ctx.tree(side)
            if (tree / "unstack.sh").is_file():
                commands.append(
                    Command(
                        argv=["bash", "./unstack.sh"],
                        cwd=tree,
                        user=ctx.config.stack_user,
                    )
                )
        return commands

    def default_repo(self, paths: RunPaths) -> str | None:
        return DEVSTACK_REPO

    def running_versions(self, ctx: DeployContext) -> Command | None:
        argv = [*reading_tool(ctx), "--systemd"]
        for unit, dist in UNIT_DISTRIBUTIONS.items():
            argv += ["--service", f"{unit}={dist}"]
        return Command(argv=argv)
