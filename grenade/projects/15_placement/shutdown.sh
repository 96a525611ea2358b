#!/usr/bin/env bash
#
# shutdown.sh - stop the base release's placement API before the upgrade.
# (The original leaves this to nova's shutdown.sh; here placement may run
# without nova, so it stops itself.)

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

source "$BASE_DEVSTACK_DIR/functions"
source "$BASE_DEVSTACK_DIR/stackrc"
source "$BASE_DEVSTACK_DIR/lib/tls"
source "$BASE_DEVSTACK_DIR/lib/apache"
source "$BASE_DEVSTACK_DIR/lib/placement"

set -o xtrace

stop_placement

ensure_services_stopped placement-api
