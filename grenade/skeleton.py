"""`grenade new-plugin NAME`: a working external-plugin skeleton to start from.

It writes `DIR/devstack/upgrade/` with `settings`, `upgrade.sh`, `shutdown.sh` and
`resources.sh`. As written it passes `grenade lint` and a full run on any cloud: its
resource is a value in grenade's resource store, and its service-specific commands run
only when the service NAME is enabled, so the author replaces them step by step.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

# What a project name may be: it becomes a word in bash (never quoted, so never
# anything bash would expand or split) and part of function names.
NAME = re.compile(r"[a-z][a-z0-9_-]*")

SETTINGS = """\
# settings - sourced by grenade in bash, with the target devstack's functions
# loaded and ENABLED_SERVICES of the base cloud, to register @NAME@.
register_project_for_upgrade @NAME@

# A database whose rows must survive the upgrade is dumped before and after it
# when registered here: register_db_to_save @NAME@
"""

UPGRADE = """\
#!/usr/bin/env bash
#
# upgrade.sh - upgrade @NAME@ to the target release.  Run by grenade after every
# project's shutdown.sh, with TOP_DIR the target devstack tree.

RUN_DIR=$(cd "$(dirname "$0")" && pwd)

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

upgrade_begin
set -o errexit
set -o xtrace

# Per-release changes: from-<base release>/upgrade-@NAME@ (or within-<release>/)
# defining configure_@NAME@_upgrade, applied when present.
upgrade_project @NAME@ "$RUN_DIR" "$BASE_DEVSTACK_BRANCH" "$TARGET_DEVSTACK_BRANCH"

# The service itself, when the cloud runs it: the target release's code and
# configuration, its schema migrations, then the service started again.
if is_service_enabled @NAME@; then
    source "$TARGET_DEVSTACK_DIR/stackrc"
    source "$TARGET_DEVSTACK_DIR/lib/@NAME@"
    save_config_dir @NAME@ "/etc/@NAME@"
    stack_install_service @NAME@
    start_@NAME@
    ensure_services_started @NAME@
fi

upgrade_end
"""

SHUTDOWN = """\
#!/usr/bin/env bash
#
# shutdown.sh - stop the base release's @NAME@ before the upgrade (in reverse
# project order), with TOP_DIR the base devstack tree.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

set -o xtrace

if is_service_enabled @NAME@; then
    # The base tree knows how its @NAME@ runs.
    source "$BASE_DEVSTACK_DIR/stackrc"
    source "$BASE_DEVSTACK_DIR/lib/@NAME@"
    stop_@NAME@
    ensure_services_stopped @NAME@
fi
"""

RESOURCES = """\
#!/usr/bin/env bash
#
# resources.sh PHASE [SIDE] - @NAME@'s resources that must survive the upgrade.
#
#   create                  make the resources and save what identifies them
#   verify pre-upgrade|post-upgrade
#                           each resource is there, through the API
#   verify_noapi            with every API down: the data at rest is there
#   destroy                 remove them (reverse project order)
# Other phases do nothing (resource_dispatch).  Each check is reported with
# resource_check; resource_checks_done fails the phase naming the failed ones.
#
# The skeleton's one resource is a marker in grenade's resource store: replace it
# with an object made through @NAME@'s API, saving its id with resource_save.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

set -o xtrace

MARKER_VALUE="@NAME@ marker, made before the upgrade"

function create {
    resource_save @NAME@ marker "$MARKER_VALUE"
}

function check_marker {
    expect_equal "$(resource_get @NAME@ marker)" "$MARKER_VALUE"
}

function verify {
    local side=${1:-}
    resource_check @NAME@ marker "the marker saved at create (${side:-any})" check_marker
    resource_checks_done @NAME@
}

function verify_noapi {
    resource_check @NAME@ marker "the marker, with the APIs down" check_marker
    resource_checks_done @NAME@
}

function destroy {
    resource_save @NAME@ marker ""
}

resource_dispatch "$@"
"""

FILES = {
    "settings": (SETTINGS, 0o644),
    "upgrade.sh": (UPGRADE, 0o755),
    "shutdown.sh": (SHUTDOWN, 0o755),
    "resources.sh": (RESOURCES, 0o755),
}


def write_skeleton(name: str, dest: Path) -> list[Path]:
    """Write the plugin `name` under `dest/devstack/upgrade/`; the files written.

    Refuses (nothing written) a name bash would not take as one word, and any file
    that exists already: a skeleton never overwrites an author's work.
    """
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"new-plugin: {name!r} is not a project name "
            "(lower-case letters, digits, '_' and '-', starting with a letter)"
        )
    folder = dest / "devstack" / "upgrade"
    targets = [folder / file for file in FILES]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise ConfigError(f"new-plugin: would overwrite {', '.join(existing)}")
    folder.mkdir(parents=True, exist_ok=True)
    for path, (template, mode) in zip(targets, FILES.values(), strict=True):
        path.write_text(template.replace("@NAME@", name))
        path.chmod(mode)
    return targets
