"""The lite devstack tree: where its source is, which release each branch deploys,
and where downloads are kept between runs."""

from __future__ import annotations

import os
from pathlib import Path

from grenade import LITE_TREE

TREE_DIR = LITE_TREE  # the source of every branch, shipped inside the package

# Branch of the lite repository -> the release it deploys.
BRANCHES: dict[str, str] = {
    "stable/2025.1": "2025.1",
    "stable/2025.2": "2025.2",
    "stable/2026.1": "2026.1",
    "master": "2026.2",
}


def release_of(tree: Path) -> str | None:
    """The release a checked-out branch deploys (its ``RELEASE`` marker), if any."""
    marker = tree / "RELEASE"
    return marker.read_text().strip() if marker.is_file() else None


def cache_dir() -> Path:
    """Where downloads survive between runs (uv's cache lives in ``uv/`` below it)."""
    env = os.environ.get("GRENADE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "grenade"
