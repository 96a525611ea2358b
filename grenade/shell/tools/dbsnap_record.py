"""One database's snapshot, whatever its backend: describe it, dump it with its record,
restore it from that record and check it against the description the record holds."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dbsnap_backend import Backend
from dbsnap_files import (
    FORMAT_VERSION,
    RECORD_KIND,
    SnapError,
    now,
    publish,
    sha256_file,
    temp_beside,
    write_json,
)
from dbsnap_sqlite import SQLite


def migration(backend: Backend, db: str, tables: dict[str, Any]) -> dict[str, Any] | None:
    """The schema version the services' migration tool recorded: alembic's heads (several
    for keystone's expand/contract branches), else sqlalchemy-migrate's versions."""
    if "alembic_version" in tables:
        rows = backend.values(db, "alembic_version", ["version_num"])
        return {"scheme": "alembic", "versions": sorted(r[0] for r in rows)}
    if "migrate_version" in tables:
        rows = backend.values(db, "migrate_version", ["repository_id", "version"])
        return {"scheme": "sqlalchemy-migrate", "versions": sorted(f"{r}:{v}" for r, v in rows)}
    return None


def describe(backend: Backend, db: str) -> dict[str, Any]:
    tables = backend.tables(db)
    return {
        "database": db,
        "backend": backend.name,
        "migration": migration(backend, db, tables),
        "tables": {name: tables[name] for name in sorted(tables)},
    }


def dump(backend: Backend, db: str, file: Path, record_path: Path, sql_copy: Path | None) -> dict:
    started = time.monotonic()
    server = backend.require(db)
    source = backend.path(db) if isinstance(backend, SQLite) else None
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(file)
    try:
        tool = backend.dump(db, tmp)
        publish(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    # SQLite's description comes from the dump itself: exactly what a restore gives back.
    # The servers' is read right after the dump, with the services stopped.
    if isinstance(backend, SQLite):
        backend.pinned[db] = file
    description = describe(backend, db)
    if sql_copy is not None:
        sql_tmp = temp_beside(sql_copy)
        try:
            backend.sql_copy(db, file, sql_tmp)
            publish(sql_tmp, sql_copy)
        finally:
            sql_tmp.unlink(missing_ok=True)
    record: dict[str, Any] = {
        "kind": RECORD_KIND,
        "format_version": FORMAT_VERSION,
        "database": db,
        "backend": backend.name,
        "server": backend.where(),
        "server_version": server,
        "file": os.path.relpath(file.resolve(), record_path.resolve().parent),
        "format": backend.dump_format,
        "size": file.stat().st_size,
        "sha256": sha256_file(file),
        "tool": tool,
        "migration": description["migration"],
        "describe": description,
        "created_at": now(),
        "seconds": round(time.monotonic() - started, 3),
    }
    if source is not None:
        record["source"] = source.name
    write_json(record_path, record)
    return record


def _differences(recorded: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What a restored database has that its snapshot had not, table by table."""
    out = []
    for table in sorted(set(recorded) | set(actual)):
        if table not in actual:
            out.append(f"table {table} is missing")
        elif table not in recorded:
            out.append(f"table {table} was not in the snapshot")
        elif recorded[table]["rows"] != actual[table]["rows"]:
            out.append(
                f"table {table} has {actual[table]['rows']} rows, "
                f"the snapshot had {recorded[table]['rows']}"
            )
        elif recorded[table] != actual[table]:
            out.append(f"table {table}: columns or indexes differ from the snapshot")
    return out


def restore(backend: Backend, record_path: Path, record: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    db = str(record["database"])
    if record["backend"] != backend.name:
        raise SnapError(
            f"{record_path} holds a {record['backend']} dump of {db!r}, not a {backend.name} one"
        )
    file = (record_path.parent / str(record["file"])).resolve()
    # Everything is checked before the database is dropped: a bad file leaves it as it is.
    if not file.is_file():
        raise SnapError(f"restoring {backend.label(db)}: the dump file {file} is missing")
    digest = sha256_file(file)
    if digest != record["sha256"]:
        raise SnapError(
            f"restoring {backend.label(db)}: the dump file {file} has sha256 "
            f"{digest}, the record {record_path} says {record['sha256']}"
        )
    backend.restore(db, file, record)
    after = describe(backend, db)
    if after["migration"] != record["migration"]:
        raise SnapError(
            f"restored {backend.label(db)} from {file}, but its migration version is "
            f"{_versions(after['migration'])} where the snapshot recorded "
            f"{_versions(record['migration'])}: the old release's code must not run on it"
        )
    problems = _differences(record["describe"]["tables"], after["tables"])
    if problems:
        raise SnapError(
            f"restored {backend.label(db)} from {file}, but it differs from the "
            "snapshot: " + "; ".join(problems)
        )
    return {
        "database": db,
        "backend": backend.name,
        "file": str(file),
        "sha256": digest,
        "migration": after["migration"],
        "seconds": round(time.monotonic() - started, 3),
    }


def _versions(migration: dict[str, Any] | None) -> str:
    if not migration:
        return "none (no alembic_version or migrate_version table)"
    return f"{migration['scheme']} {', '.join(migration['versions']) or '(no rows)'}"
