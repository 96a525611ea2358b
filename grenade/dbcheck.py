"""What save-state will need, checked at setup: the clients of the registered databases.

save-state (`save_data` in grenade/shell/functions) dumps DATABASES_TO_SAVE with the
client programs of the DATABASE_TYPE a tree's stackrc names, found on the PATH of
the hook. Without them it failed long after the base cloud was stacked. Setup asks
bash the same questions in the same environment: the type from
`_grenade_read_db_config`, the missing programs from `_grenade_missing_db_clients`
(inc/upgrade), after sourcing grenaderc and functions as save-state does (they may
change PATH), on each host of the controller group (where save-state runs),
through the host interface. Both trees are asked: save-state runs on the base
before the upgrade and on the target after it.

A deployer that stacks the base itself (devstack, lite) installs the database and
its clients then (lite's stack.sh installs PostgreSQL as root; devstack installs
MySQL), so for it a client missing at setup is a warning; with nothing to install
them (the external deployer: the cloud exists) it is an error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import ConfigError
from .hosts import CONTROLLER, Cancel
from .record import SetupRecord
from .runner import run_logged
from .session import Session

# Arguments: the trees. Output after the marker line, NUL-separated: per tree its
# DATABASE_TYPE and the missing programs (space-separated), then the PATH they were
# looked up on (what the library may say on the way comes before the marker).
MARKER = "--- grenade dbcheck ---"
_ASK = """
GRENADE_NO_EXIT_TRAP=1
source "$GRENADE_DIR/grenaderc" >/dev/null || exit 3
source "$GRENADE_DIR/functions" >/dev/null || exit 3
for dir in "$@"; do
    _grenade_read_db_config "$dir"
    _grenade_missing_db_clients "${_GRENADE_DB_CONFIG[DATABASE_TYPE]}"
    answers+=("${_GRENADE_DB_CONFIG[DATABASE_TYPE]}" "${_GRENADE_DB_MISSING[*]}")
done
printf '\\n%s\\n' "$MARKER"
printf '%s\\0' "${answers[@]}" "$PATH"
"""


def hook_env(record: SetupRecord, session: Session) -> dict[str, str]:
    """The environment save-state gets (`Session.step_env` of its step), before the
    setup record is in the run state: grenade's, the settings' exports, the
    deployer's (a host adds them to its own environment)."""
    settings = record.settings
    return {
        **session.base_env(),
        **settings.exports,
        **session.deployer.hook_env(session.deploy_context(record)),
        "DATABASES_TO_SAVE": " ".join(settings.databases),
        "UPGRADE_PROJECTS": " ".join(p.name for p in settings.projects),
        "ENABLED_SERVICES": record.enabled_services,
        "TOP_DIR": str(session.paths.base_devstack),
    }


def ask_bash(
    session: Session, env: dict[str, str], trees: list[Path]
) -> dict[str, tuple[list[tuple[str, list[str]]], str]]:
    """Per host of the controller group: ([(DATABASE_TYPE, missing programs)] per
    tree, PATH), as save-state sees them there."""
    group = session.inventory.group(CONTROLLER)
    argv = ["bash", "-c", _ASK, "dbcheck", *map(str, trees)]
    with tempfile.TemporaryDirectory(prefix=".dbcheck-", dir=session.paths.grenade_dir) as tmp:
        logs = {h: Path(tmp) / f"{h}.log" for h in group.names}
        with Cancel() as cancel:
            results = run_logged(
                group,
                logs,
                argv,
                env={**env, "MARKER": MARKER},
                cwd=session.paths.grenade_dir,
                timeout=120,
                cancel=cancel,
            )
        outputs = {h: logs[h].read_bytes().decode(errors="replace") for h in group.names}
    answers = {}
    for host, result in results.items():
        head, _, tail = outputs[host].partition(f"\n{MARKER}\n")
        fields = tail.split("\0")
        if not result.ok or len(fields) != 2 * len(trees) + 2:
            raise ConfigError(
                f"setup: cannot read DATABASE_TYPE of {', '.join(map(str, trees))} on host "
                f"{host} ({result.why()}): {head.strip()[-500:]}"
            )
        per_tree = [(fields[2 * i], fields[2 * i + 1].split()) for i in range(len(trees))]
        answers[host] = (per_tree, fields[-2])
    return answers


def who_registered(record: SetupRecord) -> str:
    """`alpha (registered by project alpha's settings, FILE), ...`"""
    settings = record.settings
    by_dir = {str(Path(p.dir)): p.name for p in settings.projects}
    parts = []
    for db in settings.databases:
        source = settings.database_sources.get(db)
        if source is None:
            parts.append(f"{db} (set before the settings ran)")
            continue
        project = by_dir.get(str(Path(source).parent))
        whose = f"project {project}'s settings" if project else "settings"
        parts.append(f"{db} (registered by {whose}, {source})")
    return ", ".join(parts)


def check_db_clients(record: SetupRecord, session: Session) -> SetupRecord:
    """The database clients save-state needs are on the hooks' PATH. Nothing written."""
    if not record.settings.databases:
        return record
    trees = [session.paths.base_devstack, session.paths.target_devstack]
    lines = []
    for host, (answers, path) in ask_bash(session, hook_env(record, session), trees).items():
        found: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for tree, (db_type, missing) in zip(trees, answers, strict=True):
            if missing:
                found.setdefault((db_type, tuple(missing)), []).append(str(tree / "stackrc"))
        where = f" on host {host}" if len(session.inventory.group(CONTROLLER).hosts) > 1 else ""
        lines += [
            f"DATABASES_TO_SAVE has {who_registered(record)} and DATABASE_TYPE is {db_type} "
            f"(from {' and '.join(stackrcs)}): save-state needs {', '.join(missing)}; "
            f"not found on PATH{where} ({path})"
            for (db_type, missing), stackrcs in found.items()
        ]
    if not lines:
        return record
    stacks = session.deployer.stack(session.deploy_context(record)) is not None
    if not stacks:
        raise ConfigError("setup: " + "\nsetup: ".join(lines))
    for line in lines:
        session.say(
            f"setup: warning: {line} yet; the {session.deployer.name} deployer's "
            "stack.sh must install them, or save-state will fail"
        )
    return record
