"""The resource store: ``$SAVE_DIR/grenade_db.ini``, shared with the bash side.

Plugins remember resources between phases with ``resource_save project key value``
and ``resource_get project key`` (``grenade/shell/inc/plugin``, the one writer of
values); this module reads the file with the same rules, and empties it when a run
starts:

* One ``[section]`` per key space (sections are shared: neutron saves under
  ``network``, nova reads from it), lines ``key = value``; the first matching line of
  a key wins.
* A value devstack's ``iniget`` would return unchanged is stored raw, so the
  original tools still read the file.  Anything else (newlines, tabs, leading or
  trailing or double blanks, glob characters, a leading ``-n``-like echo option,
  text starting with the marker) is stored as ``grenade-b64:<base64 of the UTF-8
  bytes>``.  Nothing is ever evaluated.
* Writers (bash's ``resource_save``, ``clear`` here) hold ``flock`` on
  ``<file>.lock`` and replace the file atomically, so readers need no lock.

``read_results`` reads the ``resource_result`` reports (one JSON object per line).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from .files import atomic_write, locked

DB_FILE = "grenade_db.ini"
RESULTS_FILE = "resource-results.jsonl"
MARKER = "grenade-b64:"

_BLANKS = " \t"
_ASCII_SPACE = " \t\n\r\v\f"
_NOT_RAW_CHARS = frozenset("\n\r\t\v\f*?[")


def _to_bytes(text: str) -> bytes:
    # surrogateescape: bytes bash wrote that are not UTF-8 survive a round trip.
    return text.encode("utf-8", "surrogateescape")


def _to_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def is_raw(value: str) -> bool:
    """Whether ``value`` is stored as plain text (devstack's iniget returns it as is)."""
    if value.startswith(MARKER) or _NOT_RAW_CHARS.intersection(value):
        return False
    if value.startswith(" ") or value.endswith(" ") or "  " in value:
        return False
    if any(op + "(" in value for op in "+@!"):
        return False
    first = value.split(" ", 1)[0]
    # bash's echo would take these as options (iniget echoes unquoted).
    return not (len(first) > 1 and first[0] == "-" and set(first[1:]) <= set("neE"))


def encode_value(value: str) -> str:
    """The text stored after ``key = `` for ``value``."""
    if is_raw(value):
        return value
    return MARKER + base64.b64encode(_to_bytes(value)).decode("ascii")


def decode_value(stored: str) -> str:
    """The value for the text stored after ``key = ``."""
    if stored.startswith(MARKER):
        return _to_text(base64.b64decode(stored[len(MARKER) :], validate=True))
    return stored


def _header(line: str) -> str | None:
    """Section name of a header line (``[name]...``), else None."""
    if not line.startswith("[") or "]" not in line:
        return None
    return line[1:].split("]", 1)[0].strip(_BLANKS)


def _value_of(line: str, key: str) -> str | None:
    """The trimmed value if ``line`` is ``key<blanks>=value``, else None."""
    if not line.startswith(key):
        return None
    rest = line[len(key) :].lstrip(_BLANKS)
    if not rest.startswith("="):
        return None
    return rest[1:].strip(_BLANKS)


def _split_lines(text: str) -> list[str]:
    # Only "\n" ends a line, as for bash's read; a final newline adds no line.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class ResourceStore:
    """The INI resource store at ``path`` (normally ``$SAVE_DIR/grenade_db.ini``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")

    @classmethod
    def in_save_dir(cls, save_dir: str | os.PathLike[str]) -> ResourceStore:
        return cls(Path(save_dir) / DB_FILE)

    def _lines(self) -> list[str]:
        try:
            return _split_lines(_to_text(self.path.read_bytes()))
        except FileNotFoundError:
            return []

    def _locked(self) -> AbstractContextManager[None]:
        return locked(self.lock_path)

    def _replace(self, lines: list[str]) -> None:
        atomic_write(self.path, _to_bytes("".join(line + "\n" for line in lines)))

    def get(self, section: str, key: str) -> str | None:
        """The value of ``key`` in ``section``, or None when it is not stored."""
        current = None
        for line in self._lines():
            name = _header(line)
            if name is not None:
                current = name
                continue
            if current == section:
                stored = _value_of(line, key)
                if stored is not None:
                    return decode_value(stored)
        return None

    def sections(self) -> dict[str, dict[str, str]]:
        """Every section with its keys and decoded values (first line of a key wins)."""
        result: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in self._lines():
            name = _header(line)
            if name is not None:
                current = result.setdefault(name, {})
                continue
            if current is None or "=" not in line or line[:1] in ("#", ";"):
                continue
            key, stored = line.split("=", 1)
            key = key.rstrip(_BLANKS)
            if key and key not in current:
                current[key] = decode_value(stored.strip(_BLANKS))
        return result

    def clear(self) -> None:
        """Empty the store (the start of a run)."""
        with self._locked():
            self._replace([])


def read_results(save_dir: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The ``resource_result`` reports of a run, in the order they were made."""
    path = Path(save_dir) / RESULTS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n") if line.strip()]


_Check = TypeVar("_Check", bound=Mapping[str, str])


def latest_attempts(checks: Sequence[_Check]) -> list[_Check]:
    """The checks of each step's last attempt: a resumed run re-runs a failed step, and
    its results replace the failed attempt's (results are appended in run order; one
    attempt is one `run` of a project's phase on a host)."""
    last: dict[tuple[str, str, str], str] = {}
    for c in checks:
        last[(c.get("project", ""), c.get("phase", ""), c.get("host", ""))] = c.get("run", "")
    return [
        c
        for c in checks
        if last[(c.get("project", ""), c.get("phase", ""), c.get("host", ""))] == c.get("run", "")
    ]
