#!/usr/bin/env python3
"""swift_server - run one swift server with its configuration outside /etc/swift.

Swift reads ``swift.conf`` (the hash path prefix/suffix and the storage policies)
from ``/etc/swift`` whatever the server's ``swift_dir`` says, and a server started on a
machine without that file dies in ``validate_hash_conf``. The lite tree keeps swift's
configuration with the rest of the run's (``$SWIFT_CONF_DIR``), so this launcher points
swift at it before the server's own ``main`` runs::

    python swift_server.py --swift-dir /stack/data/etc/swift object \\
        /stack/data/etc/swift/object-server.conf

Run it with the release venv's python; the server arguments after the config file are
passed on (``-v`` logs to stderr as well, which run_process keeps in the service log).
"""

from __future__ import annotations

import argparse
import importlib
import sys

SERVERS = {
    "proxy": "swift.proxy.server",
    "account": "swift.account.server",
    "container": "swift.container.server",
    "object": "swift.obj.server",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swift-dir", required=True, help="directory of swift.conf")
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("conf", help="the server's configuration file")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the server")
    args = parser.parse_args()

    from swift.common import constraints, storage_policy, utils

    # set_swift_dir validates the hash settings of the new swift.conf at once, so
    # a missing or incomplete file fails here, naming the file.
    utils.set_swift_dir(args.swift_dir)
    constraints.reload_constraints()
    storage_policy.reload_storage_policies()
    server = importlib.import_module(SERVERS[args.server])
    sys.argv = [f"swift-{args.server}-server", args.conf, *args.args]
    return server.main() or 0


if __name__ == "__main__":
    sys.exit(main())
