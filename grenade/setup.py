"""Setup as a workflow of small functions, each taking the record so far and the session.

`SETUP` is the whole sequence, in order; `run_setup` folds the record through it.
Every function returns a new frozen `SetupRecord` (or the same one, for those that
only write files), so what setup knows at each point is plain data.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .dbcheck import check_db_clients
from .errors import ConfigError, TreeError
from .pluginrc import configured_plugins
from .plugins import discover_settings, load_settings
from .record import PluginRecord, SetupRecord, TreeRecord
from .resources import ResourceStore
from .rundir import pluginrc_line, write_grenade_dir
from .secrets import hook_owner, private_dir, private_file
from .session import Session
from .trees import TreeSpec, prepare_plugin, prepare_tree, tree_sha

SetupTask = Callable[[SetupRecord, Session], SetupRecord]


def git_sha(path: Path) -> str | None:
    """The checked-out SHA of a tree we did not prepare ourselves (None if not git)."""
    try:
        return tree_sha(path)
    except TreeError:
        return None


def _tree(session: Session, side: str) -> TreeRecord:
    spec = session.cfg.tree(side)
    dest = session.paths.devstack(side)
    prepared = session.cfg.trees.prepared
    repo = spec.repo
    if repo is None and not prepared:
        repo = session.deployer.default_repo(session.paths)
    if prepared or repo is None:
        # Someone else (Zuul's devstack roles) prepared the tree: use it as it is.
        return TreeRecord(
            path=str(dest),
            repo=None,
            branch=spec.branch,
            ref=spec.ref,
            sha=git_sha(dest),
            release=spec.release_name,
        )
    try:
        tree = prepare_tree(
            TreeSpec(repo, spec.branch, spec.ref, spec.release),
            dest,
            session.paths.cache_dir,
            force=session.cfg.trees.force,
        )
    except TreeError as exc:
        raise TreeError(f"{side} tree: {exc}") from exc
    return TreeRecord(
        path=str(tree.path),
        repo=tree.repo,
        branch=tree.branch,
        ref=tree.ref,
        sha=tree.sha,
        release=tree.release,
    )


def ensure_reachable(session: Session) -> None:
    """Every remote host answers SSH, lets us in and shows the key known_hosts has;
    one error names every host that does not."""
    if session.cfg.hosts:
        from .nodes import check_reachable  # Fabric takes 0.2 s to import: multinode only

        check_reachable(session.inventory)


def check_hosts(record: SetupRecord, session: Session) -> SetupRecord:
    """The hosts are reachable, before anything changes."""
    ensure_reachable(session)
    return record


def prepare_trees(record: SetupRecord, session: Session) -> SetupRecord:
    """The base and target devstack trees (GitPython), at their branch, tag or SHA."""
    return dataclasses.replace(
        record,
        base=_tree(session, "base"),
        target=_tree(session, "target"),
    )


def make_grenade_dir(record: SetupRecord, session: Session) -> SetupRecord:
    """GRENADE_DIR: the bash library, the effective localrc and pluginrc."""
    lines = [pluginrc_line(p.name, p.repo, p.branch) for p in configured_plugins(session.cfg)]
    write_grenade_dir(session.paths, session.cfg, lines)
    return record


def prepare_plugins(record: SetupRecord, session: Session) -> SetupRecord:
    """Every plugin of the pluginrc and config, checked out at its branch (the target's
    by default); an error names the plugin and the user's file and line."""
    paths, cfg = session.paths, session.cfg
    plugins = []
    for plugin in configured_plugins(cfg):
        branch = plugin.branch or cfg.target.branch
        path = paths.plugin_root / plugin.name
        if cfg.trees.prepared and path.is_dir():
            # Zuul checked the plugin out with the change under test: use it as is.
            plugins.append(PluginRecord(plugin.name, str(path), git_sha(path), branch))
            continue
        plugin.check_repo()
        try:
            tree = prepare_plugin(
                plugin.name, plugin.repo, branch, paths.plugin_root, paths.cache_dir
            )
        except TreeError as exc:
            raise plugin.error(str(exc)) from exc
        plugins.append(PluginRecord(plugin.name, str(tree.path), tree.sha, tree.branch))
    return dataclasses.replace(record, plugins=tuple(plugins))


