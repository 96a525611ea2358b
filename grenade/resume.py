"""Continuing a run: what it was made of, and whether a task may continue it.

A run is continued (by a later task, or `TASK --resume` after a failure) only if
the trees' SHAs and uncommitted files, the plugins, the settings files, the
configuration and the host set are what they were at setup; a refusal names what
changed. A phase runs only after the ones it needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import DEFAULT_ORIGIN
from .errors import StateError, command_hint
from .plan import COARSE, KINDS, Step
from .plugins import discover_settings
from .record import SetupRecord
from .session import Session
from .setup import git_sha
from .state import DONE, SKIPPED, fingerprint_diff
from .trees import local_changes

OLDER_GRENADE = " (a run set up by an older grenade, which kept one hash: what changed is unknown)"


def settings_digests(session: Session, setup: SetupRecord) -> dict[str, str]:
    """A digest of each settings file that would be sourced now, by path.

    A project added, removed or re-registered since setup changes them, so the
    recorded project list cannot silently go stale.
    """
    return {str(path): _digest(path.read_bytes()) for path in _settings_files(session, setup)}


def settings_digest(session: Session, setup: SetupRecord) -> str:
    """All settings files in one hash: what runs set up by an older grenade recorded."""
    digest = hashlib.sha256()
    for path in _settings_files(session, setup):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _settings_files(session: Session, setup: SetupRecord) -> list[Path]:
    return discover_settings(session.cfg.projects_dirs, [Path(p.path) for p in setup.plugins])


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def local_edits(setup: SetupRecord) -> dict[str, dict[str, str] | None]:
    """Uncommitted files of each tree and plugin checkout (grenade.trees.local_changes)."""
    trees = {"base tree": setup.base.path, "target tree": setup.target.path}
    trees.update({f"plugin {p.name}": p.path for p in setup.plugins})
    return {
        f"{label} {path}": local_changes(Path(path)) if path else None
        for label, path in trees.items()
    }


def fingerprint(session: Session, setup: SetupRecord) -> dict[str, Any]:
    """What the run is made of, as recorded at setup."""
    return {
        "base_tree": f"{setup.base.path}@{setup.base.sha}",
        "target_tree": f"{setup.target.path}@{setup.target.sha}",
        "plugins": {p.name: p.sha for p in setup.plugins},
        "projects": [f"{p.name}:{p.dir}" for p in setup.settings.projects],
        "settings": settings_digests(session, setup),
        "config": session.cfg.digests(),
        "hosts": session.inventory.host_names,
        "local_changes": local_edits(setup),
    }


def current_fingerprint(session: Session) -> dict[str, Any]:
    """The same, recomputed from what is on disk now (tree SHAs may have moved), in
    the shape the run recorded (a run set up by an older grenade kept single hashes)."""
    setup = session.setup
    old = session.state.fingerprint
    fp = dict(old)
    legacy = not isinstance(old.get("config"), dict)
    fp["config"] = session.cfg.digest() if legacy else session.cfg.digests()
    if isinstance(old.get("settings"), dict):
        fp["settings"] = settings_digests(session, setup)
    else:
        fp["settings"] = settings_digest(session, setup)
    fp["hosts"] = session.inventory.host_names
    for side, key in (("base", "base_tree"), ("target", "target_tree")):
        path = Path(setup.tree(side).path)
        fp[key] = f"{path}@{git_sha(path)}"
    fp["plugins"] = {p.name: git_sha(Path(p.path)) for p in setup.plugins}
    if "local_changes" in old:
        fp["local_changes"] = local_edits(setup)
    return fp


def describe_changes(session: Session, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one line each: the config key (and
    where it is set now), the settings file, the tree or plugin that moved or has
    uncommitted changes."""
    changes: list[str] = []
    for key in sorted(set(old) | set(new)):
        before, now = old.get(key), new.get(key)
        if before == now:
            continue
        if key in ("base_tree", "target_tree") and before and now:
            path, _, sha = str(before).rpartition("@")
            now_sha = str(now).rpartition("@")[2]
            label = key.replace("_", " ")
            changes.append(f"{label} {path}: HEAD moved since setup ({sha} -> {now_sha})")
        elif isinstance(before, dict) and isinstance(now, dict) and key in _ENTRIES:
            changes += _ENTRIES[key](session, before, now)
        else:
            changes += fingerprint_diff({key: before}, {key: now})
            if key in ("config", "settings"):
                changes[-1] += OLDER_GRENADE
    return changes


