"""dbsnap.py's MySQL/MariaDB backend: mysqldump's SQL, replayed by the mysql client, and
information_schema read through it."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from dbsnap_backend import Backend, program
from dbsnap_files import PASSWORD_ENV


def _mysql_text(db: str) -> str:
    """A string literal whatever the server's sql_mode (no escaping rules involved)."""
    return f"CONVERT(X'{db.encode().hex()}' USING utf8mb4)" if db else "''"


def _mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_unescape(cell: str) -> str | None:
    """A value of the client's --batch output (it escapes \\, tab, newline and NUL)."""
    if cell == "NULL":
        return None
    if "\\" not in cell:
        return cell
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell):
            out.append({"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}.get(cell[i + 1], cell[i + 1]))
            i += 2
        else:
            out.append(cell[i])
            i += 1
    return "".join(out)


class MySQL(Backend):
    name = "mysql"
    dump_format = "mysqldump-sql"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.user = args.user or "root"
        self.socket: str = args.socket or ""

    def where(self) -> str:
        return self.socket if self.socket and not self.port else super().where()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(PASSWORD_ENV, None)
        if self.password:
            env["MYSQL_PWD"] = self.password
        return env

    def conn(self, names: list[str]) -> list[str]:
        argv = [program(names, "mariadb-client"), "-u", self.user]
        if self.host:
            argv += ["-h", self.host]
        # A port means TCP even for "localhost", which the client would otherwise
        # take as its default socket: another server's.
        if self.port:
            argv += ["-P", self.port, "--protocol=tcp"]
        elif self.socket:
            argv += ["-S", self.socket]
        return argv

    def rows(self, sql: str, what: str) -> list[list[str | None]]:
        argv = [*self.conn(["mysql", "mariadb"]), "--batch", "--skip-column-names"]
        argv += ["--connect-timeout=10", "--default-character-set=utf8mb4"]
        out = self.run(argv, what, env=self.env(), input=sql).stdout
        return [[_mysql_unescape(c) for c in line.split("\t")] for line in out.splitlines()]

    def probe(self, db: str) -> tuple[bool, str]:
        sql = (
            "SELECT COUNT(*), VERSION() FROM information_schema.SCHEMATA "
            f"WHERE SCHEMA_NAME = {_mysql_text(db)};\n"
        )
        where = f"{self.label(db)}: cannot reach the server on {self.where()}"
        ((count, version),) = self.rows(sql, where)
        return count != "0", str(version)

    def dump(self, db: str, dest: Path) -> dict[str, str]:
        argv = [*self.conn(["mysqldump", "mariadb-dump"])]
        argv += [
            "--single-transaction",  # one consistent InnoDB snapshot, no table locks
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",  # binary columns survive any client character set
            "--default-character-set=utf8mb4",
            "--no-tablespaces",  # would need the PROCESS privilege, and restore none
            f"--result-file={dest}",
            # --databases writes CREATE DATABASE with the database's own character set
            # and collation: restore recreates it exactly as it was.
            "--databases",
            db,
        ]
        self.run(argv, f"dumping {self.label(db)}", env=self.env())
        version = self.run([argv[0], "--version"], "mysqldump --version")
        return {"name": os.path.basename(argv[0]), "version": version.stdout.strip()}

    def sql_copy(self, db: str, dump: Path, dest: Path) -> None:
        shutil.copyfile(dump, dest)

    def restore(self, db: str, dump: Path, record: dict[str, Any]) -> None:
        # The dump (--databases) creates the database again after this drop; a drop
        # alone, since a restore into the old one would keep tables made since.
        self.rows(f"DROP DATABASE IF EXISTS {_mysql_ident(db)};\n", f"dropping {self.label(db)}")
        argv = [*self.conn(["mysql", "mariadb"]), "--binary-mode", "--connect-timeout=10"]
        self.run(argv, f"restoring {self.label(db)} from {dump}", env=self.env(), stdin_path=dump)

    def tables(self, db: str) -> dict[str, Any]:
        schema = _mysql_text(db)
        sql = (
            "SELECT 't', TABLE_NAME, '', '', '' FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {schema} AND TABLE_TYPE = 'BASE TABLE';\n"
            "SELECT 'c', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE "
            f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {schema} "
            "ORDER BY TABLE_NAME, ORDINAL_POSITION;\n"
            "SELECT 'i', TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME "
            f"FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {schema} "
            "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX;\n"
        )
        tables: dict[str, Any] = {}
        indexes: dict[tuple[str, str], dict[str, Any]] = {}
        # Columns rows carry (type, IS_NULLABLE), index rows (NON_UNIQUE, column).
        for kind, table, name, first, second in self.rows(sql, f"describing {self.label(db)}"):
            table, name = str(table), str(name)
            if kind == "t":
                tables[table] = {"columns": [], "indexes": [], "rows": 0}
            elif table not in tables:
                continue  # a view's columns
            elif kind == "c":
                column = {"name": name, "type": first, "nullable": second == "YES"}
                tables[table]["columns"].append(column)
            elif (table, name) in indexes:
                indexes[table, name]["columns"].append(second or "(expression)")
            else:
                index = {
                    "name": name,
                    "unique": first == "0",
                    "columns": [second or "(expression)"],
                }
                indexes[table, name] = index
                tables[table]["indexes"].append(index)
        if tables:
            counts = " UNION ALL ".join(
                f"SELECT {_mysql_text(t)}, COUNT(*) FROM {_mysql_ident(db)}.{_mysql_ident(t)}"
                for t in tables
            )
            for table, count in self.rows(counts + ";\n", f"counting rows of {self.label(db)}"):
                tables[str(table)]["rows"] = int(count or 0)
        return tables

    def values(self, db: str, table: str, columns: list[str]) -> list[list[str]]:
        sql = f"SELECT {', '.join(columns)} FROM {_mysql_ident(db)}.{table};\n"
        rows = self.rows(sql, f"reading {table} of {self.label(db)}")
        return [[c or "" for c in row] for row in rows]
