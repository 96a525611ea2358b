#!/usr/bin/env bash
#
# services.sh start|stop - start or stop this tree's enabled services alone:
# no install, no configuration, no database changes, the database left as it
# is.  What a rollback needs: the target's services stopped, the base
# release's started again from this (the base) tree on the restored database,
# configuration and keys.  start_<name> waits until each service answers.

set -o errexit

action=${1:-}
case $action in
    start | stop) ;;
    *)
        echo "usage: services.sh start|stop" >&2
        exit 2
        ;;
esac

TOP_DIR=$(cd "$(dirname "$0")" && pwd)
source "$TOP_DIR/inc/tree"

lite_order_services --enabled
if [[ $action == stop ]]; then
    for ((_i = ${#LITE_SERVICES[@]} - 1; _i >= 0; _i--)); do
        _stack_svc=${LITE_SERVICES[$_i]}
        if declare -F "stop_$_stack_svc" >/dev/null; then
            "stop_$_stack_svc"
        fi
    done
    echo "lite services.sh: OpenStack $LITE_RELEASE services of $DEST stopped"
    exit 0
fi
mkdir -p "$LITE_LOG_DIR" "$SERVICE_DIR/$SCREEN_NAME"
for _stack_svc in "${LITE_SERVICES[@]}"; do
    if declare -F "start_$_stack_svc" >/dev/null; then
        echo "lite services.sh: starting $_stack_svc ($LITE_RELEASE)"
        "start_$_stack_svc"
    fi
done
echo "lite services.sh: OpenStack $LITE_RELEASE services of $DEST started"
