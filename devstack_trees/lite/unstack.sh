#!/usr/bin/env bash
#
# unstack.sh - stop what this tree's stack.sh (or a grenade upgrade with this
# tree as target) started: its services (stop_<name> of every service lib,
# see lib/stack, in the reverse of stack.sh's order), then the PostgreSQL
# cluster of the run (shared by both trees; stopping it twice is harmless).
# Data, venvs, configuration and logs stay, as with devstack's unstack.sh.

set -o errexit

TOP_DIR=$(cd "$(dirname "$0")" && pwd)
source "$TOP_DIR/functions"
if [[ -f $TOP_DIR/local.conf ]]; then
    extract_localrc_section "$TOP_DIR" localrc local.conf .localrc.auto
fi
source "$TOP_DIR/stackrc"
source "$TOP_DIR/lib/stack"
source "$TOP_DIR/lib/database"
lite_find_services "$TOP_DIR"
for _svc in "${LITE_SERVICE_NAMES[@]}"; do
    source "$TOP_DIR/lib/$_svc"
done

echo "lite unstack.sh: stopping OpenStack $LITE_RELEASE services of $DEST"
# Every service, enabled now or not: one enabled when stack.sh ran may still run.
lite_order_services
for ((_i = ${#LITE_SERVICES[@]} - 1; _i >= 0; _i--)); do
    if declare -F "stop_${LITE_SERVICES[$_i]}" >/dev/null; then
        "stop_${LITE_SERVICES[$_i]}"
    fi
done
unset _i _svc
if [[ " $DATABASE_BACKENDS " == *" $DATABASE_TYPE "* ]]; then
    stop_database
fi
echo "lite unstack.sh: done"
