#!/usr/bin/env bash
#
# upgrade.sh - upgrade placement to the target release: new code, schema
# (db sync, online data migrations), ``placement-status upgrade check``,
# then start with the configuration the base release wrote.

RUN_DIR=$(cd "$(dirname "$0")" && pwd)

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

upgrade_begin
set -o errexit

source "$TARGET_DEVSTACK_DIR/stackrc"
source "$TARGET_DEVSTACK_DIR/lib/apache"
source "$TARGET_DEVSTACK_DIR/lib/tls"
source "$TARGET_DEVSTACK_DIR/lib/placement"

set -o xtrace

save_config_dir placement "$PLACEMENT_CONF_DIR"

stack_install_service placement

upgrade_project placement "$RUN_DIR" "$BASE_DEVSTACK_BRANCH" "$TARGET_DEVSTACK_BRANCH"

"$PLACEMENT_BIN_DIR/placement-manage" db sync || die $LINENO "placement db sync failed"
"$PLACEMENT_BIN_DIR/placement-manage" db online_data_migrations \
    || die $LINENO "placement online_data_migrations failed"

# 0 all checks succeeded, 1 warnings, 2 failures, 255 an error.
rc=0
"$PLACEMENT_BIN_DIR/placement-status" upgrade check || rc=$?
if ((rc >= 2)); then
    die $LINENO "placement-status upgrade check failed (exit $rc)"
elif ((rc == 1)); then
    echo "placement-status upgrade check: warnings (exit 1), continuing"
fi

start_placement

ensure_services_started placement-api

upgrade_end
