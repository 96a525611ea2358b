"""dbsnap.py's SQLite backend: copies made with SQLite's online backup API, the schema
read through Python's sqlite3 module."""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from dbsnap_backend import Backend
from dbsnap_files import SnapError, publish, temp_beside


class SQLite(Backend):
    name = "sqlite"
    dump_format = "sqlite-backup"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        if not args.sqlite_dir:
            raise SnapError("--backend sqlite needs --sqlite-dir (DATABASE_SQLITE_DIR)", 2)
        self.dir = Path(args.sqlite_dir)
        # Databases read from another file than the live one (a dump being described).
        self.pinned: dict[str, Path] = {}

    def where(self) -> str:
        return str(self.dir)

    def path(self, db: str) -> Path | None:
        if db in self.pinned:
            return self.pinned[db]
        # The names save_sqlite_dbs has always looked for, in its order.
        for candidate in (f"{db}.db", f"{db}.sqlite", db):
            if (self.dir / candidate).is_file():
                return self.dir / candidate
        return None

    def connect(self, db: str) -> sqlite3.Connection:
        path = self.path(db)
        if path is None:
            raise SnapError(f"{self.label(db)} does not exist in {self.dir}")
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)

    def probe(self, db: str) -> tuple[bool, str]:
        return self.path(db) is not None, f"SQLite {sqlite3.sqlite_version}"

    def dump(self, db: str, dest: Path) -> dict[str, str]:
        _sqlite_backup(self.connect(db), dest, f"dumping {self.label(db)}")
        return {"name": "sqlite3.Connection.backup", "version": f"SQLite {sqlite3.sqlite_version}"}

    def sql_copy(self, db: str, dump: Path, dest: Path) -> None:
        # The original grenade's save-state file for SQLite is the database file.
        shutil.copyfile(dump, dest)

    def restore(self, db: str, dump: Path, record: dict[str, Any]) -> None:
        target = self.path(db) or self.dir / str(record.get("source") or f"{db}.db")
        tmp = temp_beside(target)
        try:
            source = sqlite3.connect(f"{dump.resolve().as_uri()}?mode=ro", uri=True)
            _sqlite_backup(source, tmp, f"restoring {self.label(db)} from {dump}")
            if target.exists():
                st = target.stat()
                os.chmod(tmp, st.st_mode & 0o7777)
                if os.geteuid() == 0:
                    os.chown(tmp, st.st_uid, st.st_gid)
            # A journal or WAL left beside the old file belongs to it: SQLite would
            # replay it into the restored one.
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            publish(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def tables(self, db: str) -> dict[str, Any]:
        conn = self.connect(db)
        try:
            return _sqlite_tables(conn)
        except sqlite3.Error as exc:
            raise SnapError(f"describing {self.label(db)}: {exc}") from None
        finally:
            conn.close()

    def values(self, db: str, table: str, columns: list[str]) -> list[list[str]]:
        conn = self.connect(db)
        try:
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        except sqlite3.Error as exc:
            raise SnapError(f"reading {table} of {self.label(db)}: {exc}") from None
        finally:
            conn.close()
        return [["" if c is None else str(c) for c in row] for row in rows]


def _sqlite_backup(source: sqlite3.Connection, dest: Path, what: str) -> None:
    """Copy a database with SQLite's online backup API: a consistent copy even while
    another process writes, which a file copy is not."""
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise SnapError(f"{what}: {exc}") from None
    finally:
        source.close()


def _sqlite_tables(conn: sqlite3.Connection) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY name"
    ).fetchall()
    for (name,) in names:
        columns = [
            {"name": c, "type": t, "nullable": not notnull}
            for _, c, t, notnull, _, _ in conn.execute(
                "SELECT * FROM pragma_table_info(?)", (name,)
            )
        ]
        indexes = []
        for _, index, unique, *_ in conn.execute("SELECT * FROM pragma_index_list(?)", (name,)):
            cols = conn.execute(
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index,)
            ).fetchall()
            cols_named = [c if c is not None else "(expression)" for (c,) in cols]
            indexes.append({"name": index, "unique": bool(unique), "columns": cols_named})
        quoted = '"' + name.replace('"', '""') + '"'
        (rows,) = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()
        tables[name] = {"columns": columns, "indexes": indexes, "rows": rows}
    return tables
