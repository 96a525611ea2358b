"""dbsnap.py's PostgreSQL backend: pg_dump's custom format, pg_restore --create, and the
catalog read through psql."""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path
from typing import Any

from dbsnap_backend import Backend, program
from dbsnap_files import PASSWORD_ENV


def _pg_bin_dirs() -> list[str]:
    """Where the lite tree looks too: PG_BIN_DIR, else the newest of Debian's
    /usr/lib/postgresql/<version>/bin. A newer client reads older servers and dumps, and
    PATH's pg_wrapper would add a Perl start to every call."""
    if os.environ.get("PG_BIN_DIR"):
        return [os.environ["PG_BIN_DIR"]]
    installed = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[-2].split(".")],
    )
    return installed[-1:]


class Postgres(Backend):
    name = "postgresql"
    dump_format = "pg_dump-custom"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.user: str = args.user or "postgres"
        self.maintenance_db: str = args.maintenance_db

    def tool(self, name: str) -> str:
        return program([name], "postgresql-client", _pg_bin_dirs())

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(PASSWORD_ENV, None)
        if self.password:
            env["PGPASSWORD"] = self.password
        # A server that is down fails the call in seconds instead of hanging it.
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env

    def conn(self, tool: str) -> list[str]:
        # -w: fail instead of prompting for a password on a terminal.
        argv = [self.tool(tool), "-w", "-U", self.user]
        if self.host:
            argv += ["-h", self.host]
        if self.port:
            argv += ["-p", self.port]
        return argv

    def psql(self, dbname: str, sql: str, what: str, **variables: str) -> Any:
        """Run sql (one statement printing one JSON value) in dbname; variables as :'name'."""
        argv = [*self.conn("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname]
        for key, value in variables.items():
            argv += ["-v", f"{key}={value}"]
        out = self.run(argv, what, env=self.env(), input=sql).stdout.strip()
        return json.loads(out) if out else None

    def probe(self, db: str) -> tuple[bool, str]:
        sql = (
            "SELECT json_build_array(EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db'), "
            "current_setting('server_version'));\n"
        )
        where = f"{self.label(db)}: cannot reach the server on {self.where()}"
        exists, version = self.psql(self.maintenance_db, sql, where, db=db)
        return bool(exists), str(version)

    def dump(self, db: str, dest: Path) -> dict[str, str]:
        argv = [*self.conn("pg_dump"), "--format=custom", "-f", str(dest), "-d", db]
        self.run(argv, f"dumping {self.label(db)}", env=self.env())
        version = self.run([self.tool("pg_dump"), "--version"], "pg_dump --version")
        return {"name": "pg_dump", "version": version.stdout.strip()}

    def sql_copy(self, db: str, dump: Path, dest: Path) -> None:
        # pg_restore without -d only converts the archive to SQL: no server involved.
        argv = [self.tool("pg_restore"), "-f", str(dest), str(dump)]
        self.run(argv, f"writing the SQL of {self.label(db)}")

    def restore(self, db: str, dump: Path, record: dict[str, Any]) -> None:
        # Drop, then let pg_restore --create make the database again with the dumped
        # owner, encoding, locale and settings: `pg_restore --clean` alone drops only
        # the objects in the archive and keeps tables created after the snapshot.
        # A drop refused because a client is still connected is an error: whatever
        # holds that connection would write into the restored database.
        drop = "SELECT format('DROP DATABASE IF EXISTS %I', :'db') \\gexec\n"
        self.psql(self.maintenance_db, drop, f"dropping {self.label(db)}", db=db)
        argv = [*self.conn("pg_restore"), "--create", "--exit-on-error"]
        argv += ["-d", self.maintenance_db, str(dump)]
        self.run(argv, f"restoring {self.label(db)} from {dump}", env=self.env())

    def tables(self, db: str) -> dict[str, Any]:
        # Counts come from query_to_xml, which runs one count(*) per table inside this
        # single statement, with names quoted by the server (format %I).
        sql = """
WITH t AS (
  SELECT c.oid, n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
    AND n.nspname NOT LIKE 'pg\\_%'
)
SELECT coalesce(json_object_agg(
  CASE WHEN t.nspname = 'public' THEN t.relname ELSE t.nspname || '.' || t.relname END,
  json_build_object(
    'columns', (SELECT coalesce(json_agg(json_build_object(
        'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
        'nullable', NOT a.attnotnull) ORDER BY a.attnum), '[]')
      FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped),
    'indexes', (SELECT coalesce(json_agg(json_build_object(
        'name', ic.relname, 'unique', i.indisunique,
        'columns', (SELECT json_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k)
                    FROM generate_series(1, i.indnkeyatts) k)) ORDER BY ic.relname), '[]')
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = t.oid),
    'rows', (xpath('/row/n/text()', query_to_xml(
        format('SELECT count(*) AS n FROM %I.%I', t.nspname, t.relname),
        false, true, '')))[1]::text::bigint)), '{}')
FROM t;
"""
        return dict(self.psql(db, sql, f"describing {self.label(db)}"))

    def values(self, db: str, table: str, columns: list[str]) -> list[list[str]]:
        cells = ", ".join(f"{c}::text" for c in columns)
        sql = f"SELECT coalesce(json_agg(json_build_array({cells})), '[]') FROM public.{table};\n"
        return list(self.psql(db, sql, f"reading {table} of {self.label(db)}"))
