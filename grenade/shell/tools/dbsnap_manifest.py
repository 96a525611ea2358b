"""A snapshot directory's manifest.json: every file's size and sha256 and the dump records
found there (write), and every listed file verified against it (check)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dbsnap_files import (
    FORMAT_VERSION,
    MANIFEST_KIND,
    MANIFEST_NAME,
    RECORD_KIND,
    RECORD_MAX_BYTES,
    SnapError,
    load,
    now,
    publish,
    sha256_file,
)


def _entries(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.parent == root and (name == MANIFEST_NAME or name.startswith(".manifest.")):
                continue
            out.append(path)
        # os.walk does not descend into symlinked directories; they are entries too.
        out.extend(Path(dirpath, d) for d in dirnames if Path(dirpath, d).is_symlink())
    return out


def _read_record(path: Path) -> dict[str, Any] | None:
    if path.suffix != ".json" or path.is_symlink() or path.stat().st_size > RECORD_MAX_BYTES:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == RECORD_KIND else None


def manifest_write(root: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    if not root.is_dir():
        raise SnapError(f"{root} is not a directory")
    files: list[dict[str, Any]] = []
    databases = []
    for path in _entries(root):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            files.append({"path": rel, "symlink": os.readlink(path)})
        elif path.is_file():
            files.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
            record = _read_record(path)
            if record is not None:
                dump_path = (path.parent / str(record["file"])).resolve()
                databases.append(
                    {
                        "database": record["database"],
                        "backend": record["backend"],
                        "record": rel,
                        "file": os.path.relpath(dump_path, root.resolve()),
                        "tool": record["tool"],
                        "server_version": record.get("server_version"),
                        "migration": record["migration"],
                    }
                )
        # Sockets and fifos carry no data a restore could bring back.
    manifest = {
        "kind": MANIFEST_KIND,
        "format_version": FORMAT_VERSION,
        "created_at": now(),
        "files": files,
        "total_bytes": sum(f.get("size", 0) for f in files),
        "databases": databases,
        "metadata": metadata,
    }
    tmp = root / f".manifest.{os.getpid()}.part"
    try:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        publish(tmp, root / MANIFEST_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def manifest_check(root: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """(problems, notes, manifest): every listed file is checked before any is reported."""
    path = root / MANIFEST_NAME
    manifest = load(path, MANIFEST_KIND)
    problems: list[str] = []
    listed = set()
    for entry in manifest["files"]:
        rel = str(entry["path"])
        listed.add(rel)
        if os.path.isabs(rel) or ".." in Path(rel).parts:
            problems.append(f"{rel}: not a path inside {root}")
            continue
        file = root / rel
        if "symlink" in entry:
            if not file.is_symlink():
                problems.append(f"{file}: missing (a symlink to {entry['symlink']} in {path})")
            elif os.readlink(file) != entry["symlink"]:
                problems.append(
                    f"{file}: points to {os.readlink(file)}, {path} says {entry['symlink']}"
                )
        elif not file.is_file():
            problems.append(f"{file}: missing (sha256 {entry['sha256']} in {path})")
        else:
            digest = sha256_file(file)
            if digest != entry["sha256"]:
                problems.append(
                    f"{file}: sha256 {digest}, {path} says {entry['sha256']}"
                    f" (size {file.stat().st_size}, recorded {entry['size']})"
                )
    notes = [
        f"{p}: not in {path}"
        for p in _entries(root)
        if p.relative_to(root).as_posix() not in listed
    ]
    return problems, notes, manifest
