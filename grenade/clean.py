"""`invoke clean`: stop what the deployer started, then remove the run's state.

If stopping fails, nothing is removed: the state and logs are what is needed to
find out why. Only paths under the stack_root are ever removed.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from .errors import DeployError, Interrupted
from .hosts import CONTROLLER, Cancel
from .logs import step_log_name
from .runner import SignalGuard, run_logged
from .session import Session


def stop_cloud(session: Session) -> None:
    """Each of the deployer's unstack commands on every host (a node's from its
    own copies of the trees, once a setup has sent them)."""
    inventory = session.inventory
    group = inventory.hosts_of(CONTROLLER, inventory.host_names)
    if session.fleet is not None and session.state.setup is not None:
        group = session.fleet.wrap(group)
    env = session.base_env()
    failed = []
    with Cancel() as cancel, SignalGuard(cancel):
        for i, cmd in enumerate(session.deployer.unstack(session.deploy_context()), 1):
            if cmd.cwd is not None and not Path(cmd.cwd).is_dir():
                continue
            logs = {
                h: session.log.steps_dir / step_log_name(900 + i, "clean", h) for h in group.names
            }
            session.say(f"clean: {shlex.join(cmd.argv)} (in {cmd.cwd})")
            results = run_logged(
                group,
                logs,
                cmd.argv,
                env={**env, **cmd.env},
                cwd=cmd.cwd,
                timeout=session.timeout,
                cancel=cancel,
                user=cmd.user,
                run_log=session.log,
            )
            failed += [
                f"{shlex.join(cmd.argv)} in {cmd.cwd} on {host}: {r.why()} (log {logs[host]})"
                for host, r in results.items()
                if not r.ok
            ]
            if cancel.signum is not None:
                raise Interrupted(cancel.signum)
    if failed:
        raise DeployError(
            "clean: stopping the cloud failed; nothing was removed:\n  " + "\n  ".join(failed)
        )


def remove_run(session: Session, logs: bool = False, trees: bool = False) -> list[str]:
    """Remove the run's state and GRENADE_DIR (and logs, trees when asked)."""
    paths = session.paths
    doomed = [paths.save_dir, paths.grenade_dir]
    if trees:
        doomed += [
            paths.base_release_dir,
            paths.target_release_dir,
            paths.plugin_root,
            paths.stack_root / "data",
        ]
    if logs:
        session.close_log()
        doomed.append(paths.logs_dir)
    root = paths.stack_root.resolve()
    removed = []
    for path in doomed:
        # only what this run made under its stack_root, whatever the config says
        if path.exists() and path.resolve().is_relative_to(root) and path.resolve() != root:
            shutil.rmtree(path)
            removed.append(str(path))
    return removed


def clean(session: Session, logs: bool = False, trees: bool = False) -> None:
    stop_cloud(session)
    removed = remove_run(session, logs=logs, trees=trees)
    session.console.write("clean: removed " + (", ".join(removed) or "nothing") + "\n")
