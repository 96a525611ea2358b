"""grenade/dumpdiff.py on descriptions of real databases (dbsnap.py describe) taken before
and after a change, on each backend; then its text on small hand-made descriptions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from test_dbsnap import dbsnap, ok

from grenade.dumpdiff import compare, loss, render

if TYPE_CHECKING:
    from dbservers import DbServer, SqliteDir

    Database = DbServer | SqliteDir

pytest_plugins = ["dbservers"]

SCHEMA = """
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('c88cdce8f248'), ('47147121');
CREATE TABLE project (id VARCHAR(64) NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL);
CREATE UNIQUE INDEX ixu_project_name ON project (name);
CREATE TABLE token (id VARCHAR(64) NOT NULL PRIMARY KEY);
CREATE TABLE assignment (actor_id VARCHAR(64) NOT NULL, target_id VARCHAR(64) NOT NULL);
INSERT INTO project VALUES ('p1', 'admin'), ('p2', 'demo');
INSERT INTO assignment VALUES ('u1', 'p1'), ('u2', 'p2');
"""
UPGRADE = """
UPDATE alembic_version SET version_num = '742c857f1dfb' WHERE version_num = '47147121';
CREATE TABLE access_rule (id INTEGER NOT NULL PRIMARY KEY, service VARCHAR(64));
CREATE TABLE expiring_group_membership (user_id VARCHAR(64) NOT NULL);
ALTER TABLE project ADD COLUMN domain_id VARCHAR(64);
ALTER TABLE project ADD COLUMN is_domain BOOLEAN;
CREATE INDEX ix_project_domain ON project (domain_id);
DROP TABLE token;
INSERT INTO project (id, name) VALUES ('p3', 'extra');
INSERT INTO access_rule VALUES (1, 'compute');
"""
# What SQLite cannot do (change a column's type) or spells its own way.
UPGRADE_BY_BACKEND = {
    "postgresql": "DROP INDEX ixu_project_name;"
    "ALTER TABLE project ALTER COLUMN name TYPE VARCHAR(255);",
    "mysql": "DROP INDEX ixu_project_name ON project;"
    "ALTER TABLE project MODIFY name VARCHAR(255) NOT NULL;",
    "sqlite": "DROP INDEX ixu_project_name;",
}
NAME_TYPES = {"postgresql": "character varying", "mysql": "varchar"}


def describe(db: Database, name: str) -> dict:
    return json.loads(ok(dbsnap(db, "describe", *db.conn_args(), name)).stdout)


def test_compare_sees_what_an_upgrade_changed(database: Database) -> None:
    database.create_db("dd_upgrade")
    database.sql("dd_upgrade", SCHEMA)
    before = describe(database, "dd_upgrade")
    database.sql("dd_upgrade", UPGRADE + UPGRADE_BY_BACKEND[database.backend])
    after = describe(database, "dd_upgrade")

    diff = compare(before, after)
    assert diff.database == "dd_upgrade"
    assert diff.tables_added == ("access_rule", "expiring_group_membership")
    assert diff.tables_removed == ("token",)
    assert diff.columns_added == ("project.domain_id", "project.is_domain")
    assert diff.columns_removed == ()
    assert diff.indexes_added == ("project.ix_project_domain",)
    assert diff.indexes_removed == ("project.ixu_project_name",)
    assert [(r.table, r.before, r.after) for r in diff.rows_changed] == [
        ("access_rule", None, 1),
        ("expiring_group_membership", None, 0),
        ("project", 2, 3),
        ("token", 0, None),
    ]
    assert diff.migration_change() == "47147121 → 742c857f1dfb"
    changed = "" if database.backend == "sqlite" else "1 column changed, "
    assert diff.summary() == (
        f"dd_upgrade: +2 tables, -1 table, +2 columns, {changed}+1 index, -1 index; "
        "rows changed in 4 tables; migration 47147121 → 742c857f1dfb"
    )
    if database.backend != "sqlite":
        (column,) = diff.columns_changed
        kind = NAME_TYPES[database.backend]
        assert (column.table, column.column) == ("project", "name")
        assert (column.type_before, column.type_after) == (f"{kind}(64)", f"{kind}(255)")
    report = json.loads(json.dumps(diff.to_json()))
    assert report["tables"] == {
        "added": ["access_rule", "expiring_group_membership"],
        "removed": ["token"],
    }
    assert {"table": "project", "before": 2, "after": 3} in report["rows"]
    assert {"table": "assignment", "before": 2, "after": 2} in report["rows"]
    assert report["migration"]["after"]["versions"] == ["742c857f1dfb", "c88cdce8f248"]
    lines = render([diff])
    assert lines[0] == diff.summary()
    assert lines[1].startswith("  schema: +table access_rule, +table expiring_group_membership")
    assert lines[2] == (
        "  rows: access_rule – → 1, expiring_group_membership – → 0, project 2 → 3, token 0 → –"
    )
    assert compare(after, after).summary() == "dd_upgrade: schema unchanged; rows unchanged"


def test_loss_reports_a_project_created_after_the_snapshot(
    database: Database, tmp_path: Path
) -> None:
    database.create_db("dd_loss")
    database.sql("dd_loss", SCHEMA)
    dump = tmp_path / "dd_loss.dump"
    snapshot = json.loads(
        ok(dbsnap(database, "dump", *database.conn_args(), "dd_loss", str(dump))).stdout
    )
    # After the snapshot: a project, a revoked token (a new table's rows), a deletion.
    database.sql(
        "dd_loss",
        "INSERT INTO project VALUES ('p3', 'created-after');"
        "CREATE TABLE revocation_event (id INTEGER NOT NULL PRIMARY KEY);"
        "INSERT INTO revocation_event VALUES (1), (2);"
        "DELETE FROM assignment WHERE actor_id = 'u2';",
    )
    lost = loss(snapshot, describe(database, "dd_loss"))
    assert lost.database == "dd_loss"
    assert [(t.table, t.at_snapshot, t.now, t.lost, t.returned) for t in lost.tables] == [
        ("assignment", 2, 1, 0, 1),
        ("project", 2, 3, 1, 0),
        ("revocation_event", None, 2, 2, 0),
    ]
    assert lost.summary() == (
        "dd_loss: the rollback loses 3 rows (project 1, revocation_event 2) "
        "and brings back 1 deleted row (assignment 1)"
    )
    assert json.loads(json.dumps(lost.to_json()))["rows_lost"] == 3
    # Restored, nothing is left to lose.
    ok(dbsnap(database, "restore", *database.conn_args(), f"{dump}.json"))
    after = loss(snapshot, describe(database, "dd_loss"))
    assert after.tables == () and after.summary() == "dd_loss: the rollback loses no rows"


def _table(rows: int, *columns: str) -> dict:
    return {
        "columns": [{"name": c, "type": "text", "nullable": True} for c in columns],
        "indexes": [],
        "rows": rows,
    }


def test_text_counts_and_truncates() -> None:
    before = {"database": "glance", "migration": None, "tables": {"images": _table(1, "id")}}
    new_tables = {f"t{i:02d}": _table(0) for i in range(10)}
    after = {
        "database": "glance",
        "migration": {"scheme": "alembic", "versions": ["2024_1_contract01"]},
        "tables": {"images": _table(1, "id", "os_hidden"), **new_tables},
    }
    diff = compare(before, after)
    assert diff.summary() == (
        "glance: +10 tables, +1 column; rows changed in 10 tables; "
        "migration none → 2024_1_contract01"
    )
    schema = render([diff])[1]
    assert schema.endswith("+table t07 … and 3 more")
    # A dump record is read through its description.
    record = {"kind": "dbsnap-dump", "database": "glance", "describe": after}
    assert compare(after, record).summary() == "glance: schema unchanged; rows unchanged"
