"""What every part of dbsnap.py shares: its error, the kinds of JSON it writes, and files
written whole (a temp file beside, then a rename) and checksummed."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

RECORD_KIND = "dbsnap-dump"
MANIFEST_KIND = "dbsnap-manifest"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
PASSWORD_ENV = "DBSNAP_PASSWORD"
# A record is small (a describe of a few hundred tables); bigger JSON files in a
# snapshot dir are service data, not records, and are not parsed.
RECORD_MAX_BYTES = 16 << 20
CHUNK = 1 << 20


class SnapError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_beside(path: Path) -> Path:
    """A new temp file in path's directory: a rename from it onto path is atomic."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(name)


def publish(tmp: Path, path: Path) -> None:
    """Make tmp's complete content appear at path at once (never a half-written file)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_json(path: Path, data: object) -> None:
    tmp = temp_beside(path)
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def load(path: Path, kind: str) -> dict[str, Any]:
    """A record or manifest dbsnap.py wrote (its "kind" says which)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SnapError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise SnapError(f'{path} is not a {kind} (no "kind": "{kind}")')
    return data
