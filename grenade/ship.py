"""What a node gets of the controller's prepared run, and where, and the shipping.

A remote node runs its hooks from its own copies under its stack_root R:

- GRENADE_DIR at R/grenade: the bash library, tools, pluginrc and defaults as the
  controller has them; its localrc rewritten for the node (every controller path
  in it mapped, then the run's layout with the node's paths);
- the base and target devstack trees at the SHAs setup recorded, as `git archive`
  makes them (the tracked files of that commit, no .git), each with a marker file
  ``.grenade-tree`` holding the SHA; a tree that is not a git checkout (no SHA) is
  not shipped: the node brings its own;
- the directory holding each project the node runs hooks of (the parent of the
  project's directory: an in-tree projects dir with its shared files, a plugin's
  ``devstack/``): under R when it is under the controller's stack_root or plugin
  dir (mapped like them), else at R/grenade/projects (the first such directory)
  or R/grenade/projects.N.

Two kinds of items are files rather than directories, made when they are sent
(grenade.nodeconf): ``conf``, a tree's ``local.conf`` and ``.localrc.auto`` for the
node (sent again with its tree), and ``shared``, the files the deployer's stack made
on the controller for every node (sent once they exist). They are written over
what is there, never emptied first.

Each item carries a digest (a tree: its SHA; the others: a hash of what is sent);
the node keeps it in a marker (``.grenade-shipped``), and an item is sent again only
when the digests differ. Everything goes in one gzipped tar stream on the stdin of
one remote command (`SHIP_SCRIPT`): trees and project directories are emptied
first, GRENADE_DIR is written over; markers come last in the stream, so a marker
always describes content that arrived whole. Everything on the node is private to
the SSH user (0700 directories, 0600 files, 0700 executables).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import TreeError
from .pathmap import PathMap
from .rundir import Paths, localrc_lines

CONTROLLER_ID = ".grenade-controller"  # under a stack_root: which controller it is
TREE_MARKER = ".grenade-tree"
SHIP_MARKER = ".grenade-shipped"
FILES_MARKERS = {"conf": ".grenade-conf", "shared": ".grenade-shared"}
REPLACED = ("tree", "projects")  # kinds whose directory is emptied before it arrives
PROJECTS = ("grenade", "projects")  # where projects from outside the stack_root go
SKIP = {".git", "__pycache__", TREE_MARKER, SHIP_MARKER, *FILES_MARKERS.values()}
GIT_TIMEOUT = 300


@dataclass(frozen=True)
class Item:
    """One directory shipped to a node."""

    kind: str  # grenade | tree | projects
    what: str  # for messages: "GRENADE_DIR", "base tree", "projects dir /x"
    source: Path  # on the controller
    dest: str  # on the node, absolute, under its stack_root
    sha: str | None = None  # a tree's recorded SHA
    # conf and shared items: their files now, by path relative to dest
    load: Callable[[], Mapping[str, bytes]] | None = field(default=None, compare=False)

    @property
    def marker(self) -> str:
        name = FILES_MARKERS.get(self.kind) or (TREE_MARKER if self.kind == "tree" else SHIP_MARKER)
        return str(PurePosixPath(self.dest) / name)

    def files(self) -> Mapping[str, bytes]:
        return self.load() if self.load is not None else {}


@dataclass(frozen=True)
class Node:
    """A remote host's side of the run: its stack_root, path map and items."""

    name: str
    root: str
    paths: PathMap
    items: tuple[Item, ...]
    localrc: str  # GRENADE_DIR/localrc as the node gets it

    @property
    def save_dir(self) -> str:
        return str(PurePosixPath(self.root) / "save")

    def relative(self, dest: str) -> str:
        return str(PurePosixPath(dest).relative_to(self.root))


def _under(path: Path, parent: Path) -> bool:
    return path == parent or path.is_relative_to(parent)


def _parents(project_dirs: Sequence[str]) -> list[Path]:
    """The directories holding the projects, each once, in order."""
    return list(dict.fromkeys(Path(d).parent for d in project_dirs))


