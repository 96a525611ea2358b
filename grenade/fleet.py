"""The remote nodes of a run: their copies of the run checked and shipped, each step
given the node's paths, the resource memory synced around it.

`Fleet` knows every remote host's `Node` (grenade.ship: its stack_root, path map
and what it gets), worked out from the setup record and the placed plan. Setup
ships to every node at once (`ship_all`). The runner wraps the remote hosts of a
step's group in `NodeHost`s, whose `run`, on the host's own thread:

1. `prepare`: the node's helper (grenade.nodehelper) reads the node's markers and
   the size of its resource-results.jsonl, and installs the controller's
   grenade_db.ini as the node's; a node whose stack_root is the controller's own
   (the same file system, told by the controller's id file) is left as it is:
   nothing to ship or sync;
2. ships what changed (GRENADE_DIR, project directories; a tree missing there),
   and fails, naming the host and the tree, when a node's tree is at another SHA
   than setup recorded;
3. runs the hook with argv, environment and cwd mapped to the node's paths;
4. `collect`: the helper sends back the node's grenade_db.ini, whose changes are
   merged into the controller's, and the report lines the hooks appended
   (grenade.memory_sync).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shlex
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import memory_sync, versions
from .config_hosts import HostConfig
from .errors import TreeError, command_hint
from .fabrichost import FabricHost, _AllAtOnce
from .hosts import CONTROLLER, Cancel, HostGroup, Result, Sink, Started
from .nodeconf import node_tree_files, shared_files
from .nodehelper import NodeHelper, b64, unb64
from .resources import DB_FILE, RESULTS_FILE
from .ship import (
    CONTROLLER_ID,
    OUTPUT_START,
    REPLACED,
    SHIP_SCRIPT,
    Item,
    Node,
    digest,
    marker_args,
    node_layout,
    tarball,
)

if TYPE_CHECKING:
    from .plan import Step
    from .record import SetupRecord
    from .session import Session

COMMAND_TIMEOUT = 60  # seconds for the helper's answer to a prepare or collect
SHIP_TIMEOUT = 900  # seconds to send a node its trees


class TreeMismatch(TreeError):
    """A node's tree is not at the SHA setup recorded."""


@dataclass(frozen=True)
class Ticket:
    """What `prepare` left for `collect`: the store as uploaded, the results' size."""

    base: bytes
    offset: int


def _remote(
    host: FabricHost, what: str, script: str, args: Sequence[str], stdin: bytes, timeout: int
) -> bytes:
    """`sh -c SCRIPT` with `args` (every word quoted) and `stdin`; its stdout, or an
    error naming the host, `what` it did and what the command said."""
    command = shlex.join(["sh", "-c", script, f"grenade-{what}", *args])
    host.connection.open()
    result = host.connection.run(
        command, hide=True, warn=True, timeout=timeout, encoding="latin-1",
        in_stream=_AllAtOnce(stdin.decode("latin-1")),
    )  # fmt: skip
    if result.exited != 0:
        raise TreeError(
            f"{host.name}: grenade's {what} command failed there (exit {result.exited}): "
            + result.stderr.encode("latin-1").decode(errors="replace").strip()[-500:]
        )
    out = str(result.stdout).encode("latin-1")
    start = out.find(OUTPUT_START)
    if start < 0:
        raise TreeError(f"{host.name}: grenade's {what} command said nothing: {out[-200:]!r}")
    return out[start + len(OUTPUT_START) :]


