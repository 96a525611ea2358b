#!/usr/bin/env bash
#
# upgrade.sh - upgrade glance to the target release: new code, schema (db
# sync: glance's expand/migrate/contract is for MySQL and SQLite only, so the
# offline sync serves every backend), ``glance-status upgrade check``, then
# start with the configuration the base release wrote.

RUN_DIR=$(cd "$(dirname "$0")" && pwd)

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

upgrade_begin
set -o errexit

source "$TARGET_DEVSTACK_DIR/stackrc"
source "$TARGET_DEVSTACK_DIR/lib/apache"
source "$TARGET_DEVSTACK_DIR/lib/tls"
source "$TARGET_DEVSTACK_DIR/lib/glance"

set -o xtrace

save_config_dir glance "$GLANCE_CONF_DIR"

stack_install_service glance

upgrade_project glance "$RUN_DIR" "$BASE_DEVSTACK_BRANCH" "$TARGET_DEVSTACK_BRANCH"

"$GLANCE_BIN_DIR/glance-manage" db sync || die $LINENO "glance db sync failed"

# 0 all checks succeeded, 1 warnings, 2 failures, 255 an error.  glance 33's
# check itself crashes (NoSuchOptError enabled_backends in its sheepdog
# check, an upstream bug), so an error of the tool is a warning; a failed
# check still stops the upgrade.
rc=0
"$GLANCE_BIN_DIR/glance-status" upgrade check || rc=$?
if ((rc == 2)); then
    die $LINENO "glance-status upgrade check failed (exit $rc)"
elif ((rc != 0)); then
    echo "glance-status upgrade check: exit $rc (warnings, or the tool failed), continuing"
fi

start_glance

ensure_services_started g-api

upgrade_end
