"""The lite tree's branches repository: one branch per supported release.

``build_repo(dest)`` builds a local bare git repository with one branch per release
(``stable/2025.1`` ... ``master``). Each branch is one commit of the tree's files plus
``RELEASE`` (read by the tree's ``stackrc``) and only that release's ``releases/<X>/``
data. Author, committer and dates are fixed, so the same source always gives the same
SHAs, and rebuilding an unchanged repository only rehashes a few dozen small files.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import git
from git.index import IndexFile
from git.index.typ import BaseIndexEntry
from git.objects.commit import Commit
from gitdb.base import IStream

from grenade.errors import DeployError

from .tree import BRANCHES, TREE_DIR

# Commit dates (the series' release months): fixed, so SHAs are reproducible.
RELEASE_DATES: dict[str, str] = {
    "2025.1": "2025-04-02T12:00:00+00:00",
    "2025.2": "2025-10-01T12:00:00+00:00",
    "2026.1": "2026-04-01T12:00:00+00:00",
    "2026.2": "2026-10-01T12:00:00+00:00",
}
AUTHOR = git.Actor("grenade lite tree", "grenade-lite@localhost")
REPO_NAME = "lite-devstack.git"

# Never part of a branch: what stack.sh, grenade or a local run leave in the tree.
_SKIP_NAMES = {"__pycache__", "local.conf", "localrc", ".localrc.auto", "RELEASE", ".stackenv"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".log")


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
    # The message is part of every SHA: changing it changes every branch's commit.
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
