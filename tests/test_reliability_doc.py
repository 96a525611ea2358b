"""doc/reliability.md lists every fault the tests try, as `scripts/reliability_doc.py`
generates it from their `@fault` marks."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_the_fault_table_is_current():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "reliability_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
