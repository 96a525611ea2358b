#!/usr/bin/env bash
#
# upgrade.sh - upgrade keystone to the target release.
#
# The rolling-upgrade order keystone documents: new code, then
# ``db_sync --expand``, ``--migrate``, ``--contract``; ``db_sync --check``
# must then report the schema at head (exit 0) before the new keystone starts
# with the configuration the base release wrote.

RUN_DIR=$(cd "$(dirname "$0")" && pwd)

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

upgrade_begin
set -o errexit

source "$TARGET_DEVSTACK_DIR/stackrc"
source "$TARGET_DEVSTACK_DIR/lib/apache"
source "$TARGET_DEVSTACK_DIR/lib/tls"
source "$TARGET_DEVSTACK_DIR/lib/keystone"

set -o xtrace

# Keep the configuration the base release ran with.
save_config_dir keystone "$KEYSTONE_CONF_DIR"

# The target release's code.
stack_install_service keystone

# Per-release changes (from-<base release>/upgrade-keystone), if any.
upgrade_project keystone "$RUN_DIR" "$BASE_DEVSTACK_BRANCH" "$TARGET_DEVSTACK_BRANCH"

# The schema, in the rolling-upgrade order.
"$KEYSTONE_BIN_DIR/keystone-manage" db_sync --expand || die $LINENO "keystone db_sync --expand failed"
"$KEYSTONE_BIN_DIR/keystone-manage" db_sync --migrate || die $LINENO "keystone db_sync --migrate failed"
"$KEYSTONE_BIN_DIR/keystone-manage" db_sync --contract || die $LINENO "keystone db_sync --contract failed"
if ! "$KEYSTONE_BIN_DIR/keystone-manage" db_sync --check; then
    die $LINENO "keystone db_sync --check: the schema is not at head after expand/migrate/contract"
fi

start_keystone

ensure_services_started keystone

upgrade_end
