"""What changed in a database between two descriptions of it, and what a rollback loses.

A description is what ``tools/dbsnap.py describe`` prints (or the ``describe`` of a dump
record): ``{"database", "backend", "migration", "tables": {name: {"columns": [{"name",
"type", "nullable"}], "indexes": [{"name", "columns", "unique"}], "rows"}}}``.

`compare` gives the upgrade's effect on one database (tables, columns and indexes added,
removed or changed; row counts per table before and after; the migration heads) as
`SchemaDiff`, whose `to_json` is a report.json section and whose `summary` is its line in
the run's summary. `loss` gives, from the description at snapshot time and the one just
before a rollback, the rows the rollback will take away (`RollbackLoss`). Both work on row
*counts*: a row changed in place, or a row added where another was deleted, is not seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Description = Mapping[str, Any]

# Names listed in a detail line before "… and N more".
DETAIL_ITEMS = 8


def description_of(doc: Description) -> Description:
    """The description itself, or the one a dump record carries."""
    inner = doc.get("describe")
    return inner if isinstance(inner, Mapping) else doc


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:DETAIL_ITEMS])
    more = len(items) - DETAIL_ITEMS
    return f"{shown} … and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class ColumnChange:
    table: str
    column: str
    type_before: str
    type_after: str
    nullable_before: bool
    nullable_after: bool

    def describe(self) -> str:
        def shape(type_: str, nullable: bool) -> str:
            return type_ if nullable else f"{type_} NOT NULL"

        before = shape(self.type_before, self.nullable_before)
        return (
            f"{self.table}.{self.column} {before} → {shape(self.type_after, self.nullable_after)}"
        )


@dataclass(frozen=True)
class RowCount:
    """One table's rows on each side; None where the table does not exist."""

    table: str
    before: int | None
    after: int | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        def side(n: int | None) -> str:
            return "–" if n is None else str(n)

        return f"{self.table} {side(self.before)} → {side(self.after)}"


@dataclass(frozen=True)
class SchemaDiff:
    """One database, before and after. Columns and indexes are counted in the tables
    both sides have: a new table's columns come with it."""

    database: str
    migration_before: Mapping[str, Any] | None
    migration_after: Mapping[str, Any] | None
    tables_added: tuple[str, ...]
    tables_removed: tuple[str, ...]
    columns_added: tuple[str, ...]  # table.column
    columns_removed: tuple[str, ...]
    columns_changed: tuple[ColumnChange, ...]
    indexes_added: tuple[str, ...]  # table.index
    indexes_removed: tuple[str, ...]
    indexes_changed: tuple[str, ...]  # same name, other columns or uniqueness
    rows: tuple[RowCount, ...]  # every table of either side

    @property
    def rows_changed(self) -> tuple[RowCount, ...]:
        return tuple(r for r in self.rows if r.changed)

    @property
    def schema_changed(self) -> bool:
        return any(
            (
                self.tables_added,
                self.tables_removed,
                self.columns_added,
                self.columns_removed,
                self.columns_changed,
                self.indexes_added,
                self.indexes_removed,
                self.indexes_changed,
            )
        )

    def migration_change(self) -> str | None:
        """``47147121 → 742c857f1dfb``: the heads that went and came, None if the same."""
        before, after = _heads(self.migration_before), _heads(self.migration_after)
        if before == after:
            return None
        gone = [v for v in before if v not in after] or ["none"]
        came = [v for v in after if v not in before] or ["none"]
        return f"{', '.join(gone)} → {', '.join(came)}"

    def summary(self) -> str:
        """``keystone: +2 tables, +5 columns, -1 index; rows changed in 3 tables``."""
        parts = []
        for kind, added, removed, changed in (
            ("table", self.tables_added, self.tables_removed, ()),
            ("column", self.columns_added, self.columns_removed, self.columns_changed),
            ("index", self.indexes_added, self.indexes_removed, self.indexes_changed),
        ):
            plural = "indexes" if kind == "index" else None
            if added:
                parts.append("+" + _count(len(added), kind, plural))
            if removed:
                parts.append("-" + _count(len(removed), kind, plural))
            if changed:
                parts.append(_count(len(changed), kind, plural) + " changed")
        schema = ", ".join(parts) or "schema unchanged"
        changed_rows = len(self.rows_changed)
        rows = (
            f"rows changed in {_count(changed_rows, 'table')}" if changed_rows else "rows unchanged"
        )
        line = f"{self.database}: {schema}; {rows}"
        migration = self.migration_change()
        return f"{line}; migration {migration}" if migration else line

    def lines(self) -> list[str]:
        """The summary line, then the names behind it (at most two more lines)."""
        out = [self.summary()]
        schema = (
            [f"+table {t}" for t in self.tables_added]
            + [f"-table {t}" for t in self.tables_removed]
            + [f"+column {c}" for c in self.columns_added]
            + [f"-column {c}" for c in self.columns_removed]
            + [f"column {c.describe()}" for c in self.columns_changed]
            + [f"+index {i}" for i in self.indexes_added]
            + [f"-index {i}" for i in self.indexes_removed]
            + [f"index {i} changed" for i in self.indexes_changed]
        )
        if schema:
            out.append(f"  schema: {_listed(schema)}")
        if self.rows_changed:
            out.append(f"  rows: {_listed([r.describe() for r in self.rows_changed])}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "summary": self.summary(),
            "migration": {"before": self.migration_before, "after": self.migration_after},
            "tables": {"added": list(self.tables_added), "removed": list(self.tables_removed)},
            "columns": {
                "added": list(self.columns_added),
                "removed": list(self.columns_removed),
                "changed": [
                    {
                        "table": c.table,
                        "column": c.column,
                        "before": {"type": c.type_before, "nullable": c.nullable_before},
                        "after": {"type": c.type_after, "nullable": c.nullable_after},
                    }
                    for c in self.columns_changed
                ],
            },
            "indexes": {
                "added": list(self.indexes_added),
                "removed": list(self.indexes_removed),
                "changed": list(self.indexes_changed),
            },
            "rows": [{"table": r.table, "before": r.before, "after": r.after} for r in self.rows],
        }


