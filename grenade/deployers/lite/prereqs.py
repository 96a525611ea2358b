"""What the machine needs before the lite deployer stacks anything: a recent enough
Python, a database the tree supports, its server (or the means to install it) and, for
PostgreSQL, a stack_root its user can reach.

Nothing is installed here: the tree's ``stack.sh`` installs the PostgreSQL or MariaDB
package itself when it runs as root on an apt machine (MariaDB with a ``policy-rc.d``
that keeps the package's own service from starting: the tree runs a private server),
so that machine passes the check. A deployer describes; the tree acts.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from grenade.errors import DeployError

from .. import SIDES, DeployContext
from .tree import release_of

# The oldest Python each release's lock and services accept.
MIN_PYTHON: dict[str, tuple[int, int]] = {
    "2025.1": (3, 10),
    "2025.2": (3, 10),
    "2026.1": (3, 10),
    "2026.2": (3, 11),
}
DATABASES = ("postgresql", "mysql", "sqlite")


def _pg_bin_available() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or bool(shutil.which("initdb"))


def _mariadb_bin_available() -> bool:
    return any(
        shutil.which(name, path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))
        for name in ("mariadbd", "mysqld")
    )


def _blocked_for(user: str, path: Path) -> Path | None:
    """The first directory from / to ``path`` that ``user`` cannot enter, if any.

    Why two checks: this one runs at setup, before trees, venvs or anything else are
    made, so a stack_root PostgreSQL cannot reach fails in seconds with the fix named.
    It reads mode bits only. The authority is ``_pg_check_traversable`` in the tree's
    ``lib/databases/postgresql``, run by ``stack.sh`` as the ``postgres`` user itself
    (so ACLs, mounts and changes made since setup count), which also protects a
    ``stack.sh`` run without grenade. Both must name the same directory.
    """
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return None  # the package creates the user; stack.sh checks again then
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    current = Path("/")
    for part in path.absolute().parts[1:]:
        current = current / part
        if not current.exists():
            return None  # created later with our umask
        st = current.stat()
        if st.st_uid == account.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return current
    return None


def _python_problems(ctx: DeployContext) -> list[str]:
    releases = [r for r in (release_of(ctx.tree(s)) for s in SIDES) if r]
    need = max((MIN_PYTHON.get(r, (3, 10)) for r in releases), default=(3, 10))
    python = shutil.which("python3")
    if python is None:
        return ["python3 is not on PATH"]
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if tuple(int(x) for x in out) < need:
        return [
            f"python3 is {'.'.join(out)}; releases {', '.join(releases)} "
            f"need >= {'.'.join(map(str, need))}"
        ]
    return []


def _database_problems(ctx: DeployContext) -> list[str]:
    database = ctx.config.database
    if database not in DATABASES:
        return [
            f"config key 'database': the lite tree supports {', '.join(DATABASES)}, "
            f"not {database!r}"
        ]
    root = os.geteuid() == 0
    can_install = root and bool(shutil.which("apt-get"))
    if database == "mysql":
        if not _mariadb_bin_available() and not can_install:
            return ["MariaDB is not installed: install the 'mariadb-server' package"]
        return []
    if database != "postgresql":
        return []
    problems = []
    if not _pg_bin_available() and not can_install:
        problems.append("PostgreSQL is not installed: install the 'postgresql' package")
    if root:
        blocked = _blocked_for("postgres", ctx.stack_root / "data")
        if blocked is not None:
            problems.append(
                f"PostgreSQL runs as the 'postgres' user, which cannot enter {blocked}: "
                f"chmod o+x {blocked}, or use a stack_root under a world-traversable "
                "directory such as /var/tmp"
            )
    return problems


def check_prerequisites(ctx: DeployContext) -> None:
    """Fail early, naming what to install or change, before anything is stacked."""
    problems = _python_problems(ctx) + _database_problems(ctx)
    if problems:
        raise DeployError("lite deployer prerequisites:\n  " + "\n  ".join(problems))
