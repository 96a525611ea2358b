"""A two-node lite cloud on this machine, partially upgraded, then completed.

    python3 examples/two_node.py [--config examples/two-node.yaml] [--keep]

Starts what the storage node needs: an sshd on its address and port (from the
config's `hosts`), with a host key and a client key made once in the directory of
the config's `key_filename`, its known_hosts where the config's `known_hosts` says.
Then, with that config:

1. `grenade setup --force base upgrade verify`: both nodes stacked (the controller
   first; the rings and swift.conf sent to the storage node before its servers
   start), resources created, the controller upgraded, the mixed cloud verified
   (the storage servers still on the base release, same processes);
2. `grenade upgrade --groups subnode`: the storage node upgraded, everything
   verified again (`grenade status` after each leg: the steps per host, and what
   each node's services run, read from their processes);
3. `grenade destroy`, then both clouds stopped (`grenade clean`), unless --keep.

The sshd stops when the script ends. Exit code: the first failing command's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from grenade.localnodes import network_env, running_sshd  # noqa: E402

LEGS = (
    ("setup", "--force", "base", "upgrade", "verify"),
    ("status",),  # each step and host; what each node's services run, base -> now
    ("upgrade", "--groups", "subnode"),
    ("status",),
    ("destroy",),
)


def grenade(config: Path, *tasks: str) -> int:
    argv = [sys.executable, "-m", "grenade", "-f", str(config), *tasks]
    print("+", " ".join(argv[1:]), flush=True)
    return subprocess.run(argv, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "two-node.yaml")
    parser.add_argument("--keep", action="store_true", help="leave both clouds running")
    args = parser.parse_args()
    config = args.config.resolve()
    data = yaml.safe_load(config.read_text())["grenade"]
    remote = [(n, h) for n, h in data["hosts"].items() if h["host"] != "local"]
    if len(remote) != 1:
        parser.error(f"{config}: expected one remote host, found {len(remote)}")
    name, node = remote[0]
    keys = Path(node["key_filename"]).expanduser().parent
    keys.mkdir(parents=True, exist_ok=True)
    keys.chmod(0o700)  # the node's keys, and its sshd_config with this machine's proxies
    known = Path(data["known_hosts"]).expanduser()
    # the node reaches the package registries as this machine does
    node_env = network_env()
    with running_sshd(keys, address=node["host"], port=node["port"], env=node_env) as server:
        if known != server.known_hosts:
            known.write_text(server.known_hosts.read_text())
        print(f"node {name}: sshd on {server.host}:{server.port}", flush=True)
        rc = 0
        for tasks in LEGS:
            rc = grenade(config, *tasks)
            if rc:
                break
        if not args.keep:
            grenade(config, "clean")
    return rc


if __name__ == "__main__":
    sys.exit(main())