def _heads(migration: Mapping[str, Any] | None) -> list[str]:
    return [str(v) for v in (migration or {}).get("versions", [])]


def _tables(doc: Description) -> Mapping[str, Any]:
    return dict(description_of(doc).get("tables") or {})


def _by_name(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(item["name"]): item for item in items}


def compare(before: Description, after: Description, database: str | None = None) -> SchemaDiff:
    """The differences from before to after (descriptions or dump records)."""
    old, new = _tables(before), _tables(after)
    both = sorted(set(old) & set(new))
    columns_added, columns_removed, columns_changed = [], [], []
    indexes_added, indexes_removed, indexes_changed = [], [], []
    for table in both:
        cols_old, cols_new = _by_name(old[table]["columns"]), _by_name(new[table]["columns"])
        columns_added += [f"{table}.{c}" for c in cols_new if c not in cols_old]
        columns_removed += [f"{table}.{c}" for c in cols_old if c not in cols_new]
        for name in cols_old.keys() & cols_new.keys():
            a, b = cols_old[name], cols_new[name]
            if (a["type"], a["nullable"]) != (b["type"], b["nullable"]):
                columns_changed.append(
                    ColumnChange(table, name, a["type"], b["type"], a["nullable"], b["nullable"])
                )
        idx_old, idx_new = _by_name(old[table]["indexes"]), _by_name(new[table]["indexes"])
        indexes_added += [f"{table}.{i}" for i in sorted(idx_new) if i not in idx_old]
        indexes_removed += [f"{table}.{i}" for i in sorted(idx_old) if i not in idx_new]
        indexes_changed += [
            f"{table}.{i}"
            for i in sorted(idx_old.keys() & idx_new.keys())
            if (idx_old[i]["columns"], idx_old[i]["unique"])
            != (idx_new[i]["columns"], idx_new[i]["unique"])
        ]
    rows = tuple(
        RowCount(t, old[t]["rows"] if t in old else None, new[t]["rows"] if t in new else None)
        for t in sorted(set(old) | set(new))
    )
    return SchemaDiff(
        database=database or str(description_of(after).get("database") or "?"),
        migration_before=description_of(before).get("migration"),
        migration_after=description_of(after).get("migration"),
        tables_added=tuple(sorted(set(new) - set(old))),
        tables_removed=tuple(sorted(set(old) - set(new))),
        columns_added=tuple(columns_added),
        columns_removed=tuple(columns_removed),
        columns_changed=tuple(sorted(columns_changed, key=lambda c: (c.table, c.column))),
        indexes_added=tuple(indexes_added),
        indexes_removed=tuple(indexes_removed),
        indexes_changed=tuple(indexes_changed),
        rows=rows,
    )


def render(diffs: Iterable[SchemaDiff]) -> list[str]:
    """The summary's section: a few lines per database."""
    return [line for diff in diffs for line in diff.lines()]


@dataclass(frozen=True)
class TableLoss:
    """A table whose row count differs between the snapshot and now."""

    table: str
    at_snapshot: int | None  # None: created after the snapshot; the rollback drops it
    now: int | None  # None: dropped after the snapshot; the rollback brings it back

    @property
    def lost(self) -> int:
        """Rows the rollback takes away (at least: counts hide a delete plus an insert)."""
        return max(0, (self.now or 0) - (self.at_snapshot or 0))

    @property
    def returned(self) -> int:
        """Rows deleted since the snapshot that the rollback brings back."""
        return max(0, (self.at_snapshot or 0) - (self.now or 0))


@dataclass(frozen=True)
class RollbackLoss:
    database: str
    tables: tuple[TableLoss, ...]

    @property
    def rows_lost(self) -> int:
        return sum(t.lost for t in self.tables)

    @property
    def rows_returned(self) -> int:
        return sum(t.returned for t in self.tables)

    def summary(self) -> str:
        """``keystone: the rollback loses 3 rows (project 1, revocation_event 2)``."""
        lost = [f"{t.table} {t.lost}" for t in self.tables if t.lost]
        back = [f"{t.table} {t.returned}" for t in self.tables if t.returned]
        if not lost and not back:
            return f"{self.database}: the rollback loses no rows"
        parts = []
        if lost:
            parts.append(f"loses {_count(self.rows_lost, 'row')} ({_listed(lost)})")
        if back:
            parts.append(
                f"brings back {_count(self.rows_returned, 'deleted row')} ({_listed(back)})"
            )
        return f"{self.database}: the rollback {' and '.join(parts)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "summary": self.summary(),
            "rows_lost": self.rows_lost,
            "rows_returned": self.rows_returned,
            "tables": [
                {
                    "table": t.table,
                    "at_snapshot": t.at_snapshot,
                    "now": t.now,
                    "lost": t.lost,
                    "returned": t.returned,
                }
                for t in self.tables
            ],
        }


def loss(snapshot: Description, now: Description, database: str | None = None) -> RollbackLoss:
    """What restoring the snapshot takes away from the database as it is now."""
    diff = compare(snapshot, now, database)
    return RollbackLoss(
        database=diff.database,
        tables=tuple(TableLoss(r.table, r.before, r.after) for r in diff.rows_changed),
    )
