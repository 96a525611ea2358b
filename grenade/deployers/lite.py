"""The lite deployer: the embedded default, a real upgrade on one ordinary machine.

The lite devstack tree (``devstack_trees/lite/``) deploys REAL keystone and placement
from PyPI into one virtualenv per release, runs them as supervised processes on a
private PostgreSQL cluster, and provides the devstack files and functions grenade
plugins source. This module turns that tree into something grenade can check out, and
drives it:

* ``build_repo(dest)`` builds a local bare git repository with one branch per
  supported release (``stable/2025.1`` ... ``master``). Each branch is one commit of
  the tree's files plus ``RELEASE`` (read by the tree's ``stackrc``) and only that
  release's ``releases/<X>/`` data. Author, committer and dates are fixed, so the same
  source always gives the same SHAs, and rebuilding an unchanged repository only
  rehashes a few dozen small files.
* ``lock_release(release, out)`` regenerates a release's ``requirements.lock`` from its
  ``requirements.in`` with ``uv pip compile`` against PyPI (no upper-constraints here:
  the ``.in`` files pin the series' service versions plus the minimal extra pins the
  reference measured, ``oslo.policy<6`` up to 2026.1 and ``oslo.db<18`` for 2025.1).
* ``LiteDeployer``: ``stack`` runs the base tree's ``stack.sh``; ``unstack`` runs the
  target's then the base's ``unstack.sh`` (services, then the PostgreSQL cluster);
  ``prepare`` checks the machine and writes each tree's ``local.conf`` with the devstack
  deployer's renderer (``render_local_conf``), the lite layout as its template;
  ``versions`` reads which services a tree has from its ``lib/<service>`` headers
  (``# lite-service: NAME DISTRIBUTION``, see the tree's README, "Adding a service").

Run directory (see the tree's README): ``<stack_root>/old|new/devstack`` (trees),
``old|new/venv`` (release venvs), ``old|new/logs`` (service logs), ``data/`` (shared:
``etc/``, ``postgres/``, ``lite.env`` with the ports stack.sh chose).

Command line (for maintainers)::

    python -m grenade.deployers.lite lock [RELEASE...]     regenerate lock files
    python -m grenade.deployers.lite build-repo DEST       build the branches repo
"""

from __future__ import annotations

import argparse
import grp
import importlib.metadata
import io
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import git
from git.index import IndexFile
from git.index.typ import BaseIndexEntry
from git.objects.commit import Commit
from gitdb.base import IStream

from grenade import REPO_DIR
from grenade.deployers import Command, DeployContext
from grenade.deployers.devstack import (
    LAYOUT,
    capture_tree_config,
    orig_path,
    render_local_conf,
    write_local_conf,
)
from grenade.errors import DeployError

TREE_DIR = REPO_DIR / "devstack_trees" / "lite"

# Branch of the lite repository -> the release it deploys.
BRANCHES: dict[str, str] = {
    "stable/2025.1": "2025.1",
    "stable/2025.2": "2025.2",
    "stable/2026.1": "2026.1",
    "master": "2026.2",
}
# Commit dates (the series' release months): fixed, so SHAs are reproducible.
RELEASE_DATES: dict[str, str] = {
    "2025.1": "2025-04-02T12:00:00+00:00",
    "2025.2": "2025-10-01T12:00:00+00:00",
    "2026.1": "2026-04-01T12:00:00+00:00",
    "2026.2": "2026-10-01T12:00:00+00:00",
}
# The oldest Python each release's lock and services accept.
MIN_PYTHON: dict[str, tuple[int, int]] = {
    "2025.1": (3, 10),
    "2025.2": (3, 10),
    "2026.1": (3, 10),
    "2026.2": (3, 11),
}
LOCK_PYTHON = "3.11"
AUTHOR = git.Actor("grenade lite tree", "grenade-lite@localhost")
REPO_NAME = "lite-devstack.git"

# Never part of a branch: what stack.sh, grenade or a local run leave in the tree.
_SKIP_NAMES = {"__pycache__", "local.conf", "localrc", ".localrc.auto", "RELEASE", ".stackenv"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".log")


# --- the branches repository ----------------------------------------------------------


