"""Continuing a run: what it was made of, and whether a task may continue it.

A run is continued (by a later task, or `run --resume` after a failure) only if
the trees' SHAs, the plugins, the settings files, the configuration and the host
set are what they were at setup; and a phase runs only after the ones it needs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .errors import StateError
from .plan import KINDS, Step
from .plugins import discover_settings
from .record import SetupRecord
from .session import Session
from .setup import git_sha
from .state import DONE, SKIPPED, fingerprint_diff


def settings_digest(session: Session, setup: SetupRecord) -> str:
    """Hash of the settings files that would be sourced now: names and contents.

    A project added, removed or re-registered since setup changes it, so the
    recorded project list cannot silently go stale.
    """
    plugins = [Path(p.path) for p in setup.plugins]
    digest = hashlib.sha256()
    for path in discover_settings(session.cfg.projects_dirs, plugins):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def fingerprint(session: Session, setup: SetupRecord) -> dict[str, Any]:
    """What the run is made of, as recorded at setup."""
    return {
        "base_tree": f"{setup.base.path}@{setup.base.sha}",
        "target_tree": f"{setup.target.path}@{setup.target.sha}",
        "plugins": {p.name: p.sha for p in setup.plugins},
        "projects": [f"{p.name}:{p.dir}" for p in setup.settings.projects],
        "settings": settings_digest(session, setup),
        "config": session.cfg.digest(),
        "hosts": session.inventory.host_names,
    }


def current_fingerprint(session: Session) -> dict[str, Any]:
    """The same, recomputed from what is on disk now (tree SHAs may have moved)."""
    setup = session.setup
    fp = dict(session.state.fingerprint)
    fp["config"] = session.cfg.digest()
    fp["settings"] = settings_digest(session, setup)
    fp["hosts"] = session.inventory.host_names
    for side, key in (("base", "base_tree"), ("target", "target_tree")):
        path = Path(setup.tree(side).path)
        fp[key] = f"{path}@{git_sha(path)}"
    fp["plugins"] = {p.name: git_sha(Path(p.path)) for p in setup.plugins}
    return fp


def check_fingerprint(session: Session) -> None:
    changes = fingerprint_diff(session.state.fingerprint, current_fingerprint(session))
    if changes:
        raise StateError(
            "the run on this stack_root was made from something else; refusing to "
            "continue it:\n  "
            + "\n  ".join(changes)
            + "\n(use --force to start a new run, or `invoke clean`)"
        )


def check_not_failed(session: Session, resume: bool, force: bool) -> None:
    """A failed run is continued only when asked to."""
    failed = session.state.failed_step
    if failed and not (resume or force):
        raise StateError(
            f"the run failed at step {failed}; use `--resume` to "
            "continue from it, `--force` to re-run, or `invoke clean`"
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
        raise StateError(
            f"phase {kinds[0]} needs earlier steps first; not done: "
            + ", ".join(missing[:8])
            + (" ..." if len(missing) > 8 else "")
            + "\n(run the earlier tasks, e.g. `invoke run`, or `invoke run --from "
            f"{kinds[0]}` to skip them deliberately)"
        )


def steps_to_skip(session: Session, plan: list[Step], selected: set[str], force: bool) -> set[str]:
    """The selected steps already done (none with `force`); says which it skips."""
    done = [s.id for s in plan if s.id in selected and session.state.status(s.id) == DONE]
    if done and not force:
        session.say(
            f"skipping {len(done)} step(s) already done: "
            + ", ".join(done)
            + " (use --force to re-run)"
        )
    return set() if force else set(done)
