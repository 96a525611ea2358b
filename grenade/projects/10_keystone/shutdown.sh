#!/usr/bin/env bash
#
# shutdown.sh - stop the base release's keystone before the upgrade.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

# The base tree knows how its keystone runs.
source "$BASE_DEVSTACK_DIR/functions"
source "$BASE_DEVSTACK_DIR/stackrc"
source "$BASE_DEVSTACK_DIR/lib/tls"
source "$BASE_DEVSTACK_DIR/lib/apache"
source "$BASE_DEVSTACK_DIR/lib/keystone"

set -o xtrace

stop_keystone

# Then check that it is really down.
ensure_services_stopped keystone
