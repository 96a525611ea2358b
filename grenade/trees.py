"""Devstack trees and plugin repositories: real git checkouts prepared with GitPython.

A *tree* is a checkout of a repository (a URL or a local path) at a branch, a tag or a
commit. Preparing one is idempotent: an existing checkout is fetched and moved, never
cloned again, and a dirty checkout is refused rather than silently reset.

Object cache
------------
When ``cache_dir`` is given, each repository URL gets one bare *mirror* under it
(``<cache_dir>/<name>-<hash of url>.git``) holding its branches and tags. A tree borrows
the mirror's objects through git's alternates (``.git/objects/info/alternates``) and
fetches its refs from the mirror, so preparing a second tree of the same repository
copies no objects, and re-preparing an up-to-date tree costs two local fetches. The
mirror never garbage-collects (``gc.auto=0``) because trees depend on its objects.
The tree's ``origin`` remote still names the real repository. Release names (which
release a branch is) are grenade.releases'.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import git

from grenade.errors import TreeError
from grenade.files import locked
from grenade.releases import release_name

# Never let git ask for credentials on a terminal: an unreachable repository must fail.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}
_BRANCH_REFSPECS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
_MIRROR_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_HEX = re.compile(r"[0-9a-fA-F]{4,40}")
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a directory under PLUGIN_DIR
_MAX_LISTED = 10
_HASHED_SIZE = 1 << 20  # local_changes hashes files up to this size


# --- data ---------------------------------------------------------------------------


@dataclass
class TreeSpec:
    """What to check out: ``ref`` (a tag or commit) when given, else ``branch``."""

    repo: str
    branch: str
    ref: str | None = None
    release: str | None = None


@dataclass
class PreparedTree:
    """A checkout ready to use; ``sha`` is the commit HEAD points at."""

    path: Path
    repo: str
    branch: str
    ref: str | None
    sha: str
    release: str


# --- preparing trees ----------------------------------------------------------------


def is_url(repo: str) -> bool:
    """True for a URL (`https://...`, `user@host:path`), False for a local path."""
    return "://" in repo or bool(_SCP_LIKE.match(repo))


def normalize_repo(repo: str, base: Path | None = None) -> str:
    """A repository location as stored: URLs unchanged, local paths made absolute
    (a relative one against ``base``, the current directory by default)."""
    if is_url(repo):
        return repo
    return str((base or Path.cwd()).joinpath(Path(repo).expanduser()).absolute())


def mirror_path(repo: str, cache_dir: Path) -> Path:
    """Where the bare mirror of ``repo`` lives under ``cache_dir``."""
    url = normalize_repo(repo)
    base = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    base = re.sub(r"[^\w.-]", "_", base) or "repo"
    digest = hashlib.sha1(url.encode()).hexdigest()[:12]
    return Path(cache_dir).absolute() / f"{base}-{digest}.git"


def prepare_tree(
    spec: TreeSpec, dest: Path, cache_dir: Path | None, force: bool = False
) -> PreparedTree:
    """Check out ``spec`` into ``dest`` and return where HEAD ended up.

    - ``dest`` missing or empty: a new checkout (through the mirror when ``cache_dir``).
    - ``dest`` a checkout: fetched and moved to the wanted commit, never re-cloned.
    - A branch is checked out as a local branch tracking ``origin/<branch>``; a tag or
      commit as a detached HEAD. A ``branch`` that names no branch but a tag or commit
      is checked out detached, as devstack's ``git_clone`` does.
    - Modified or untracked (not ignored) files, or commits on the local branch that
      upstream does not have, raise TreeError unless ``force``, which discards them.
    - An unknown ref or an unreachable repository raises TreeError naming both; so
      does every other failure of git or of the disk (a full one), with git's words.
    """
    dest = Path(dest).absolute()
    try:
        return _prepare_tree(spec, dest, cache_dir, force)
    except (git.GitError, OSError) as exc:  # TreeError is neither: it passes as it is
        if isinstance(exc, git.GitCommandError):
            why = f"git {' '.join(exc.command[1:2])} failed: {_git_error(exc)}"
        elif isinstance(exc, OSError) and exc.strerror:
            why = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        else:
            why = str(exc)
        raise TreeError(f"{dest} ({spec.repo}): {why}") from exc


def _prepare_tree(spec: TreeSpec, dest: Path, cache_dir: Path | None, force: bool) -> PreparedTree:
    url = normalize_repo(spec.repo)
    wanted = f"ref {spec.ref!r}" if spec.ref else f"branch {spec.branch!r}"
    existed = dest.exists()
    repo, created = _open_or_init(dest, url)
    try:
        if not created:
            _check_clean(repo, dest, force)
        mirror = _update_mirror(url, Path(cache_dir), wanted) if cache_dir else None
        if mirror is not None and mirror.git_dir not in _alternate_owners(repo):
            repo.alternates = [*repo.alternates, str(Path(mirror.git_dir) / "objects")]
        previous = _rev(repo, f"refs/remotes/origin/{spec.branch}")
        source = str(mirror.git_dir) if mirror is not None else "origin"
        _git(repo, url, wanted, "fetch", "-q", "--no-tags", source, *_BRANCH_REFSPECS)
        branch, sha = _resolve(repo, mirror, spec, url, wanted)
        if branch is not None:
            _check_local_branch(repo, dest, branch, previous, force)
            _git(
                repo,
                url,
                wanted,
                "checkout",
                "-q",
                *_force(force),
                "-B",
                branch,
                "--track",
                f"origin/{branch}",
            )
        else:
            _git(repo, url, wanted, "checkout", "-q", *_force(force), "--detach", sha)
        head = repo.head.commit.hexsha
    except BaseException:
        if created:
            _discard(dest, remove_dir=not existed)
        raise
    return PreparedTree(
        path=dest,
        repo=url,
        branch=spec.branch,
        ref=spec.ref,
        sha=head,
        release=release_name(spec.branch, spec.release),
    )


def prepare_plugin(
    name: str,
    url: str,
    branch: str,
    plugin_root: Path,
    cache_dir: Path | None,
    force: bool = False,
) -> PreparedTree:
    """Check out plugin ``name`` into ``plugin_root/name`` (the original's ``GITDIR[name]``).

    ``branch`` may also be a tag or commit, as in ``enable_grenade_plugin``; the caller
    supplies the default (the target branch) when pluginrc names none.
    """
    if not PLUGIN_NAME.fullmatch(name):
        raise TreeError(f"plugin name {name!r} is not a plain directory name")
    return prepare_tree(
        TreeSpec(repo=url, branch=branch), Path(plugin_root) / name, cache_dir, force
    )


def tree_has_devstack_functions(path: Path) -> bool:
    """True when ``path`` looks like a devstack tree: ``functions`` and ``functions-common``."""
    path = Path(path)
    return (path / "functions").is_file() and (path / "functions-common").is_file()


def tree_sha(path: Path) -> str:
    """The commit HEAD of the checkout at ``path`` points at (for resume fingerprints)."""
    try:
        return git.Repo(path).head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError) as exc:
        raise TreeError(f"{path}: not a git checkout with a commit ({exc})") from exc


def local_changes(path: Path) -> dict[str, str] | None:
    """Each tracked file of the checkout at ``path`` that differs from HEAD (modified,
    staged or deleted), with a digest of its content (size and mtime for a big one);
    None when ``path`` is not a checkout. Recorded at setup, it shows a later edit by
    hand even where HEAD did not move. Untracked files are not edits: what stacking
    and hooks leave in a checkout (an egg-info, a .stackenv) must not stop a resume."""
    try:
        with git.Repo(path) as repo:
            files = _dirty_files(repo, untracked=False)
    except (git.GitError, OSError):
        return None
    changes = {}
    for name in files:
        file = Path(path) / name
        try:
            st = file.lstat()
            small = stat.S_ISREG(st.st_mode) and st.st_size <= _HASHED_SIZE
            digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16] if small else None
        except OSError:
            changes[name] = "deleted"
            continue
        changes[name] = digest or f"{st.st_size} bytes, mtime {st.st_mtime_ns}"
    return changes


# --- internals ----------------------------------------------------------------------


def _force(force: bool) -> tuple[str, ...]:
    return ("-f",) if force else ()


def _git(repo: git.Repo, url: str, wanted: str, *args: str) -> str:
    """Run one git command in ``repo``; failures become TreeError naming repo and ref."""
    try:
        return repo.git.execute(["git", *args], env=_GIT_ENV)
    except git.GitCommandError as exc:
        raise TreeError(f"{url} ({wanted}): git {args[0]} failed: {_git_error(exc)}") from exc


def _git_error(exc: git.GitCommandError) -> str:
    """git's own complaint, one line: its fatal/error lines, else its last line."""
    text = str(exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return "; ".join(errors or lines[-1:]) or f"exit status {exc.status}"


def _rev(repo: git.Repo, name: str) -> str | None:
    """The commit ``name`` resolves to in ``repo``, or None."""
    try:
        return repo.git.rev_parse("--verify", "-q", f"{name}^{{commit}}") or None
    except git.GitCommandError:
        return None


def _open_or_init(dest: Path, url: str) -> tuple[git.Repo, bool]:
    """Open the checkout at ``dest`` (pointing origin at ``url``) or start a new one."""
    if (dest / ".git").exists():
        try:
            repo = git.Repo(dest)
        except git.InvalidGitRepositoryError as exc:
            raise TreeError(f"{dest}: broken git checkout ({exc})") from exc
        if "origin" not in [remote.name for remote in repo.remotes]:
            repo.create_remote("origin", url)
        elif repo.remotes.origin.url != url:
            repo.remotes.origin.set_url(url)
        return repo, False
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise TreeError(f"{dest}: exists and is not a git checkout; move it away first")
    existed = dest.exists()
    try:
        repo = git.Repo.init(dest)
        repo.create_remote("origin", url)
    except BaseException:  # a full disk: no half-made .git to trip over next time
        _discard(dest, remove_dir=not existed)
        raise
    return repo, True


def _discard(dest: Path, remove_dir: bool) -> None:
    """Undo a checkout this call started (a failed first clone leaves nothing behind)."""
    shutil.rmtree(dest / ".git", ignore_errors=True)
    if remove_dir and dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()


def _dirty_files(repo: git.Repo, untracked: bool = True) -> list[str]:
    out = repo.git.status(
        "--porcelain=v1", "-z", f"--untracked-files={'all' if untracked else 'no'}"
    )
    entries = out.split("\0")
    files: list[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        files.append(entry[3:])
        if entry[0] in "RC":  # a rename/copy is followed by its source path
            i += 1
    return files


def _check_clean(repo: git.Repo, dest: Path, force: bool) -> None:
    if not repo.head.is_valid():
        return  # nothing checked out yet (an interrupted first preparation)
    files = _dirty_files(repo)
    if not files:
        return
    if not force:
        listed = ", ".join(files[:_MAX_LISTED])
        more = f" and {len(files) - _MAX_LISTED} more" if len(files) > _MAX_LISTED else ""
        raise TreeError(
            f"{dest}: checkout has local changes ({listed}{more}); "
            "commit or remove them, or prepare with force to discard them"
        )
    repo.git.reset("-q", "--hard")
    repo.git.clean("-q", "-f", "-d")


def _check_local_branch(
    repo: git.Repo, dest: Path, branch: str, previous: str | None, force: bool
) -> None:
    """Refuse to move a local branch that carries commits upstream does not have."""
    local = _rev(repo, f"refs/heads/{branch}")
    upstream = _rev(repo, f"refs/remotes/origin/{branch}")
    if force or local is None or local in (previous, upstream):
        return
    if upstream is not None and repo.is_ancestor(repo.commit(local), repo.commit(upstream)):
        return
    raise TreeError(
        f"{dest}: local branch {branch!r} is at {local[:12]}, which origin/{branch} does "
        "not contain; push or remove those commits, or prepare with force to reset it"
    )


def _alternate_owners(repo: git.Repo) -> list[str]:
    return [str(Path(alt).parent) for alt in repo.alternates]


def _update_mirror(url: str, cache_dir: Path, wanted: str) -> git.Repo:
    """Create or refresh the bare mirror of ``url`` and return it."""
    path = mirror_path(url, cache_dir)
    # processes preparing trees at the same time update a mirror one by one
    with locked(path.with_suffix(".lock")):
        created = not path.exists()
        if created:
            mirror = git.Repo.init(path, bare=True)
            mirror.create_remote("origin", url)
            with mirror.config_writer() as config:
                # Trees borrow these objects through alternates: never prune them.
                config.set_value("gc", "auto", "0")
        else:
            mirror = git.Repo(path)
        try:
            _git(mirror, url, wanted, "fetch", "-q", "--prune", "origin", *_MIRROR_REFSPECS)
        except TreeError:
            if created:
                shutil.rmtree(path, ignore_errors=True)
            raise
    return mirror


def _resolve(
    repo: git.Repo, mirror: git.Repo | None, spec: TreeSpec, url: str, wanted: str
) -> tuple[str | None, str]:
    """(branch to track or None for a detached HEAD, commit) for ``spec`` in ``repo``."""
    if spec.ref is None:
        sha = _rev(repo, f"refs/remotes/origin/{spec.branch}")
        if sha is not None:
            return spec.branch, sha
    ref = spec.ref or spec.branch
    source = mirror if mirror is not None else repo
    if ref.startswith("refs/"):
        # A ref outside branches and tags (a Gerrit change): fetch it by name.
        _git(source, url, wanted, "fetch", "-q", "origin", f"+{ref}:{ref}")
        sha = _rev(source, ref)
        if sha is not None:
            return None, sha
    for name in (f"refs/tags/{ref}", f"refs/remotes/origin/{ref}"):
        sha = _rev(repo, name)
        if sha is not None:
            return None, sha
    if _HEX.fullmatch(ref):
        sha = _rev(repo, ref)
        if sha is None and _FULL_SHA.fullmatch(ref):
            # Not on any branch or tag: servers may still serve it by id. Pin it so the
            # mirror keeps it reachable.
            with contextlib.suppress(TreeError):
                _git(source, url, wanted, "fetch", "-q", "origin", f"{ref}:refs/grenade/pins/{ref}")
            sha = _rev(repo, ref)
        if sha is not None:
            return None, sha
    raise TreeError(f"{url}: unknown {wanted}: no such branch, tag or commit")
