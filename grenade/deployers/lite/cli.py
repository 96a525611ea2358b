"""The lite tree's maintainer commands (``python -m grenade.deployers.lite``)::

python -m grenade.deployers.lite lock [RELEASE...]     regenerate lock files
python -m grenade.deployers.lite build-repo DEST       build the branches repo
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import git

from grenade.errors import DeployError

from .locks import lock_release, read_lock
from .repo import build_repo
from .tree import BRANCHES


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