def tree_files(source: Path = TREE_DIR) -> Iterator[tuple[str, bytes, int]]:
    """(path, content, git mode) of every file of the tree outside ``releases/``.

    Symbolic links are stored as the files they point to (a branch is self-contained).
    """
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if rel.parts[0] == "releases" or any(p in _SKIP_NAMES for p in rel.parts):
            continue
        if path.name.endswith(_SKIP_SUFFIXES) or not path.is_file():
            continue
        executable = os.stat(path).st_mode & stat.S_IXUSR
        yield rel.as_posix(), path.read_bytes(), 0o100755 if executable else 0o100644


def release_files(release: str, source: Path = TREE_DIR) -> Iterator[tuple[str, bytes, int]]:
    """The files of one release's data directory, plus the RELEASE marker."""
    rel_dir = source / "releases" / release
    if not rel_dir.is_dir():
        raise DeployError(f"lite tree has no releases/{release}/ ({rel_dir})")
    for path in sorted(rel_dir.iterdir()):
        if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES):
            yield f"releases/{release}/{path.name}", path.read_bytes(), 0o100644
    yield "RELEASE", f"{release}\n".encode(), 0o100644


def _store_blob(repo: git.Repo, data: bytes) -> bytes:
    return repo.odb.store(IStream(git.Blob.type, len(data), io.BytesIO(data))).binsha


def _branch_commit(
    repo: git.Repo, branch: str, release: str, common: list[tuple[str, bytes, int]], source: Path
) -> Commit:
    files = sorted([*common, *release_files(release, source)])
    entries = [
        BaseIndexEntry((mode, _store_blob(repo, data), 0, path)) for path, data, mode in files
    ]
    with tempfile.TemporaryDirectory() as tmp:
        index = IndexFile(repo, file_path=os.path.join(tmp, "index"))
        index.add(entries, write=False)
        tree = index.write_tree()
    date = datetime.fromisoformat(RELEASE_DATES[release])
    message = (
        f"lite devstack tree for OpenStack {release} ({branch})\n\n"
        f"Built by grenade.deployers.lite.build_repo from devstack_trees/lite.\n"
    )
    return Commit.create_from_tree(
        repo,
        tree,
        message,
        parent_commits=[],
        head=False,
        author=AUTHOR,
        committer=AUTHOR,
        author_date=date,
        commit_date=date,
    )


def build_repo(dest: Path, source: Path = TREE_DIR) -> Path:
    """Build (or refresh) the bare repository of the lite tree's release branches.

    Same source, same SHAs: every branch is a single root commit with fixed author,
    committer and dates. Branches whose commit is unchanged are left alone; ``HEAD``
    names ``master``. Returns ``dest``.
    """
    dest = Path(dest).absolute()
    if (dest / "HEAD").is_file():
        repo = git.Repo(dest)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        repo = git.Repo.init(dest, bare=True)
        with repo.config_writer() as cfg:
            cfg.set_value("gc", "auto", "0")
    common = list(tree_files(source))
    if not common:
        raise DeployError(f"lite tree {source} has no files")
    for branch, release in BRANCHES.items():
        commit = _branch_commit(repo, branch, release, common, source)
        ref = f"refs/heads/{branch}"
        try:
            current = repo.git.rev_parse("--verify", "-q", ref)
        except git.GitCommandError:
            current = ""
        if current != commit.hexsha:
            repo.git.update_ref(ref, commit.hexsha)
    repo.git.symbolic_ref("HEAD", "refs/heads/master")
    return dest


# --- lock files -----------------------------------------------------------------------


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if probe.returncode != 0:
        raise DeployError("uv is needed to lock a release: pip install uv")
    return [sys.executable, "-m", "uv"]


