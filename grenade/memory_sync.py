"""The resource memory of a node merged back into the controller's.

Hooks on every host read and write one resource memory: ``$SAVE_DIR/grenade_db.ini``
(``resource_save``/``resource_get``) and the checks they report into
``$SAVE_DIR/resource-results.jsonl``. The controller's files are the memory; a node
works on a copy: before a step there, the controller's store is uploaded to the
node (grenade.fleet); after it, the node's store comes back and `merge_store` takes
the keys the node changed (set, replaced or removed, compared with what was
uploaded) into the controller's store as it is by then. Hosts of one group step
each bring their own changes; two hosts changing the same key in one step: the one
merged last wins. `append_results` adds the lines the node's hooks appended.

Both writes hold the lock the bash side takes (``<file>.lock``, flock), and the
files stay private (0600): the store is replaced atomically, the reports appended.
"""

from __future__ import annotations

import os
from pathlib import Path

from .files import atomic_write, locked
from .resources import DB_FILE, RESULTS_FILE, _header, _split_lines

Store = dict[str, dict[str, str]]  # section -> key -> the text stored after `key = `
Change = tuple[str, str, str | None]  # section, key, stored text (None: removed)


def parse_store(data: bytes) -> Store:
    """Sections and keys as stored (values not decoded), the first line of a key
    winning, as `resource_get` reads them."""
    store: Store = {}
    current: dict[str, str] | None = None
    for line in _split_lines(data.decode("utf-8", "surrogateescape")):
        name = _header(line)
        if name is not None:
            current = store.setdefault(name, {})
            continue
        if current is None or "=" not in line or line[:1] in ("#", ";"):
            continue
        key, stored = line.split("=", 1)
        key = key.rstrip(" \t")
        if key and key not in current:
            current[key] = stored.strip(" \t")
    return store


def render_store(store: Store) -> bytes:
    """The store as the bash writer lays it out: a blank line between sections."""
    blocks = [
        "\n".join([f"[{section}]", *(f"{k} = {v}" for k, v in keys.items())])
        for section, keys in store.items()
    ]
    text = "\n\n".join(blocks)
    return (text + "\n").encode("utf-8", "surrogateescape") if text else b""


def changes(base: bytes, node: bytes) -> list[Change]:
    """What the node did to the store it was given: keys set or replaced, removed."""
    before, after = parse_store(base), parse_store(node)
    found: list[Change] = []
    for section, keys in after.items():
        for key, stored in keys.items():
            if before.get(section, {}).get(key) != stored:
                found.append((section, key, stored))
    for section, keys in before.items():
        for key in keys:
            if key not in after.get(section, {}):
                found.append((section, key, None))
    return found


def apply_changes(store: Store, found: list[Change]) -> Store:
    merged = {section: dict(keys) for section, keys in store.items()}
    for section, key, stored in found:
        if stored is None:
            merged.get(section, {}).pop(key, None)
        else:
            merged.setdefault(section, {})[key] = stored
    return {section: keys for section, keys in merged.items() if keys}


def merge_store(save_dir: Path, base: bytes, node: bytes) -> int:
    """The node's changes (`node` against `base`, what it was given) applied to the
    controller's store; how many keys changed. Nothing is written without changes."""
    found = changes(base, node)
    if not found:
        return 0
    path = save_dir / DB_FILE
    with locked(Path(f"{path}.lock")):
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = b""
        atomic_write(path, render_store(apply_changes(parse_store(current), found)))
    return len(found)


def append_results(save_dir: Path, data: bytes) -> int:
    """The report lines a node's hooks appended, added to the controller's file; how
    many lines. A last line without its newline (a write under way) is left out."""
    complete = data[: data.rfind(b"\n") + 1]
    if not complete:
        return 0
    path = save_dir / RESULTS_FILE
    with locked(Path(f"{path}.lock")):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while complete:
                complete = complete[os.write(fd, complete) :]
        finally:
            os.close(fd)
    return data.count(b"\n")
