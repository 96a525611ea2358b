#!/usr/bin/env bash
#
# unstack.sh - stop what this tree's stack.sh (or a grenade upgrade with this
# tree as target) started: its services (stop_<name> of every service lib,
# see lib/stack, in the reverse of stack.sh's order), then the PostgreSQL
# cluster of the run (shared by both trees; stopping it twice is harmless).
# Data, venvs, configuration and logs stay, as with devstack's unstack.sh.

set -o errexit

TOP_DIR=$(cd "$(dirname "$0")" && pwd)
source "$TOP_DIR/inc/tree"

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
