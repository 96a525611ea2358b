#!/usr/bin/env python3
"""dbquery - run one SQL query against a service database, print the rows as JSON.

Resource scripts use it in ``verify_noapi``, when the APIs are down but the data must
still be there. The database is named by the SQLAlchemy URL the service itself uses
(``iniget $KEYSTONE_CONF database connection``), so the check reads exactly what the
service reads, on the lite tree and on a real devstack alike::

    dbquery.py URL "SELECT id, name FROM project WHERE id = 'abc'"

Output: a JSON list of objects, one per row (column name -> value as text). Backends:
``postgresql`` through ``psql``, ``mysql``/``mariadb`` through the ``mysql`` client
(both from the system's client packages), ``sqlite`` through Python's sqlite3. Stdlib
only, so the system ``python3`` runs it. Exit codes: 0 rows printed (maybe none), 1
the query failed, 2 usage (unknown URL scheme, client missing).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse


class QueryError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _client(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise QueryError(f"{name} not found: install the {package} package", 2)
    return path


def query_postgresql(url: urllib.parse.SplitResult, sql: str) -> list[dict]:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = urllib.parse.unquote(url.password)
    wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) AS q"
    argv = [
        _client("psql", "postgresql-client"),
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        url.hostname or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-d",
        url.path.lstrip("/"),
    ]
    if url.username:
        argv += ["-U", urllib.parse.unquote(url.username)]
    proc = subprocess.run([*argv, "-c", wrapped], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise QueryError(f"psql: {proc.stderr.strip()}")
    rows = json.loads(proc.stdout.strip() or "[]")
    return [{k: None if v is None else str(v) for k, v in row.items()} for row in rows]


def query_mysql(url: urllib.parse.SplitResult, sql: str) -> list[dict]:
    argv = [
        _client("mysql", "mariadb-client"),
        "--batch",
        "--raw",
        "-h",
        url.hostname or "127.0.0.1",
        "-P",
        str(url.port or 3306),
        "-D",
        url.path.lstrip("/"),
    ]
    if url.username:
        argv += ["-u", urllib.parse.unquote(url.username)]
    env = dict(os.environ)
    if url.password:
        env["MYSQL_PWD"] = urllib.parse.unquote(url.password)
    proc = subprocess.run([*argv, "-e", sql], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise QueryError(f"mysql: {proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    return [
        {k: None if v == "NULL" else v for k, v in zip(header, line.split("\t"), strict=False)}
        for line in lines[1:]
    ]


def query_sqlite(url: urllib.parse.SplitResult, sql: str) -> list[dict]:
    # sqlite:////abs/path -> path "//abs/path"; sqlite:///rel -> "/rel"
    path = url.path[1:] if url.path.startswith("//") else url.path.lstrip("/")
    if not os.path.exists(path):
        raise QueryError(f"sqlite database {path} does not exist")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = conn.execute(sql)
        names = [d[0] for d in cur.description or []]
        return [
            {k: None if v is None else str(v) for k, v in zip(names, row, strict=False)}
            for row in cur.fetchall()
        ]
    except sqlite3.Error as exc:
        raise QueryError(f"sqlite: {exc}") from None
    finally:
        conn.close()


BACKENDS = {
    "postgresql": query_postgresql,
    "mysql": query_mysql,
    "mariadb": query_mysql,
    "sqlite": query_sqlite,
}


def query(url: str, sql: str) -> list[dict]:
    parts = urllib.parse.urlsplit(url)
    backend = parts.scheme.split("+", 1)[0]
    if backend not in BACKENDS:
        raise QueryError(f"unsupported database URL scheme {parts.scheme!r}", 2)
    return BACKENDS[backend](parts, sql)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        rows = query(args[0], args[1])
    except QueryError as exc:
        print(f"dbquery: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(rows, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