def cache_dir() -> Path:
    """Where downloads survive between runs (uv's cache lives in ``uv/`` below it)."""
    env = os.environ.get("GRENADE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "grenade"


def lock_release(release: str, out_path: Path | None = None, source: Path = TREE_DIR) -> Path:
    """Resolve ``releases/<release>/requirements.in`` from PyPI into a lock file.

    The lock targets CPython ``LOCK_PYTHON`` on this platform; its header names the
    command that regenerates it. Returns the path written.
    """
    rel_dir = source / "releases" / release
    spec = rel_dir / "requirements.in"
    if not spec.is_file():
        raise DeployError(f"no {spec}: add the release's requirements first")
    out = Path(out_path) if out_path else rel_dir / "requirements.lock"
    env = {**os.environ, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(cache_dir() / "uv"))}
    cmd = [
        *_uv(),
        "pip",
        "compile",
        "--quiet",
        "--python-version",
        LOCK_PYTHON,
        "--custom-compile-command",
        f"invoke lock --release {release}",
        "--output-file",
        str(out.absolute()),
        "requirements.in",
    ]
    proc = subprocess.run(cmd, cwd=rel_dir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError(
            f"locking {release} failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    return out


def read_lock(path: Path) -> dict[str, str]:
    """``{normalized name: version}`` of a lock file (``name==version`` lines)."""
    pins: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version or ";" in version:
            raise ValueError(f"{path}: not a pinned requirement: {line!r}")
        pins[name.strip().lower().replace("_", "-").replace(".", "-")] = version.strip()
    return pins


# --- the deployer ---------------------------------------------------------------------

LITE_SIDES = ("base", "target")


def _tree(ctx: DeployContext, side: str) -> Path:
    return ctx.base_devstack_dir if side == "base" else ctx.target_devstack_dir


def _release_of(tree: Path) -> str | None:
    marker = tree / "RELEASE"
    return marker.read_text().strip() if marker.is_file() else None


def _pg_bin_available() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or bool(shutil.which("initdb"))


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


def check_prerequisites(ctx: DeployContext) -> None:
    """Fail early, naming what to install or change, before anything is stacked."""
    problems = []
    releases = [r for r in (_release_of(_tree(ctx, s)) for s in LITE_SIDES) if r]
    need = max((MIN_PYTHON.get(r, (3, 10)) for r in releases), default=(3, 10))
    python = shutil.which("python3")
    if python is None:
        problems.append("python3 is not on PATH")
    else:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if tuple(int(x) for x in out) < need:
            problems.append(
                f"python3 is {'.'.join(out)}; releases {', '.join(releases)} "
                f"need >= {'.'.join(map(str, need))}"
            )
    database = ctx.config.get("database", "postgresql")
    if database not in ("postgresql", "sqlite"):
        problems.append(
            f"config key 'database': the lite tree supports postgresql and sqlite, not {database!r}"
        )
    if database == "postgresql":
        root = os.geteuid() == 0
        if not _pg_bin_available() and not (root and shutil.which("apt-get")):
            problems.append("PostgreSQL is not installed: install the 'postgresql' package")
        if root:
            blocked = _blocked_for("postgres", ctx.stack_root / "data")
            if blocked is not None:
                problems.append(
                    f"PostgreSQL runs as the 'postgres' user, which cannot enter {blocked}: "
                    f"chmod o+x {blocked}, or use a stack_root under a world-traversable "
                    "directory such as /var/tmp"
                )
    if problems:
        raise DeployError("lite deployer prerequisites:\n  " + "\n  ".join(problems))


def lite_layout(ctx: DeployContext, side: str) -> dict[str, object]:
    """The lite layout: the template keys of the lite tree's ``local.conf``."""
    layout: dict[str, object] = {
        "DEST": _tree(ctx, side).parent,
        "DATA_DIR": ctx.stack_root / "data",
        "DATABASE_TYPE": ctx.config.get("database", "postgresql"),
    }
    services = ctx.config.get("enabled_services")
    if services:
        layout["ENABLED_SERVICES"] = ",".join(services) if isinstance(services, list) else services
    return layout


def render_lite_local_conf(ctx: DeployContext, side: str, orig: str = "") -> str:
    """A side's ``local.conf``: the devstack deployer's renderer with the lite layout
    as its template (then the tree's own configuration, the run's ``localrc``, plugin
    lines; every value quoted, plugin meta-sections after the localrc section)."""
    return render_local_conf(
        ctx, side, orig, template=(LAYOUT,), layout=lite_layout(ctx, side), deployer="lite"
    )


# ``# lite-service: NAME DISTRIBUTION`` in a lib's leading comment block: lib/NAME is a
# service stack.sh deploys, from the PyPI distribution DISTRIBUTION (the tree's
# lib/stack reads the same line: keep the two patterns alike).
SERVICE_HEADER = re.compile(r"#[ \t]*lite-service:[ \t]+([a-z0-9_]+)[ \t]+(\S+)[ \t]*")


def tree_services(tree: Path) -> dict[str, str]:
    """``{service: distribution}`` of a lite tree's service libs, in lib name order."""
    services: dict[str, str] = {}
    lib = tree / "lib"
    for path in sorted(lib.iterdir()) if lib.is_dir() else []:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.strip() and not line.startswith("#"):
                break  # past the leading comment block
            match = SERVICE_HEADER.fullmatch(line)
            if match:
                if match.group(1) != path.name:
                    raise DeployError(
                        f"{path} declares lite-service {match.group(1)}: "
                        f"a service lib must be named lib/{match.group(1)}"
                    )
                services[match.group(1)] = match.group(2)
                break
    return services


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _installed_version(venv: Path, dist: str) -> str | None:
    """The version of `dist` installed in `venv`, read from its metadata."""
    for site in venv.glob("lib/python3*/site-packages"):
        for found in importlib.metadata.distributions(path=[str(site)]):
            if _normalize(found.metadata["Name"] or "") == _normalize(dist):
                return found.version
    return None


class LiteDeployer:
    """Stacks the base release with the lite tree's ``stack.sh``."""

    name = "lite"

    def default_repo(self, paths: object) -> str:
        """The repository trees are cloned from when the config names none."""
        root = Path(getattr(paths, "cache_dir", cache_dir()))
        return str(build_repo(root / REPO_NAME))

    def prepare(self, ctx: DeployContext) -> None:
        check_prerequisites(ctx)
        for side in LITE_SIDES:
            tree = _tree(ctx, side)
            if not (tree / "stackrc").is_file():
                continue
            orig = capture_tree_config(tree, orig_path(ctx, side))
            write_local_conf(tree, render_lite_local_conf(ctx, side, orig))

    def stack(self, ctx: DeployContext) -> Command | None:
        return Command(
            argv=["bash", "./stack.sh"], cwd=ctx.base_devstack_dir, env=self.hook_env(ctx)
        )

    def unstack(self, ctx: DeployContext) -> list[Command]:
        commands = []
        for side in ("target", "base"):
            tree = _tree(ctx, side)
            if (tree / "unstack.sh").is_file():
                commands.append(
                    Command(argv=["bash", "./unstack.sh"], cwd=tree, env=self.hook_env(ctx))
                )
        return commands

    def versions(self, ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
        """Each service's version in the base and the target venv (None: not installed).

        The services and their distributions are the trees' ``lib/<service>`` headers
        (the target's declaration wins when both trees name a service).
        """
        dists: dict[str, str] = {}
        for side in LITE_SIDES:
            dists.update(tree_services(_tree(ctx, side)))
        venvs = [_tree(ctx, side).parent / "venv" for side in LITE_SIDES]
        return {
            service: (_installed_version(venvs[0], dist), _installed_version(venvs[1], dist))
            for service, dist in dists.items()
        }

    def hook_env(self, ctx: DeployContext) -> dict[str, str]:
        # Both trees (stack.sh and every upgrade.sh) share one uv cache across runs.
        return {"GRENADE_CACHE_DIR": str(cache_dir())}


# --- command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grenade.deployers.lite")
    sub = parser.add_subparsers(dest="command", required=True)
    lock = sub.add_parser("lock", help="regenerate releases/<X>/requirements.lock")
    lock.add_argument("releases", nargs="*", default=sorted(set(BRANCHES.values())))
    build = sub.add_parser("build-repo", help="build the release branches repository")
    build.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            for release in args.releases:
                started = datetime.now()
                out = lock_release(release)
                took = (datetime.now() - started).total_seconds()
                print(f"{release}: {out} ({len(read_lock(out))} pins, {took:.1f}s)")
        else:
            dest = build_repo(args.dest)
            repo = git.Repo(dest)
            for branch in BRANCHES:
                print(f"{repo.git.rev_parse(branch)} {branch}")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
