"""Setup as a workflow of small functions, each taking the record so far and the session.

`SETUP` is the whole sequence, in order; `run_setup` folds the record through it.
Every function returns a new frozen `SetupRecord` (or the same one, for those that
only write files), so what setup knows at each point is plain data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError, TreeError
from .plugins import discover_settings, load_settings
from .record import PluginRecord, SetupRecord, TreeRecord
from .resources import ResourceStore
from .rundir import pluginrc_line, write_grenade_dir
from .session import Session
from .trees import TreeSpec, parse_pluginrc, prepare_plugin, prepare_tree, tree_sha

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
    tree = prepare_tree(
        TreeSpec(repo, spec.branch, spec.ref, spec.release),
        dest,
        session.paths.cache_dir,
        force=session.cfg.trees.force,
    )
    return TreeRecord(
        path=str(tree.path),
        repo=tree.repo,
        branch=tree.branch,
        ref=tree.ref,
        sha=tree.sha,
        release=tree.release,
    )


def prepare_trees(record: SetupRecord, session: Session) -> SetupRecord:
    """The base and target devstack trees (GitPython), at their branch, tag or SHA."""
    return dataclasses.replace(
        record,
        base=_tree(session, "base"),
        target=_tree(session, "target"),
    )


def make_grenade_dir(record: SetupRecord, session: Session) -> SetupRecord:
    """GRENADE_DIR: the bash library, the effective localrc and pluginrc."""
    cfg = session.cfg
    plugin_lines = [pluginrc_line(p.name, p.repo, p.branch) for p in cfg.plugins]
    write_grenade_dir(session.paths, cfg, plugin_lines)
    return record


def prepare_plugins(record: SetupRecord, session: Session) -> SetupRecord:
    """Every plugin of the pluginrc, checked out at its branch (the target's by default)."""
    paths, cfg = session.paths, session.cfg
    plugins = []
    for name, url, branch in parse_pluginrc(paths.grenade_dir / "pluginrc"):
        branch = branch or cfg.target.branch
        path = paths.plugin_root / name
        if cfg.trees.prepared and path.is_dir():
            # Zuul checked the plugin out with the change under test: use it as is.
            plugins.append(PluginRecord(name, str(path), git_sha(path), branch))
            continue
        tree = prepare_plugin(name, url, branch, paths.plugin_root, paths.cache_dir)
        plugins.append(PluginRecord(name, str(tree.path), tree.sha, tree.branch))
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


# The settings are sourced with the base cloud's ENABLED_SERVICES, which the
# deployer works out from the local.conf it will write (without writing it), and
# their devstack_localrc lines are part of that local.conf: so the deployer
# configures once, after them.
SETUP: tuple[SetupTask, ...] = (
    prepare_trees,
    check_deployer,
    make_grenade_dir,
    prepare_plugins,
    load_project_settings,
    configure_deployer,
    plan_inputs,
)


def run_setup(session: Session, tasks: tuple[SetupTask, ...] = SETUP) -> SetupRecord:
    record = SetupRecord()
    for task in tasks:
        record = task(record, session)
    return record


def init_save_dir(session: Session) -> None:
    """A new run starts with an empty resource store (the original's init_grenade_db)."""
    save = session.paths.save_dir
    save.mkdir(parents=True, exist_ok=True)
    ResourceStore.in_save_dir(save).clear()
    (save / "resource-results.jsonl").unlink(missing_ok=True)
