"""The fault matrix: tests that try one fault each carry `@fault(...)`.

`scripts/reliability_doc.py` reads these decorators (from the source, without
importing the tests) and writes the table of `doc/reliability.md`;
`tests/test_reliability_doc.py` fails when the document is stale.
"""

from __future__ import annotations

import pytest


def fault(item: str, what: str, exit_code: int | str, outcome: str) -> pytest.MarkDecorator:
    """Mark a test as the matrix row for one fault.

    item:      where it comes from, e.g. "9.2" (issue 9, point 2) or "base" for the
               faults that already worked when the matrix was made
    what:      the fault, as a user would describe it
    exit_code: grenade's exit code for it (an int, or a short text: "130 / 143")
    outcome:   what grenade does about it, in a sentence
    Every argument must be a literal: the document is generated from the source.
    """
    return pytest.mark.fault(item=item, what=what, exit_code=exit_code, outcome=outcome)