def check_deployer(record: SetupRecord, session: Session) -> SetupRecord:
    """The deployer's prerequisites, as soon as the trees exist: a run that cannot work
    stops before plugins are cloned or settings sourced. Nothing is written."""
    session.deployer.check(session.deploy_context(record))
    return record


def configure_deployer(record: SetupRecord, session: Session) -> SetupRecord:
    """The deployer's setup-time writes (local.conf), once: after the settings, whose
    devstack_localrc lines they include."""
    session.deployer.configure(session.deploy_context(record))
    return record


def load_project_settings(record: SetupRecord, session: Session) -> SetupRecord:
    """Every settings file sourced in one bash process; registered projects read back."""
    services = session.deployer.enabled_services(session.deploy_context(record))
    files = discover_settings(session.cfg.projects_dirs, [Path(p.path) for p in record.plugins])
    env = {
        **os.environ,
        **session.base_env(),
        "TOP_DIR": str(session.paths.target_devstack),
        "ENABLED_SERVICES": services,
    }
    settings = load_settings(session.paths.grenade_dir, files, env)
    for project in settings.projects:
        if project.hook("upgrade.sh") is None:
            raise ConfigError(
                f"phase setup: project {project.name} ({project.dir}) "
                "is registered but has no upgrade.sh"
            )
    return dataclasses.replace(record, enabled_services=services, settings=settings)


def plan_inputs(record: SetupRecord, session: Session) -> SetupRecord:
    """What the plan needs beyond the settings: the deployer's stack command, the smoke."""
    cmd = session.deployer.stack(session.deploy_context(record))
    smoke = session.cfg.smoke_command
    return dataclasses.replace(
        record,
        stack=tuple(cmd.argv) if cmd else None,
        stack_cwd=str(cmd.cwd) if cmd and cmd.cwd else None,
        stack_env=tuple(sorted(cmd.env.items())) if cmd else (),
        stack_user=cmd.user if cmd else None,
        smoke=smoke if session.cfg.run_smoke else None,
    )


def ship_to_nodes(record: SetupRecord, session: Session) -> SetupRecord:
    """Every remote node gets GRENADE_DIR, the trees at their SHAs and the project
    directories of its steps (grenade.ship), all nodes at once; one line each."""
    fleet = session.fleet
    if fleet is not None:
        for line in fleet.ship_all(record, session.plan_for(record)):
            session.say(f"setup: node {line}")
    return record


# The settings are sourced with the base cloud's ENABLED_SERVICES, which the
# deployer works out from the local.conf it will write (without writing it), and
# their devstack_localrc lines are part of that local.conf: so the deployer
# configures once, after them.
SETUP: tuple[SetupTask, ...] = (
    check_hosts,
    prepare_trees,
    check_deployer,
    make_grenade_dir,
    prepare_plugins,
    load_project_settings,
    configure_deployer,
    check_db_clients,  # after configure: the tree's stackrc reads the local.conf it wrote
    plan_inputs,
    ship_to_nodes,  # last: what it ships is what setup made
)


def run_setup(session: Session, tasks: tuple[SetupTask, ...] = SETUP) -> SetupRecord:
    record = SetupRecord()
    for task in tasks:
        record = task(record, session)
    return record


def init_save_dir(session: Session) -> None:
    """A new run starts with an empty resource store (the original's init_grenade_db),
    in a SAVE_DIR private to the user hooks run as (DB dumps, config copies, the run
    state and the resources hold secrets)."""
    save = session.paths.save_dir
    owner = hook_owner(session.cfg.stack_user)
    private_dir(save, owner)
    store = ResourceStore.in_save_dir(save)
    private_file(store.lock_path, owner)  # made by the first locker, with its umask
    store.clear()
    (save / "resource-results.jsonl").unlink(missing_ok=True)
    # what a previous run left that this one's reports would read as its own
    (save / "service-versions.json").unlink(missing_ok=True)
    for name in ("dumps", "snapshots", "rollback"):
        shutil.rmtree(save / name, ignore_errors=True)
