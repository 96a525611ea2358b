"""The run's reports in `$STACK_ROOT/logs/report/`: junit.xml, report.json (its
schema is `report.schema.json` beside this file) and report.html, rewritten after
every step by an observer of the step runner (`Reports`)."""

from __future__ import annotations

from pathlib import Path

from .matrix import matrix_table, survival_matrix
from .observer import REPORT_DIR, Reports

SCHEMA_FILE = Path(__file__).with_name("report.schema.json")

__all__ = ["REPORT_DIR", "SCHEMA_FILE", "Reports", "matrix_table", "survival_matrix"]
