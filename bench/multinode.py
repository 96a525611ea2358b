"""Multinode fan-out: one upgrade step on 1, 4 and 8 SSH nodes, side by side.

Each node is a real sshd on its own 127.0.0.x address (this machine plays every node,
logging in with a key made for the run; host keys checked against a known_hosts file
holding only theirs). A fixture project registered on the group `subnode` has an
upgrade.sh that waits 2 s, a service restart's worth. The step runs on every node of
the group at once, so its wall time should barely grow with the number of nodes.
Prints the wall time per node count and the ratios 4/1 and 8/1 (target 8/1 <= 1.3).

    python bench/multinode.py [--wait 2] [--counts 1,4,8]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grenade import phases  # noqa: E402
from grenade.config import GrenadeConfig  # noqa: E402
from grenade.localnodes import SshdServer, running_sshd  # noqa: E402
from grenade.session import Session  # noqa: E402

TARGET = 1.3
HOOK = "echo start $EPOCHREALTIME on $GRENADE_HOST\nsleep {wait}\necho upgraded on $GRENADE_HOST\n"


def write_project(root: Path, wait: float) -> Path:
    project = root / "projects" / "50_wait"
    project.mkdir(parents=True)
    (project / "settings").write_text(
        "register_project_for_upgrade wait\nregister_project_groups wait subnode\n"
    )
    (project / "upgrade.sh").write_text(HOOK.format(wait=wait))
    return root / "projects"


def run_config(root: Path, projects: Path, nodes: list[SshdServer]) -> Path:
    known = root / "known_hosts"
    known.write_text("".join(n.known_hosts.read_text() for n in nodes))
    hosts: dict[str, Any] = {"ctl": {"host": "local", "groups": ["controller"]}}
    for i, node in enumerate(nodes, 1):
        hosts[f"n{i}"] = {
            "host": node.host,
            "port": node.port,
            "user": node.user,
            "key_filename": str(node.key_filename),
            "stack_root": str(root / f"n{i}"),
            "groups": ["subnode"],
        }
    config = {
        "stack_root": str(root / "stack"),
        "deployer": "external",
        "projects_dirs": [str(projects)],
        "enabled_services": "",
        "hosts": hosts,
        "upgrade_groups": ["subnode"],
        "known_hosts": str(known),
        "timeout": 120,
    }
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump({"grenade": config}))
    return path


def time_upgrade(root: Path, projects: Path, nodes: list[SshdServer]) -> tuple[float, float]:
    """Wall times of the upgrade step on the nodes: its first run (which also starts
    each node's helper loop) and a second, forced run (setup excluded from both)."""
    cfg = GrenadeConfig.from_file(run_config(root, projects, nodes))
    with Session(cfg, console=io.StringIO()) as session:
        phases.setup(session)
        started = time.monotonic()
        phases.run_kinds(session, ["upgrade"], check_order=False)
        first = time.monotonic() - started
        started = time.monotonic()
        phases.run_kinds(session, ["upgrade"], force=True, check_order=False)
        return first, time.monotonic() - started


def time_fabric_floor(nodes: list[SshdServer], wait: float) -> float:
    """The same fan-out with nothing of grenade: Fabric's ThreadingGroup running
    `sleep` on the nodes over open connections (what the machine itself allows)."""
    import fabric
    import paramiko

    conns = []
    for node in nodes:
        conn = fabric.Connection(
            node.host,
            user=node.user,
            port=node.port,
            connect_kwargs={"key_filename": str(node.key_filename)},
        )
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        conn.client.load_host_keys(str(node.known_hosts))
        conn.open()
        conns.append(conn)
    group = fabric.ThreadingGroup.from_connections(conns)
    try:
        started = time.monotonic()
        group.run(f"sleep {wait:g}", hide=True)
        return time.monotonic() - started
    finally:
        group.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wait", type=float, default=2.0, help="seconds each hook waits")
    parser.add_argument("--counts", default="1,4,8", help="node counts, comma-separated")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="grenade-multinode-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        base = Path(tmp)
        nodes = []
        for i in range(1, max(counts) + 1):
            (base / f"sshd{i}").mkdir()
            address = f"127.0.0.{i + 1}"
            # Each node logs in to a home of its own, as on a machine of its own: the
            # sessions do not run this machine's shell init (see running_sshd).
            home = base / f"home{i}"
            home.mkdir()
            node = running_sshd(base / f"sshd{i}", address=address, home=home)
            nodes.append(stack.enter_context(node))
        projects = write_project(base, args.wait)
        times: dict[int, float] = {}
        firsts: dict[int, float] = {}
        floors: dict[int, float] = {}
        for count in counts:
            root = base / f"run{count}"
            root.mkdir()
            firsts[count], times[count] = time_upgrade(root, projects, nodes[:count])
            floors[count] = time_fabric_floor(nodes[:count], args.wait)
    print(f"one upgrade step, hook waiting {args.wait:g} s, on N SSH nodes at once")
    print("  (first run: also starts each node's helper; ratios from the second run)")
    print("  (floor: Fabric's ThreadingGroup running `sleep` alone on the same nodes)")
    for count, took in times.items():
        print(
            f"  {count} node(s): {took:6.2f} s   first run {firsts[count]:6.2f} s"
            f"   floor {floors[count]:6.2f} s"
        )
    one = times.get(1)
    if one:
        for count in counts:
            if count != 1:
                ratio = times[count] / one
                verdict = "PASS" if ratio <= TARGET or count != 8 else "MISS"
                mark = f"  (target <= {TARGET}: {verdict})" if count == 8 else ""
                floor = floors[count] / floors[1]
                print(f"  ratio {count}/1: {ratio:.3f}{mark}   floor {count}/1: {floor:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