def node_layout(
    name: str,
    root: str,
    paths: Paths,
    trees: Mapping[str, tuple[str, str | None]],
    project_dirs: Sequence[str],
    every_project_dir: Sequence[str] = (),
) -> Node:
    """The node `name` with stack_root `root`: `trees` maps base/target to the tree's
    path and recorded SHA; `project_dirs` are the directories of the projects whose
    hooks it runs, `every_project_dir` those of the run (in settings order: where
    each goes is the same on every node)."""
    node_root = PurePosixPath(root)
    pairs = [(str(paths.stack_root), str(node_root))]
    if not _under(paths.plugin_root, paths.stack_root):
        pairs.append((str(paths.plugin_root), str(node_root / "plugins")))
    parents = _parents(project_dirs)
    outside = [
        p
        for p in _parents([*every_project_dir, *project_dirs])
        if not any(_under(p, a) for a in (paths.stack_root, paths.plugin_root))
    ]
    for n, parent in enumerate(outside):
        suffix = f".{n}" if n else ""
        pairs.append((str(parent), str(node_root.joinpath(*PROJECTS[:-1], PROJECTS[-1] + suffix))))
    pathmap = PathMap.of(pairs)

    def dest(path: Path) -> str:
        return pathmap.path(path) or str(path)

    items = [Item("grenade", "GRENADE_DIR", paths.grenade_dir, dest(paths.grenade_dir))]
    for side, (path, sha) in trees.items():
        if sha and Path(path).is_dir():
            items.append(Item("tree", f"{side} tree", Path(path), dest(Path(path)), sha))
    for parent in parents:
        if any(_under(parent, i.source) for i in items):
            continue  # shipped with GRENADE_DIR or a tree already
        if any(_under(i.source, parent) for i in items):
            raise TreeError(
                f"{name}: the projects dir {parent} holds the {items[0].what} or a tree "
                "of the run; keep project directories out of the stack_root's run dirs"
            )
        items.append(Item("projects", f"projects dir {parent}", parent, dest(parent)))
    for item in items:
        if not PurePosixPath(item.dest).is_relative_to(node_root):
            raise TreeError(f"{name}: {item.what} would go to {item.dest}, outside {root}")
    return Node(name, root, pathmap, tuple(items), _node_localrc(paths, pathmap))


def _node_localrc(paths: Paths, pathmap: PathMap) -> str:
    """The controller's localrc with its paths mapped, then the run's layout again
    with the node's paths (the last word, as on the controller)."""
    try:
        text = (paths.grenade_dir / "localrc").read_text()
    except FileNotFoundError:
        text = ""
    layout = {
        "STACK_ROOT": paths.stack_root,
        "DATA_DIR": paths.stack_root / "data",
        "BASE_RELEASE_DIR": paths.base_release_dir,
        "TARGET_RELEASE_DIR": paths.target_release_dir,
        "BASE_DEVSTACK_DIR": paths.base_devstack,
        "TARGET_DEVSTACK_DIR": paths.target_devstack,
        "SAVE_DIR": paths.save_dir,
        "PLUGIN_DIR": paths.plugin_root,
    }
    node = {k: pathmap.text(str(v)) for k, v in layout.items()}
    return pathmap.text(text) + "# the node's layout (grenade.ship)\n" + "\n".join(
        localrc_lines(node)
    ) + "\n"  # fmt: skip


# -- what is sent ----------------------------------------------------------------------


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of every directory, file and symlink under `root`, sorted,
    without .git, caches and markers."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        base = Path(dirpath)
        rel = base.relative_to(root)
        if rel != Path("."):
            yield str(rel), base
        for name in sorted(f for f in filenames if f not in SKIP):
            yield str(rel / name) if rel != Path(".") else name, base / name
        # symlinks to directories are listed among dirnames and not followed by walk
        for name in list(dirnames):
            if (base / name).is_symlink():
                dirnames.remove(name)
                yield str(rel / name) if rel != Path(".") else name, base / name


def _content(item: Item, node: Node, rel: str, path: Path) -> bytes:
    if item.kind == "grenade" and rel == "localrc":
        return node.localrc.encode()
    return path.read_bytes()


