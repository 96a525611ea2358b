"""The lite tree's lock files: each release's ``requirements.lock``.

``lock_release(release, out)`` regenerates a release's ``requirements.lock`` from its
``requirements.in`` with ``uv pip compile`` against PyPI (no upper-constraints here:
the ``.in`` files pin the series' service versions plus the minimal extra pins the
reference measured, ``oslo.policy<6`` up to 2026.1 and ``oslo.db<18`` for 2025.1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from grenade.errors import DeployError

from .tree import TREE_DIR, cache_dir

LOCK_PYTHON = "3.11"


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True)
    if probe.returncode != 0:
        raise DeployError("uv is needed to lock a release: pip install uv")
    return [sys.executable, "-m", "uv"]


def lock_release(release: str, out_path: Path | None = None, source: Path = TREE_DIR) -> Path:
    """Resolve ``releases/<release>/requirements.in`` from PyPI into a lock file.

    The lock targets CPython ``LOCK_PYTHON`` on this platform; its header names the
    command that regenerates it. Returns the path written.
    """
    rel_dir = source / "releases" / release
    spec = rel_dir / "requirements.in"
    if not spec.is_file():
        raise DeployError(f"no {spec}: add the release's requirements first")
    out = Path(out_path) if out_path else rel_dir / "requirements.lock"
    env = {**os.environ, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(cache_dir() / "uv"))}
    cmd = [
        *_uv(),
        "pip",
        "compile",
        "--quiet",
        "--python-version",
        LOCK_PYTHON,
        "--custom-compile-command",
        f"invoke lock --release {release}",
        "--output-file",
        str(out.absolute()),
        "requirements.in",
    ]
    proc = subprocess.run(cmd, cwd=rel_dir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError(
            f"locking {release} failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    return out


def read_lock(path: Path) -> dict[str, str]:
    """``{normalized name: version}`` of a lock file (``name==version`` lines)."""
    pins: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version or ";" in version:
            raise ValueError(f"{path}: not a pinned requirement: {line!r}")
        pins[name.strip().lower().replace("_", "-").replace(".", "-")] = version.strip()
    return pins
