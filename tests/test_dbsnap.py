"""dbsnap.py on real databases: a private PostgreSQL cluster, a private MariaDB server and
SQLite files (tests/dbservers.py), driven through its command line as the bash hooks run it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from grenade import SHELL_DIR

if TYPE_CHECKING:
    # Imported by pytest as the plugin below, before this module: then its asserts
    # are rewritten too.
    from dbservers import DbServer, SqliteDir

    Database = DbServer | SqliteDir

pytest_plugins = ["dbservers"]

TOOL = SHELL_DIR / "tools" / "dbsnap.py"

# keystone's shape in miniature: two alembic heads (expand and contract branches).
SCHEMA = """
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('c88cdce8f248');
INSERT INTO alembic_version VALUES ('47147121');
CREATE TABLE project (id VARCHAR(64) NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL,
                      enabled BOOLEAN);
CREATE UNIQUE INDEX ixu_project_name ON project (name);
INSERT INTO project VALUES ('p1', 'admin', TRUE);
INSERT INTO project VALUES ('p2', 'demo', TRUE);
CREATE VIEW enabled_project AS SELECT id FROM project WHERE enabled;
"""
# mysqldump leaves triggers and routines out unless told.
MYSQL_EXTRAS = """
CREATE TRIGGER project_lower BEFORE INSERT ON project FOR EACH ROW SET NEW.name = LOWER(NEW.name);
CREATE FUNCTION one() RETURNS INTEGER DETERMINISTIC RETURN 1;
"""
# What an upgrade and the cloud's use after it do: a migration, a new table, new rows
# and a deleted one.
AFTER_UPGRADE = """
UPDATE alembic_version SET version_num = '742c857f1dfb' WHERE version_num = '47147121';
CREATE TABLE revocation_event (id INTEGER NOT NULL PRIMARY KEY, project_id VARCHAR(64));
INSERT INTO revocation_event VALUES (1, 'p2');
INSERT INTO project VALUES ('p3', 'extra', FALSE);
DELETE FROM project WHERE id = 'p1';
"""
HEADS = {"scheme": "alembic", "versions": ["47147121", "c88cdce8f248"]}


def dbsnap(db: Database | None, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        env=db.env() if db else dict(os.environ),
        timeout=120,
    )
    # Whatever happens, the password never reaches the output.
    if db and db.password:
        assert db.password not in proc.stdout + proc.stderr
    return proc


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stderr
    return proc


def keystone(db: Database, name: str) -> None:
    db.create_db(name)
    db.sql(name, SCHEMA)


def describe(db: Database, name: str) -> dict:
    return json.loads(ok(dbsnap(db, "describe", *db.conn_args(), name)).stdout)


def test_dump_and_restore_round_trip(database: Database, tmp_path: Path) -> None:
    keystone(database, "ks_round")
    if database.backend == "mysql":
        database.sql("ks_round", MYSQL_EXTRAS)
    dump = tmp_path / "snap" / "ks_round.dump"
    sql_copy = tmp_path / "ks_round.sql.2025.2"
    args = [*database.conn_args(), "ks_round", str(dump), "--sql-copy", str(sql_copy)]
    out = ok(dbsnap(database, "dump", *args))
    record = json.loads(out.stdout)
    assert json.loads(Path(f"{dump}.json").read_text()) == record
    assert record["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert record["size"] == dump.stat().st_size
    assert record["file"] == "ks_round.dump"  # beside its record
    assert record["backend"] == database.backend and record["database"] == "ks_round"
    assert record["migration"] == HEADS
    assert record["tool"]["version"]
    project = record["describe"]["tables"]["project"]
    assert project["rows"] == 2
    assert [c["name"] for c in project["columns"]] == ["id", "name", "enabled"]
    assert {"name": "ixu_project_name", "unique": True, "columns": ["name"]} in project["indexes"]
    assert {c["name"]: c["nullable"] for c in project["columns"]}["name"] is False

    copy = sql_copy.read_bytes()
    if database.backend == "sqlite":
        assert copy.startswith(b"SQLite format 3\0")  # as the original's save_sqlite_dbs
    else:
        assert b"CREATE TABLE" in copy and b"ixu_project_name" in copy

    database.sql("ks_round", AFTER_UPGRADE)
    assert "revocation_event" in describe(database, "ks_round")["tables"]
    result = json.loads(
        ok(dbsnap(database, "restore", *database.conn_args(), f"{dump}.json")).stdout
    )
    assert result["migration"] == HEADS and result["sha256"] == record["sha256"]
    restored = describe(database, "ks_round")
    assert restored == record["describe"]
    assert "revocation_event" not in restored["tables"]
    rows = database.sql("ks_round", "SELECT id, name FROM project ORDER BY id;")
    assert rows.split() == ["p1", "admin", "p2", "demo"]
    assert database.sql("ks_round", "SELECT count(*) FROM enabled_project;").split() == ["2"]
    if database.backend == "mysql":
        database.sql("ks_round", "INSERT INTO project VALUES ('p9', 'UPPER', TRUE);")
        lowered = "SELECT name, one() FROM project WHERE id = 'p9';"
        assert database.sql("ks_round", lowered).split() == ["upper", "1"]


def test_restore_refuses_a_migration_version_the_snapshot_did_not_record(
    database: Database, tmp_path: Path
) -> None:
    keystone(database, "ks_mig")
    dump = tmp_path / "ks_mig.dump"
    ok(dbsnap(database, "dump", *database.conn_args(), "ks_mig", str(dump)))
    # A record that says the snapshot was taken after the expand migration.
    record_path = Path(f"{dump}.json")
    record = json.loads(record_path.read_text())
    record["migration"]["versions"] = ["742c857f1dfb", "c88cdce8f248"]
    record_path.write_text(json.dumps(record))
    proc = dbsnap(database, "restore", *database.conn_args(), str(record_path))
    assert proc.returncode == 1
    assert f"{database.backend} database 'ks_mig'" in proc.stderr
    assert "migration version is alembic 47147121, c88cdce8f248" in proc.stderr
    assert "the snapshot recorded alembic 742c857f1dfb, c88cdce8f248" in proc.stderr


def test_restore_refuses_a_changed_dump_before_touching_the_database(
    database: Database, tmp_path: Path
) -> None:
    keystone(database, "ks_bad")
    dump = tmp_path / "ks_bad.dump"
    record = json.loads(
        ok(dbsnap(database, "dump", *database.conn_args(), "ks_bad", str(dump))).stdout
    )
    database.sql("ks_bad", AFTER_UPGRADE)
    with open(dump, "ab") as f:
        f.write(b"\0")
    proc = dbsnap(database, "restore", *database.conn_args(), f"{dump}.json")
    assert proc.returncode == 1
    actual = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert f"{database.backend} database 'ks_bad'" in proc.stderr
    assert f"the dump file {dump} has sha256 {actual}" in proc.stderr
    assert record["sha256"] in proc.stderr
    # Untouched: still the upgraded database.
    assert "revocation_event" in describe(database, "ks_bad")["tables"]
    dump.unlink()
    proc = dbsnap(database, "restore", *database.conn_args(), f"{dump}.json")
    assert proc.returncode == 1 and f"the dump file {dump} is missing" in proc.stderr


def test_a_wrong_database_is_named_with_its_backend(database: Database, tmp_path: Path) -> None:
    for command in (["dump", "nosuch_db", str(tmp_path / "x.dump")], ["describe", "nosuch_db"]):
        proc = dbsnap(database, command[0], *database.conn_args(), *command[1:])
        assert proc.returncode == 1
        assert f"dbsnap: {command[0]}: {database.backend} database 'nosuch_db' does not exist" in (
            proc.stderr
        )
    assert not (tmp_path / "x.dump").exists()


def test_migration_version_of_sqlalchemy_migrate_and_of_none(database: Database) -> None:
    database.create_db("old_migrate")
    database.sql(
        "old_migrate",
        "CREATE TABLE migrate_version (repository_id VARCHAR(250) NOT NULL PRIMARY KEY,"
        " repository_path TEXT, version INTEGER);"
        "INSERT INTO migrate_version VALUES ('keystone', '/x', 67);",
    )
    migration = describe(database, "old_migrate")["migration"]
    assert migration == {"scheme": "sqlalchemy-migrate", "versions": ["keystone:67"]}
    database.create_db("no_migrations")
    database.sql("no_migrations", "CREATE TABLE t (id INTEGER);")
    assert describe(database, "no_migrations")["migration"] is None


def test_a_wrong_password_fails_naming_the_database_not_the_password(
    postgres_server: DbServer, mariadb_server: DbServer
) -> None:
    for server in (postgres_server, mariadb_server):
        wrong = replace(server, password="not-" + server.password)
        proc = dbsnap(wrong, "describe", *server.conn_args(), "postgres")
        assert proc.returncode == 1
        assert f"{server.backend} database 'postgres': cannot reach the server" in proc.stderr
        assert f"127.0.0.1:{server.port}" in proc.stderr


def test_sqlite_restore_replaces_the_file_and_its_stale_journal(sqlite_dir: SqliteDir) -> None:
    db, tmp_path = sqlite_dir, sqlite_dir.dir
    keystone(db, "glance")
    live = tmp_path / "glance.db"
    os.chmod(live, 0o640)
    ok(dbsnap(db, "dump", *db.conn_args(), "glance", str(tmp_path / "snap" / "glance.dump")))
    db.sql("glance", AFTER_UPGRADE)
    inode = live.stat().st_ino
    # Left by a crashed writer of the upgraded file: replayed into the restored one, it
    # would bring the upgrade back.
    Path(f"{live}-wal").write_bytes(b"stale")
    ok(dbsnap(db, "restore", *db.conn_args(), str(tmp_path / "snap" / "glance.dump.json")))
    assert live.stat().st_ino != inode and oct(live.stat().st_mode & 0o777) == "0o640"
    assert not Path(f"{live}-wal").exists()
    with sqlite3.connect(live) as conn:
        assert conn.execute("SELECT count(*) FROM project").fetchone() == (2,)
    assert not list(tmp_path.glob(".glance.db.*"))  # no temp file left


def test_manifest_names_every_missing_or_changed_file(
    sqlite_dir: SqliteDir, tmp_path: Path
) -> None:
    db = sqlite_dir
    keystone(db, "keystone")
    snap = tmp_path / "snapshots" / "pre_upgrade"
    ok(dbsnap(db, "dump", *db.conn_args(), "keystone", str(snap / "db" / "keystone.dump")))
    (snap / "etc" / "keystone").mkdir(parents=True)
    (snap / "etc" / "keystone" / "keystone.conf").write_text("[database]\n")
    (snap / "data" / "fernet-keys").mkdir(parents=True)
    (snap / "data" / "fernet-keys" / "0").write_text("key0")
    (snap / "data" / "current").symlink_to("fernet-keys")
    (tmp_path / "meta.json").write_text('{"base": "2025.2"}')
    meta = ["--meta", "label=pre_upgrade", "--meta", 'projects=["keystone"]']
    meta += ["--meta-file", f"release={tmp_path / 'meta.json'}"]
    out = ok(dbsnap(None, "manifest", "write", str(snap), *meta))
    assert "5 files" in out.stdout and "1 database dumps" in out.stdout
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["metadata"] == {
        "label": "pre_upgrade",
        "projects": ["keystone"],
        "release": {"base": "2025.2"},
    }
    paths = {f["path"]: f for f in manifest["files"]}
    assert set(paths) == {
        "data/current",
        "data/fernet-keys/0",
        "db/keystone.dump",
        "db/keystone.dump.json",
        "etc/keystone/keystone.conf",
    }
    assert paths["data/current"] == {"path": "data/current", "symlink": "fernet-keys"}
    assert paths["data/fernet-keys/0"]["sha256"] == hashlib.sha256(b"key0").hexdigest()
    (database,) = manifest["databases"]
    assert database["database"] == "keystone" and database["file"] == "db/keystone.dump"
    assert database["migration"] == HEADS and database["tool"]["name"]
    assert ok(dbsnap(None, "manifest", "check", str(snap))).stdout.endswith(
        "5 files match manifest.json\n"
    )

    dump = snap / "db" / "keystone.dump"
    recorded = paths["db/keystone.dump"]["sha256"]
    dump.write_bytes(dump.read_bytes()[:-1] + b"X")
    (snap / "etc" / "keystone" / "keystone.conf").unlink()
    (snap / "new-file").write_text("x")
    proc = dbsnap(None, "manifest", "check", str(snap))
    assert proc.returncode == 1
    actual = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert f"{dump}: sha256 {actual}, {snap / 'manifest.json'} says {recorded}" in proc.stderr
    conf = paths["etc/keystone/keystone.conf"]["sha256"]
    assert f"{snap / 'etc/keystone/keystone.conf'}: missing (sha256 {conf}" in proc.stderr
    assert "2 of 5 files missing or changed" in proc.stderr
    assert f"note: {snap / 'new-file'}: not in" in proc.stderr  # noted, not refused


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert dbsnap(None, "describe", "keystone").returncode == 2
    proc = dbsnap(None, "describe", "--backend", "sqlite", "keystone")
    assert proc.returncode == 2 and "--sqlite-dir" in proc.stderr
    proc = dbsnap(None, "manifest", "check", str(tmp_path))
    assert proc.returncode == 1 and f"cannot read {tmp_path / 'manifest.json'}" in proc.stderr
