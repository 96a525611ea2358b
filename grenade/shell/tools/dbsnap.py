#!/usr/bin/env python3
"""dbsnap - snapshot and restore one service database; describe it; checksum a snapshot dir.

Run by grenade's bash library on any host of a run (as ``python3 "$GRENADE_DIR/tools/dbsnap.py"``),
so it is standard library only; the dumps are made by each backend's own tools::

    dbsnap.py dump     CONN DB FILE [--record PATH] [--sql-copy PATH]
    dbsnap.py restore  CONN RECORD
    dbsnap.py describe CONN DB
    dbsnap.py manifest write DIR [--meta KEY=JSON]... [--meta-file KEY=PATH]...
    dbsnap.py manifest check DIR

CONN is ``--backend postgresql|mysql|sqlite`` and, as the tree's stackrc gives them,
``--host``, ``--port`` (a port means TCP for mysql), ``--user`` (default: postgres or
root), ``--socket`` (mysql), ``--sqlite-dir`` (sqlite: ``<dir>/<db>.db``, ``.sqlite`` or
``<db>``). The password is read from the ``DBSNAP_PASSWORD`` environment variable and
handed to the tools as PGPASSWORD or MYSQL_PWD: never on a command line, never printed.

dump      writes FILE (pg_dump custom format; mysqldump SQL; an SQLite backup) and its
          record, a JSON object (FILE.json unless --record), also printed on stdout:
          file, size, sha256, tool version, migration version, describe output.
restore   checks the dump file's sha256 against the record, drops the database, recreates
          it from the dump, then checks that its migration version, tables, columns,
          indexes and row counts are the recorded ones.
describe  prints tables (columns, indexes, row count) and the migration version as JSON.
manifest  ``write`` lists every file under DIR (size, sha256) in DIR/manifest.json, with
          the dump records found there and --meta values; ``check`` verifies them all and
          names every missing or changed file with both checksums.

Exit codes: 0 done, 1 failed (the message names database, backend and file), 2 usage or a
missing client program.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# The other dbsnap_*.py modules lie beside this script: found from any cwd, also when
# this file is loaded by path rather than run.
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from dbsnap_backend import Backend
from dbsnap_files import MANIFEST_NAME, PASSWORD_ENV, RECORD_KIND, SnapError, load
from dbsnap_manifest import manifest_check, manifest_write
from dbsnap_mysql import MySQL
from dbsnap_pg import Postgres
from dbsnap_record import describe, dump, restore
from dbsnap_sqlite import SQLite

BACKENDS: dict[str, type[Backend]] = {"postgresql": Postgres, "mysql": MySQL, "sqlite": SQLite}


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SnapError(f"--meta {item!r}: expected KEY=JSON", 2)
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value  # a plain word is a string; quoting it in JSON is optional
    for item in args.meta_file:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SnapError(f"--meta-file {item!r}: expected KEY=PATH", 2)
        try:
            meta[key] = json.loads(Path(value).read_text())
        except (OSError, ValueError) as exc:
            raise SnapError(f"--meta-file {key}: cannot read JSON from {value}: {exc}") from None
    return meta


def parser() -> argparse.ArgumentParser:
    conn = argparse.ArgumentParser(add_help=False)
    group = conn.add_argument_group("connection (the tree's stackrc DATABASE_* values)")
    group.add_argument("--backend", choices=sorted(BACKENDS), help="DATABASE_TYPE")
    group.add_argument("--host", default="", help="DATABASE_HOST (postgresql: or a socket dir)")
    group.add_argument("--port", default="", help="DATABASE_PORT (mysql: TCP)")
    group.add_argument("--user", default="", help="DATABASE_USER (default postgres / root)")
    group.add_argument("--socket", default="", help="mysql: the server's unix socket")
    group.add_argument("--sqlite-dir", default="", help="DATABASE_SQLITE_DIR")
    group.add_argument(
        "--maintenance-db",
        default="postgres",
        help="postgresql: the database to connect to for drop/create",
    )
    group.add_argument(
        "--timeout", type=float, default=600, help="seconds any one tool may take (default 600)"
    )

    top = argparse.ArgumentParser(
        prog="dbsnap.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dump", parents=[conn], help="dump one database and write its record")
    p.add_argument("db")
    p.add_argument("file", type=Path)
    p.add_argument("--record", type=Path, help="where the JSON record goes (default FILE.json)")
    p.add_argument(
        "--sql-copy",
        type=Path,
        metavar="PATH",
        help="also write the original grenade's save-state file (<db>.sql.<release>)",
    )
    p = sub.add_parser("restore", parents=[conn], help="drop, recreate and check one database")
    p.add_argument("record", type=Path)
    p = sub.add_parser("describe", parents=[conn], help="tables, columns, indexes, rows (JSON)")
    p.add_argument("db")
    p = sub.add_parser("manifest", help="checksums of a snapshot directory")
    msub = p.add_subparsers(dest="action", required=True)
    w = msub.add_parser("write", help="write DIR/manifest.json")
    w.add_argument("dir", type=Path)
    w.add_argument("--meta", action="append", default=[], metavar="KEY=JSON")
    w.add_argument("--meta-file", action="append", default=[], metavar="KEY=PATH")
    c = msub.add_parser("check", help="verify every file listed in DIR/manifest.json")
    c.add_argument("dir", type=Path)
    return top


def _backend(args: argparse.Namespace, default: str | None = None) -> Backend:
    name = args.backend or default
    if not name:
        raise SnapError("--backend is required", 2)
    if args.socket and args.port:
        raise SnapError("--socket and --port exclude each other (a port means TCP)", 2)
    return BACKENDS[name](args)


def run(args: argparse.Namespace) -> int:
    if args.command == "dump":
        record = dump(
            _backend(args),
            args.db,
            args.file,
            args.record or Path(f"{args.file}.json"),
            args.sql_copy,
        )
        print(json.dumps(record, indent=1, sort_keys=True))
    elif args.command == "restore":
        record = load(args.record, RECORD_KIND)
        backend = _backend(args, record["backend"])
        print(json.dumps(restore(backend, args.record, record), sort_keys=True))
    elif args.command == "describe":
        backend = _backend(args)
        backend.require(args.db)
        print(json.dumps(describe(backend, args.db), indent=1, sort_keys=True))
    elif args.action == "write":
        manifest = manifest_write(args.dir, _metadata(args))
        print(
            f"{args.dir / MANIFEST_NAME}: {len(manifest['files'])} files, "
            f"{manifest['total_bytes']} bytes, {len(manifest['databases'])} database dumps"
        )
    else:
        problems, notes, manifest = manifest_check(args.dir)
        for note in notes:
            print(f"dbsnap: note: {note}", file=sys.stderr)
        if problems:
            for problem in problems:
                print(f"dbsnap: {problem}", file=sys.stderr)
            print(
                f"dbsnap: manifest check {args.dir}: {len(problems)} of "
                f"{len(manifest['files'])} files missing or changed",
                file=sys.stderr,
            )
            return 1
        print(f"{args.dir}: {len(manifest['files'])} files match {MANIFEST_NAME}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except SnapError as exc:
        message = str(exc)
        # Tools echo back what they were given; the password is never among it, but
        # a message is masked anyway before it can reach a log (a very short one would
        # mask ordinary words instead).
        password = os.environ.get(PASSWORD_ENV, "")
        if len(password) >= 4:
            message = message.replace(password, "***")
        command = f"manifest {args.action}" if args.command == "manifest" else args.command
        print(f"dbsnap: {command}: {message}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
