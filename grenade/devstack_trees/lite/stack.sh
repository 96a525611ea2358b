#!/usr/bin/env bash
#
# stack.sh - deploy this tree's OpenStack release on this machine.
#
# The services are the tree's service libs (lib/stack: a lib/<name> whose
# header says "# lite-service: <name> <distribution>") that are enabled,
# each after the ones it requires (placement after keystone).  As devstack:
#   1. choose free ports (unless set) for the database and every enabled
#      service's <NAME>_LITE_PORTS, and record them in $DATA_DIR/lite.env,
#      which every later stackrc of either tree reads;
#   2. build the release venv from releases/<release>/requirements.lock (uv;
#      reused when the lock is unchanged): install_<name>;
#   3. start the database: a private PostgreSQL cluster under $DATA_DIR, or
#      reuse it when it already runs (none when no enabled service keeps data
#      in it: a swift storage node);
#   4. configure_<name> for every service, then local.conf's post-config;
#   5. per service, in order: init_<name>, start_<name> (which waits until
#      it answers), create_<name>_accounts when the lib defines it.
# Services run as process groups with pidfiles under $SERVICE_DIR and logs
# under $LITE_LOG_DIR.  unstack.sh stops them and the database.

set -o errexit

TOP_DIR=$(cd "$(dirname "$0")" && pwd)
source "$TOP_DIR/inc/tree"
source "$TOP_DIR/lib/apache"
source "$TOP_DIR/lib/tls"

declare -a _STACK_TIMES=()
_stack_mark=$SECONDS
# _stack_step name - record how long the step that just ended took.
function _stack_step {
    _STACK_TIMES+=("$1 $((SECONDS - _stack_mark))s")
    _stack_mark=$SECONDS
}

# _stack_port_free port - nothing listens on $HOST_IP:port.
function _stack_port_free {
    "$LITE_BASE_PYTHON" "$LITE_TOOLS_DIR/oshttp.py" refused "$HOST_IP:$1" >/dev/null 2>&1
}

# _stack_choose_ports - keep configured/recorded ports that are usable, pick
# free ones for the rest, and record them all in $LITE_ENV_FILE.
function _stack_choose_ports {
    local -a names=()
    local svc
    for svc in "${LITE_SERVICES[@]}"; do
        # shellcheck disable=SC2207
        names+=($(lite_service_var "$svc" LITE_PORTS))
    done
    if database_has_server && lite_needs_database; then
        names+=(DATABASE_PORT)
    fi
    ((${#names[@]})) || return 0
    local -a fresh
    read -r -a fresh <<<"$("$LITE_BASE_PYTHON" "$LITE_TOOLS_DIR/oshttp.py" free-ports "${#names[@]}")"
    local i name port
    for i in "${!names[@]}"; do
        name=${names[$i]}
        port=${!name:-}
        if [[ -n $port ]]; then
            if [[ $name == DATABASE_PORT ]] && database_is_running; then
                continue
            fi
            if _stack_port_free "$port"; then
                continue
            fi
            die $LINENO "$name=$port is in use by another program: free it, or remove" \
                "$name from $LITE_ENV_FILE / localrc to let stack.sh choose a port"
        fi
        printf -v "$name" '%s' "${fresh[$i]}"
    done
    mkdir -p "$DATA_DIR"
    {
        echo "# Written by $TOP_DIR/stack.sh ($LITE_RELEASE); read by every lite stackrc."
        for name in "${names[@]}"; do
            echo "$name=${!name}"
        done
    } >"$LITE_ENV_FILE.tmp"
    mv -f "$LITE_ENV_FILE.tmp" "$LITE_ENV_FILE"
}

# _stack_call name function_prefix - run <prefix>_<name> when the lib defines it.
function _stack_call {
    if declare -F "${2}_$1" >/dev/null; then
        "${2}_$1"
    fi
}

set -o xtrace

echo_summary "lite stack.sh: OpenStack $LITE_RELEASE into $DEST (shared data: $DATA_DIR)"

LITE_BASE_PYTHON=$(lite_base_python) || die $LINENO "python3 not found"
for _pidfile in "$SERVICE_DIR/$SCREEN_NAME"/*.pid; do
    if [[ -r $_pidfile ]] && kill -0 "$(<"$_pidfile")" 2>/dev/null; then
        die $LINENO "${_pidfile##*/} of this tree is running (pidfile $_pidfile): run unstack.sh first"
    fi
done
unset _pidfile
initialize_database_backends
lite_order_services --enabled
if ((${#LITE_SERVICES[@]} == 0)); then
    die $LINENO "no service of the lite tree is enabled (ENABLED_SERVICES=$ENABLED_SERVICES;" \
        "the tree's services: ${LITE_SERVICE_NAMES[*]})"
fi
echo_summary "Services, in order: ${LITE_SERVICES[*]}"
mkdir -p "$DATA_DIR" "$LITE_LOG_DIR" "$SERVICE_DIR/$SCREEN_NAME" "$LITE_ETC_DIR"

# 1. ports, then everything derived from them
_stack_choose_ports
source "$TOP_DIR/stackrc"
source "$TOP_DIR/lib/database"
for _svc in "${LITE_SERVICE_NAMES[@]}"; do
    source "$TOP_DIR/lib/$_svc"
done
_stack_step ports

# 2. code
echo_summary "Installing OpenStack $LITE_RELEASE into $LITE_VENV"
for _svc in "${LITE_SERVICES[@]}"; do
    stack_install_service "$_svc"
done
_stack_step install

# 3. database (none on a node whose services keep nothing in it)
if lite_needs_database; then
    echo_summary "Starting the database ($DATABASE_TYPE)"
    install_database
    configure_database
    start_database
    _stack_step database
fi

# 4. configuration first, so local.conf post-config applies to all of it
for _svc in "${LITE_SERVICES[@]}"; do
    _stack_call "$_svc" configure
done
if [[ -f $TOP_DIR/local.conf ]]; then
    merge_config_group "$TOP_DIR/local.conf" post-config
fi

# 5. each service, in order (placement registers in keystone: keystone first)
for _svc in "${LITE_SERVICES[@]}"; do
    _uri=$(lite_service_var "$_svc" SERVICE_URI)
    echo_summary "Starting $_svc${_uri:+ on $_uri}"
    _stack_call "$_svc" init
    _stack_call "$_svc" start
    if declare -F "create_${_svc}_accounts" >/dev/null; then
        "create_${_svc}_accounts"
    fi
    _stack_step "$_svc"
done
unset _svc _uri

set +o xtrace
echo "lite stack.sh: OpenStack $LITE_RELEASE is up ($((SECONDS))s: ${_STACK_TIMES[*]})"
for _svc in "${LITE_SERVICES[@]}"; do
    printf '  %-9s %s  %s\n' "$_svc" "$(lite_package_version "$(lite_service_dist "$_svc")")" \
        "$(lite_service_var "$_svc" SERVICE_URI)"
done
unset _svc
if lite_needs_database; then
    echo "  database  $DATABASE_TYPE${DATABASE_PORT:+ on $DATABASE_HOST:$DATABASE_PORT}"
fi
echo "  logs      $LITE_LOG_DIR   pidfiles $SERVICE_DIR/$SCREEN_NAME"
echo "  source $TOP_DIR/openrc admin admin   # credentials and the release's CLI on PATH"
