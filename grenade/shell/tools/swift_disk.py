#!/usr/bin/env python3
"""swift_disk - find a swift object's data files on this node's devices, APIs down.

Checks that run while every API refuses connections still need to see that an object
survived: this computes where swift keeps it (the object ring's partition and devices,
the hash path) and reads each ``.data`` file found on the local devices, with the
metadata swift stored in its extended attributes::

    python swift_disk.py --swift-dir /etc/swift --devices /srv/node ACCOUNT CONTAINER OBJECT

prints one JSON document: the partition, the hash, the ring's devices for the object
and, per data file found here, its path, size and metadata (Content-Length, ETag,
X-Object-Meta-*, ...). Exit 0 when at least one data file is found, 1 when none is.
Run it with a python that imports swift (the release venv's): it uses swift's own
ring, hashing and metadata code, so it stays right when those formats change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swift-dir", required=True, help="directory of swift.conf and rings")
    parser.add_argument("--devices", required=True, help="the object server's devices directory")
    parser.add_argument("account")
    parser.add_argument("container")
    parser.add_argument("object")
    args = parser.parse_args()
    # eventlet's deprecation notice on every import of swift is not a finding
    warnings.simplefilter("ignore")

    from swift.common import utils
    from swift.common.ring import Ring
    from swift.obj.diskfile import read_metadata

    utils.set_swift_dir(args.swift_dir)
    ring = Ring(args.swift_dir, ring_name="object")
    partition, nodes = ring.get_nodes(args.account, args.container, args.object)
    name_hash = utils.hash_path(args.account, args.container, args.object)
    suffix = name_hash[-3:]
    found = []
    for node in nodes:
        obj_dir = os.path.join(
            args.devices, node["device"], "objects", str(partition), suffix, name_hash
        )
        if not os.path.isdir(obj_dir):
            continue
        for entry in sorted(os.listdir(obj_dir)):
            if not entry.endswith(".data"):
                continue
            path = os.path.join(obj_dir, entry)
            with open(path, "rb") as data:
                metadata = read_metadata(data)
            found.append(
                {
                    "path": path,
                    "size": os.path.getsize(path),
                    "metadata": {
                        str(k): v.decode() if isinstance(v, bytes) else v
                        for k, v in metadata.items()
                    },
                }
            )
    report = {
        "partition": partition,
        "hash": name_hash,
        "nodes": [f"{n['ip']}:{n['port']}/{n['device']}" for n in nodes],
        "files": found,
    }
    print(json.dumps(report, sort_keys=True))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