class Fleet:
    """The remote nodes of one session's run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._nodes: dict[str, Node] = {}
        self._record: SetupRecord | None = None
        self._lock = threading.Lock()
        self._id_lock = threading.Lock()
        self._id = ""
        self._helpers: dict[str, NodeHelper] = {}

    # -- the nodes ----------------------------------------------------------------------

    def configure(self, record: SetupRecord, plan: Sequence[Step]) -> None:
        """Every remote host's `Node`, for this setup record and placed plan."""
        session = self.session
        dirs = {p.name: p.dir for p in record.settings.projects}
        used: dict[str, list[str]] = {}
        for step in plan:
            group = session.inventory.groups.get(step.group)
            names = step.hosts or (group.names if group else [])
            for name in names:
                if step.project in dirs and dirs[step.project] not in used.setdefault(name, []):
                    used[name].append(dirs[step.project])
        trees = {
            side: (record.tree(side).path, record.tree(side).sha) for side in ("base", "target")
        }
        nodes = {}
        for host in self.remote_hosts():
            configured = session.cfg.hosts.get(host.name)
            root = str(configured.stack_root if configured else session.paths.stack_root)
            node = node_layout(
                host.name, root, session.paths, trees, used.get(host.name, []), list(dirs.values())
            )
            nodes[host.name] = dataclasses.replace(
                node, items=(*node.items, *self._config_items(record, host.name, node))
            )
        self._nodes, self._record = nodes, record

    def _config_items(self, record: SetupRecord, name: str, node: Node) -> list[Item]:
        """The node's own local.conf for each shipped tree, and the deployer's shared
        files (grenade.nodeconf)."""
        session = self.session
        hosts = session.cfg.hosts
        host = hosts.get(name)
        if host is None:
            return []
        controller = next((h for h in hosts.values() if CONTROLLER in h.groups), None)
        items = []
        for tree in (i for i in node.items if i.kind == "tree"):

            def conf(tree: Item = tree, host: HostConfig = host) -> Mapping[str, bytes]:
                return node_tree_files(tree.source, node.paths, host, controller)

            items.append(
                Item("conf", f"{tree.what}'s local.conf", tree.source, tree.dest, load=conf)
            )
        stack_root = session.paths.stack_root
        shared = session.deployer.node_files(session.deploy_context(record))
        if shared:
            items.append(
                Item(
                    "shared",
                    "the controller's shared files",
                    stack_root,
                    node.root,
                    load=lambda: shared_files(stack_root, shared),
                )
            )
        return items

    def node(self, name: str) -> Node:
        with self._lock:
            setup = self.session.setup
            if self._record is not setup:
                self.configure(setup, self.session.plan())
            return self._nodes[name]

    def remote_hosts(self) -> list[FabricHost]:
        seen: dict[str, FabricHost] = {}
        for group in self.session.inventory.groups.values():
            for host in group.hosts:
                if isinstance(host, FabricHost):
                    seen.setdefault(host.name, host)
        return list(seen.values())

    def controller_id(self) -> str:
        """A token in the controller's stack_root that a node seeing the same file
        system finds under its own: made once (private), published whole (a link of
        a written file), read once per session. Without it a node would take the
        controller's own files for its copies."""
        with self._id_lock:
            if not self._id:
                self._id = self._read_or_make_id()
            return self._id

    def _read_or_make_id(self) -> str:
        path = self.session.paths.stack_root / CONTROLLER_ID
        with contextlib.suppress(FileNotFoundError):
            if token := path.read_text().strip():
                return token
            path.unlink()  # empty: not ours (ours is never published half-written)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{CONTROLLER_ID}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(16) + "\n")
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        token = path.read_text().strip()
        if not token:
            raise TreeError(f"{path}: empty; cannot tell the nodes from this controller")
        return token

    # -- shipping -----------------------------------------------------------------------

    def ship_all(self, record: SetupRecord, plan: Sequence[Step]) -> list[str]:
        """Setup: every node gets what it lacks or has out of date, all at once; a
        tree at another SHA (a previous run's) is replaced. One line per node."""
        self.configure(record, plan)
        hosts = self.remote_hosts()
        lines: dict[str, str] = {}
        errors: dict[str, str] = {}

        def one(host: FabricHost) -> None:
            node = self._nodes[host.name]
            try:
                ticket, sent = self.prepare(host, node, None, True)
            except Exception as exc:
                errors[host.name] = str(exc) if isinstance(exc, TreeError) else f"{exc!r}"
                return
            lines[host.name] = (
                f"shares the controller's stack_root {node.root}: nothing to ship"
                if ticket is None
                else f"sent {', '.join(i.what for i in sent)} to {node.root}"
                if sent
                else f"{node.root} is up to date"
            )

        threads = [threading.Thread(target=one, args=(h,), name=f"ship-{h.name}") for h in hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise TreeError(
                "shipping the run to the nodes failed:\n"
                + "\n".join(f"  {name}: {why}" for name, why in errors.items())
            )
        return [f"{h.name}: {lines[h.name]}" for h in hosts]

    def prepare(
        self, host: FabricHost, node: Node, upload: bytes | None, setup: bool = False
    ) -> tuple[Ticket | None, list[Item]]:
        """Check the node's copies, ship what changed, install `upload` as its store
        (None: leave it); the ticket for `collect` (None for a node that shares the
        controller's stack_root) and what was shipped."""
        digests = {i.marker: digest(i, node) for i in node.items}
        markers = marker_args(node)
        fields = [
            node.root,
            self.controller_id(),
            f"{node.save_dir}/{RESULTS_FILE}",
            f"{node.save_dir}/{DB_FILE}",
            b64(upload) if upload is not None else "-",
            str(len(markers)),
            *markers,
        ]
        lines = self.helper(host).request("prepare", fields, COMMAND_TIMEOUT)
        if lines[0] == "shared":
            return None, []
        offset, found_markers = int(lines[1] or 0), lines[2 : 2 + len(markers)]
        stale = []
        for item, found in zip(node.items, found_markers, strict=True):
            wanted = digests[item.marker]
            if not wanted or found in (wanted, f"git:{wanted}"):
                continue  # nothing to send yet, or up to date
            if item.kind == "tree" and found and (not setup or found.startswith("git:")):
                raise self.mismatch(host, item, found)
            stale.append(item)
        resent = {i.dest for i in stale if i.kind == "tree"}
        # a tree sent again is emptied first: its configuration goes with it
        stale += [i for i in node.items if i.kind == "conf" and i.dest in resent and i not in stale]
        if stale:
            self.ship(host, node, stale, digests)
        return Ticket(upload or b"", offset), stale

    @staticmethod
    def mismatch(host: FabricHost, item: Item, found: str) -> TreeMismatch:
        where = f"node {host.name}: the {item.what} at {item.dest}"
        if found.startswith("git:"):  # the node's own checkout: never replaced
            return TreeMismatch(
                f"{where} is a git checkout at {found[4:]}, setup recorded {item.sha} "
                f"(the controller's {item.source}); check it out at {item.sha} on "
                f"{host.name}, or remove it there to have grenade ship the tree"
            )
        return TreeMismatch(
            f"{where} is at {found}, setup recorded {item.sha} (the controller's "
            f"{item.source}); {command_hint('setup', '--force')} ships it again"
        )

    def ship(
        self, host: FabricHost, node: Node, items: Sequence[Item], digests: Mapping[str, str]
    ) -> None:
        data = tarball(node, items, digests)
        replaced = [node.relative(i.dest) for i in items if i.kind in REPLACED]
        _remote(host, "ship", SHIP_SCRIPT, [node.root, *replaced], data, SHIP_TIMEOUT)

    # -- memory ------------------------------------------------------------------------

    def collect(self, host: FabricHost, node: Node, ticket: Ticket) -> None:
        """The node's store merged into the controller's; its new report lines appended;
        the service versions it read of itself recorded (grenade.versions)."""
        fields = [f"{node.save_dir}/{DB_FILE}", f"{node.save_dir}/{RESULTS_FILE}"]
        versions_file = f"{node.save_dir}/{versions.FILE_NAME}"
        lines = self.helper(host).request(
            "collect", [*fields, str(ticket.offset), versions_file], COMMAND_TIMEOUT
        )
        store, appended = unb64(lines[0]), unb64(lines[1])
        save = self.session.paths.save_dir
        memory_sync.merge_store(save, ticket.base, store)
        memory_sync.append_results(save, appended)
        if len(lines) > 2 and lines[2]:
            versions.merge_host(save, host.name, unb64(lines[2]))

    def helper(self, host: FabricHost) -> NodeHelper:
        with self._lock:
            if host.name not in self._helpers:
                self._helpers[host.name] = NodeHelper(host.name, host.connection)
            return self._helpers[host.name]

    def wrap(self, group: HostGroup) -> HostGroup:
        """The group with each remote host running from its node's copies."""
        if not any(isinstance(h, FabricHost) for h in group.hosts):
            return group
        hosts = tuple(NodeHost(h, self) if isinstance(h, FabricHost) else h for h in group.hosts)
        return HostGroup(group.name, hosts, group.memberships)


class NodeHost:
    """A remote host whose step runs from the node's copies, its memory synced."""

    def __init__(self, host: FabricHost, fleet: Fleet) -> None:
        self.host, self.fleet = host, fleet
        self.name = host.name

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | str | None = None,
        timeout: float | None = None,
        sink: Sink,
        cancel: Cancel,
        user: str | None = None,
        started: Started | None = None,
    ) -> Result:
        node = self.fleet.node(self.name)
        save = self.fleet.session.paths.save_dir
        try:
            upload = (save / DB_FILE).read_bytes()
        except FileNotFoundError:
            upload = b""
        try:
            ticket, sent = self.fleet.prepare(self.host, node, upload)
        except TreeError as exc:
            sink.write(f"grenade: {exc}\n")
            raise
        if sent:
            what = ", ".join(i.what for i in sent)
            sink.write(f"grenade: sent {what} to {self.name}:{node.root}\n")
        paths = node.paths if ticket is not None else None
        result = self.host.run(
            paths.argv(argv) if paths else argv,
            env=paths.env(env) if paths else env,
            cwd=paths.path(cwd) if paths else cwd,
            timeout=timeout, sink=sink, cancel=cancel, user=user, started=started,
        )  # fmt: skip
        if ticket is None:
            return result
        try:
            self.fleet.collect(self.host, node, ticket)
        except Exception as exc:
            sink.write(f"grenade: resource memory of {self.name} not merged: {exc}\n")
            if result.ok:
                return dataclasses.replace(result, error=f"resource memory not merged: {exc}")
        return result

    def kill_leftover(self, pgid: int, token: str) -> bool:
        return self.host.kill_leftover(pgid, token)
