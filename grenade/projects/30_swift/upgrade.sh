#!/usr/bin/env bash
#
# upgrade.sh - upgrade this node's swift servers to the target release: new
# code, then the same configuration, rings and data.  Swift keeps no database.

RUN_DIR=$(cd "$(dirname "$0")" && pwd)

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

upgrade_begin
set -o errexit

source "$TARGET_DEVSTACK_DIR/stackrc"
source "$TARGET_DEVSTACK_DIR/lib/apache"
source "$TARGET_DEVSTACK_DIR/lib/tls"
source "$TARGET_DEVSTACK_DIR/lib/swift"

set -o xtrace

save_config_dir swift "$SWIFT_CONF_DIR"

stack_install_service swift

upgrade_project swift "$RUN_DIR" "$BASE_DEVSTACK_BRANCH" "$TARGET_DEVSTACK_BRANCH"

start_swift

services=()
for service in s-proxy s-account s-container s-object; do
    if is_service_enabled "$service"; then
        services+=("$service")
    fi
done
ensure_services_started "${services[@]}"

upgrade_end
