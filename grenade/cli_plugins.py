"""The plugin author's tasks: `grenade lint` and `grenade new-plugin`.

Thin, like the run's tasks in `grenade.cli` (which adds them to `ns`); they need no run
configuration and no stack_root. invoke gives a task one value per positional argument,
hence `lint PATH --also PATH...` and `new-plugin NAME --dir DIR`.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit, task

from grenade.errors import GrenadeError
from grenade.lint import has_errors, lint_paths
from grenade.skeleton import write_skeleton


@task(
    positional=["path"],
    iterable=["also"],
    help={
        "path": "a plugin folder (NN_name/ or a repo's devstack/upgrade/), a repo, "
        "or a projects dir",
        "also": "another folder to check (repeatable)",
        "services": "services to enable while settings are sourced (comma-separated; "
        "the embedded default's and the plugin's name always are)",
    },
)
def lint(c: Context, path: str, also: list[str] | None = None, services: str = "") -> None:
    """Check plugin folders: names, releases, settings, hooks; exit 1 on errors."""
    found = lint_paths([Path(p) for p in (path, *(also or []))], services=services)
    for finding in found:
        print(finding)
    errors = sum(f.severity == "error" for f in found)
    if has_errors(found):
        raise Exit(f"grenade lint: {errors} error(s), {len(found) - errors} warning(s)", code=1)


@task(
    name="new-plugin",
    positional=["name"],
    help={
        "name": "the project the plugin upgrades (a word: a-z, 0-9, '_', '-')",
        "dir": "where to write devstack/upgrade/ (default ./NAME)",
    },
)
def new_plugin(c: Context, name: str, dir: str | None = None) -> None:
    """Write a plugin skeleton (settings, upgrade.sh, shutdown.sh, resources.sh) that
    passes lint and runs as it is."""
    try:
        written = write_skeleton(name, Path(dir if dir is not None else name))
    except GrenadeError as exc:
        raise Exit(f"grenade: {exc}", code=exc.exit_code) from None
    for path in written:
        print(path)