def _entry_changes(
    before: dict[str, Any], now: dict[str, Any], name: Callable[[str], str], shown: bool = False
) -> list[str]:
    """One line per entry gone, new or changed; `shown`: the values are fit to print."""
    out = []
    for key in sorted(set(before) | set(now)):
        if key not in now:
            out.append(f"{name(key)}: gone since setup")
        elif key not in before:
            out.append(f"{name(key)}: new since setup")
        elif before[key] != now[key]:
            values = f" ({before[key]} -> {now[key]})" if shown else ""
            out.append(f"{name(key)}: changed since setup{values}")
    return out


def _config_changes(session: Session, before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    def name(key: str) -> str:
        if not key.startswith("grenade."):
            return key  # a localrc or pluginrc file
        where = session.cfg.where(*key.split(".")[1:])
        return f"config key '{key}' ({'now' if where == DEFAULT_ORIGIN else 'now set at'} {where})"

    return _entry_changes(before, now, name)


def _local_changes(session: Session, before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    out = []
    for tree in sorted(set(before) | set(now)):
        was, files = before.get(tree) or {}, now.get(tree) or {}
        edited = sorted(f for f in set(was) | set(files) if was.get(f) != files.get(f))
        if edited:
            listed = ", ".join(edited[:10]) + (
                f" and {len(edited) - 10} more" if len(edited) > 10 else ""
            )
            out.append(f"{tree}: uncommitted changes since setup ({listed})")
    return out


_ENTRIES: dict[str, Callable[[Session, dict[str, Any], dict[str, Any]], list[str]]] = {
    "config": _config_changes,
    "settings": lambda _, before, now: _entry_changes(before, now, lambda p: f"settings file {p}"),
    "plugins": lambda _, before, now: _entry_changes(before, now, lambda n: f"plugin {n}", True),
    "local_changes": _local_changes,
}


def check_fingerprint(session: Session) -> None:
    changes = describe_changes(session, session.state.fingerprint, current_fingerprint(session))
    if changes:
        new_run = command_hint("run" if session.task == "run" else "setup", "--force")
        raise StateError(
            "the run on this stack_root was made from something else; refusing to "
            "continue it:\n  "
            + "\n  ".join(changes)
            + f"\n(undo the change to continue it; {new_run} starts a new run, "
            f"{command_hint('clean')} removes this one)"
        )


def check_not_failed(session: Session, resume: bool, force: bool) -> None:
    """A failed run is continued only when asked to."""
    failed = session.state.failed_step
    if failed and not (resume or force):
        task = session.task
        again = "starts a new run" if task == "run" else "runs its steps again"
        raise StateError(
            f"the run failed at step {failed}; {command_hint(task, '--resume')} continues "
            f"from it, {command_hint(task, '--force')} {again}, "
            f"{command_hint('clean')} removes the run"
        )


def check_order(session: Session, plan: list[Step], kinds: list[str]) -> None:
    """Refuse to run a phase before the ones it needs."""
    first = min(KINDS.index(k) for k in kinds)
    earlier = set(KINDS[:first])
    missing = [
        s.id
        for s in plan
        if s.kind in earlier and session.state.status(s.id) not in (DONE, SKIPPED)
    ]
    if missing:
        kind = next(s.kind for s in plan if s.id == missing[0])
        task = next((name for name, ks in COARSE.items() if kind in ks), "run")
        raise StateError(
            f"phase {kinds[0]} needs earlier steps first; not done: "
            + ", ".join(missing[:8])
            + (" ..." if len(missing) > 8 else "")
            + f"\n({command_hint(task)} runs them, or "
            f"{command_hint('run', '--from', kinds[0])} skips them deliberately)"
        )


def steps_to_skip(session: Session, plan: list[Step], selected: set[str], force: bool) -> set[str]:
    """The selected steps already done (none with `force`); says which it skips."""
    done = [s.id for s in plan if s.id in selected and session.state.status(s.id) == DONE]
    if done and not force:
        session.say(
            f"skipping {len(done)} step(s) already done: "
            + ", ".join(done)
            + f" ({command_hint(session.task, '--force')} re-runs them)"
        )
    return set() if force else set(done)
