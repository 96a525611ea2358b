#!/usr/bin/env bash
#
# shutdown.sh - stop the base release's swift servers (those this node runs).

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

source "$BASE_DEVSTACK_DIR/functions"
source "$BASE_DEVSTACK_DIR/stackrc"
source "$BASE_DEVSTACK_DIR/lib/tls"
source "$BASE_DEVSTACK_DIR/lib/apache"
source "$BASE_DEVSTACK_DIR/lib/swift"

set -o xtrace

stop_swift

ensure_services_stopped s-proxy s-account s-container s-object