def digest(item: Item, node: Node) -> str:
    """What the node's marker must say for `item` to be up to date there."""
    if item.sha:
        return item.sha
    h = hashlib.sha256()
    if item.load is not None:
        files = item.files()
        if not files:
            return ""  # nothing to send (yet)
        for name, data in sorted(files.items()):
            h.update(f"F {name} ".encode("utf-8", "surrogateescape"))
            h.update(hashlib.sha256(data).digest())
        return "sha256:" + h.hexdigest()
    for rel, path in _files(item.source):
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\0".encode("utf-8", "surrogateescape"))
        elif path.is_dir():
            h.update(f"D {rel}\0".encode("utf-8", "surrogateescape"))
        elif path.is_file():  # not sockets or fifos: they are not shipped
            x = "x" if os.access(path, os.X_OK) else "-"
            h.update(f"F {rel} {x} ".encode("utf-8", "surrogateescape"))
            h.update(hashlib.sha256(_content(item, node, rel, path)).digest())
    return "sha256:" + h.hexdigest()


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode = 0o700
    elif info.isfile():
        info.mode = 0o700 if info.mode & 0o100 else 0o600
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, item: Item, node: Node, prefix: str) -> None:
    for rel, path in _files(item.source):
        info = _private(tar.gettarinfo(str(path), arcname=f"{prefix}/{rel}"))
        if info.isfile():
            tar.addfile(info, io.BytesIO(_content(item, node, rel, path)))
        elif info.isdir() or info.issym():
            tar.addfile(info)


def _add_tree(tar: tarfile.TarFile, item: Item, prefix: str) -> None:
    """The tracked files of the tree's commit, from `git archive`."""
    proc = subprocess.Popen(
        ["git", "-C", str(item.source), "archive", "--format=tar", str(item.sha)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as src:
        for member in src:
            if member.name in ("pax_global_header",) or member.type == tarfile.XGLTYPE:
                continue
            data = src.extractfile(member) if member.isfile() else None
            member.name = f"{prefix}/{member.name.rstrip('/')}"
            tar.addfile(_private(member), data)
    _, err = proc.communicate(timeout=GIT_TIMEOUT)
    if proc.returncode:
        raise TreeError(
            f"{item.what} {item.source}: git archive {item.sha} failed: "
            + err.decode(errors="replace").strip()
        )


def tarball(node: Node, items: Sequence[Item], digests: Mapping[str, str]) -> bytes:
    """The gzipped tar of `items`, names relative to the node's stack_root, each
    item's marker after its content."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:
        for item in items:
            prefix = node.relative(item.dest)
            root = tarfile.TarInfo(prefix)
            root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o700, int(time.time())
            tar.addfile(root)
            if item.kind == "tree":
                _add_tree(tar, item, prefix)
            elif item.load is not None:
                for name, data in sorted(item.files().items()):
                    _add_bytes(tar, f"{prefix}/{name}", data)
            else:
                _add_dir(tar, item, node, prefix)
        for item in items:  # the markers last: content first, whole
            _add_bytes(tar, node.relative(item.marker), (digests[item.marker] + "\n").encode())
    return out.getvalue()


# -- the remote side -------------------------------------------------------------------

# What a login shell's startup files print comes before this line in the output.
OUTPUT_START = b"grenade-output\n"

# sh -c SHIP grenade-ship ROOT REPLACED...: empty each replaced directory (never a git
# checkout: not ours), extract the gzipped tar on stdin under ROOT with its modes.
SHIP_SCRIPT = r"""
set -e
echo grenade-output
umask 077
root=$1
shift
mkdir -p -- "$root"
for d in "$@"; do
    if [ -e "$root/$d/.git" ]; then
        echo "refusing to replace $root/$d: a git checkout grenade did not ship" >&2
        exit 3
    fi
done
for d in "$@"; do rm -rf -- "${root:?}/$d"; done
tar -x -z -p --no-same-owner -f - -C "$root"
"""


def marker_args(node: Node) -> list[str]:
    return [f"tree:{i.dest}" if i.kind == "tree" else i.marker for i in node.items]
