"""OpenStack release names: which release a branch is, which per-release scripts of
a project apply to an upgrade, and which names a release folder may have.

``release_name`` maps a branch to the release that per-release upgrade scripts are
named after (``from-<release>``, ``within-<release>``); ``upgrade_direction`` picks
which of the two applies; ``release_problem`` says what is wrong with a folder's
release name (`grenade lint`).
"""

from __future__ import annotations

import difflib
import re

RELEASE_BRANCH_PREFIXES = ("stable/", "proposed/", "unmaintained/")

# Branches give the per-release folder's name (release_name): stable/<name>
# up to zed, stable/<year>.<n> since. The later code names never name a branch.
# fmt: off
LETTERED_RELEASES = (
    "austin", "bexar", "cactus", "diablo", "essex", "folsom", "grizzly", "havana",
    "icehouse", "juno", "kilo", "liberty", "mitaka", "newton", "ocata", "pike", "queens",
    "rocky", "stein", "train", "ussuri", "victoria", "wallaby", "xena", "yoga", "zed",
)
# fmt: on
NUMBERED_CODE_NAMES = {
    "antelope": "2023.1",
    "bobcat": "2023.2",
    "caracal": "2024.1",
    "dalmatian": "2024.2",
    "epoxy": "2025.1",
    "flamingo": "2025.2",
    "gazpacho": "2026.1",
    "hibiscus": "2026.2",
}
_SERIES = re.compile(r"(20[2-9][0-9])\.([12])")


def release_name(branch: str, override: str | None = None) -> str:
    """The release a branch belongs to: ``stable/X``, ``proposed/X``, ``unmaintained/X`` -> X.

    Anything else (master, a topic branch, a tag) is ``master``. ``override`` wins.
    Unlike the original, ``unmaintained/X`` gives ``X`` (the original's ``master`` is a bug).
    """
    if override:
        return override
    for prefix in RELEASE_BRANCH_PREFIXES:
        if branch.startswith(prefix) and len(branch) > len(prefix):
            return branch[len(prefix) :]
    return "master"


def upgrade_direction(
    base_branch: str, target_branch: str, *, base_release: str | None = None
) -> tuple[str, str]:
    """Which per-release scripts apply: ``("within", rel)`` or ``("from", base rel)``.

    Equal branches are a forward upgrade (``within-<rel>``); anything else, including a
    skip-level upgrade from N-2, uses ``from-<base release>``. ``base_release`` overrides
    the release name derived from ``base_branch``.
    """
    release = release_name(base_branch, base_release)
    if base_branch == target_branch:
        return ("within", release)
    return ("from", release)


def release_problem(release: str) -> tuple[str, str] | None:
    """(severity, why) when no branch gives `release` as its name, else None."""
    if release == "master" or release in LETTERED_RELEASES:
        return None
    series = _SERIES.fullmatch(release)
    if series and int(series.group(1)) >= 2023:
        return None
    if release in NUMBERED_CODE_NAMES:
        number = NUMBERED_CODE_NAMES[release]
        # a run configured with `release: <name>` still applies it: not an error
        return "warning", (
            f"{release} is {number}, whose branch is stable/{number}: the folder "
            f"applies only when a run sets the tree's release to {release}; "
            f"name it after {number}"
        )
    known = [*LETTERED_RELEASES, *NUMBERED_CODE_NAMES, "2025.1", "2025.2", "2026.1"]
    close = difflib.get_close_matches(release, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return "error", f"no release is named {release!r}{hint}: upgrade_project never applies it"
