#!/usr/bin/env bash
#
# stack.sh - deploy this tree's OpenStack release on this machine.
#
# What it does (each step is a devstack-named function of lib/*):
#   1. choose free ports (unless set) and record them in $DATA_DIR/lite.env,
#      which every later stackrc of either tree reads;
#   2. build the release venv from releases/<release>/requirements.lock (uv;
#      reused when the lock is unchanged);
#   3. start the database: a private PostgreSQL cluster under $DATA_DIR, or
#      reuse it when it already runs;
#   4. keystone: configuration, db_sync, fernet keys, bootstrap, start, the
#      service/demo accounts;
#   5. placement (when placement-api is enabled): configuration, db sync,
#      service user and endpoint, start.
# Services run as process groups with pidfiles under $SERVICE_DIR and logs
# under $LITE_LOG_DIR.  unstack.sh stops them and the database.

set -o errexit

TOP_DIR=$(cd "$(dirname "$0")" && pwd)
source "$TOP_DIR/functions"
if [[ -f $TOP_DIR/local.conf ]]; then
    extract_localrc_section "$TOP_DIR" localrc local.conf .localrc.auto
fi
source "$TOP_DIR/stackrc"
source "$TOP_DIR/lib/stack"
source "$TOP_DIR/lib/database"
source "$TOP_DIR/lib/apache"
source "$TOP_DIR/lib/tls"
source "$TOP_DIR/lib/keystone"
source "$TOP_DIR/lib/placement"

declare -a _STACK_TIMES=()
_stack_mark=$SECONDS
# _stack_step name - record how long the step that just ended took.
function _stack_step {
    _STACK_TIMES+=("$1 $((SECONDS - _stack_mark))s")
    _stack_mark=$SECONDS
}

# _stack_port_free port - nothing listens on 127.0.0.1:port.
function _stack_port_free {
    "$LITE_BASE_PYTHON" "$LITE_TOOLS_DIR/oshttp.py" refused "127.0.0.1:$1" >/dev/null 2>&1
}

# _stack_choose_ports - keep configured/recorded ports that are usable, pick
# free ones for the rest, and record them all in $LITE_ENV_FILE.
function _stack_choose_ports {
    local -a names=(KEYSTONE_SERVICE_PORT)
    if is_service_enabled placement-api; then
        names+=(PLACEMENT_SERVICE_PORT)
    fi
    if [[ $DATABASE_TYPE == postgresql ]]; then
        names+=(DATABASE_PORT)
    fi
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

set -o xtrace

echo_summary "lite stack.sh: OpenStack $LITE_RELEASE into $DEST (shared data: $DATA_DIR)"

LITE_BASE_PYTHON=$(lite_base_python) || die $LINENO "python3 not found"
for _svc in keystone placement-api; do
    _pidfile=$(lite_pidfile "$_svc")
    if [[ -r $_pidfile ]] && kill -0 "$(<"$_pidfile")" 2>/dev/null; then
        die $LINENO "$_svc of this tree is running (pidfile $_pidfile): run unstack.sh first"
    fi
done
unset _svc _pidfile
initialize_database_backends
is_service_enabled keystone || die $LINENO "the lite tree needs keystone (key) in ENABLED_SERVICES"
mkdir -p "$DATA_DIR" "$LITE_LOG_DIR" "$SERVICE_DIR/$SCREEN_NAME" "$LITE_ETC_DIR"

# 1. ports, then everything derived from them
_stack_choose_ports
source "$TOP_DIR/stackrc"
source "$TOP_DIR/lib/database"
_stack_step ports

# 2. code
echo_summary "Installing OpenStack $LITE_RELEASE into $LITE_VENV"
stack_install_service keystone
if is_service_enabled placement-api; then
    stack_install_service placement
fi
_stack_step install

# 3. database
echo_summary "Starting the database ($DATABASE_TYPE)"
install_database
configure_database
start_database
_stack_step database

# 4./5. configuration first, so local.conf post-config applies to all of it
configure_keystone
if is_service_enabled placement-api; then
    configure_placement
fi
if [[ -f $TOP_DIR/local.conf ]]; then
    merge_config_group "$TOP_DIR/local.conf" post-config
fi

echo_summary "Starting keystone on $KEYSTONE_SERVICE_URI"
init_keystone
start_keystone
create_keystone_accounts
_stack_step keystone

if is_service_enabled placement-api; then
    echo_summary "Starting placement on $PLACEMENT_SERVICE_URI"
    init_placement
    start_placement
    _stack_step placement
fi

set +o xtrace
echo "lite stack.sh: OpenStack $LITE_RELEASE is up ($((SECONDS))s: ${_STACK_TIMES[*]})"
echo "  keystone  $(lite_package_version keystone)  $KEYSTONE_SERVICE_URI"
if is_service_enabled placement-api; then
    echo "  placement $(lite_package_version openstack-placement)  $PLACEMENT_SERVICE_URI"
fi
echo "  database  $DATABASE_TYPE${DATABASE_PORT:+ on $DATABASE_HOST:$DATABASE_PORT}"
echo "  logs      $LITE_LOG_DIR   pidfiles $SERVICE_DIR/$SCREEN_NAME"
echo "  source $TOP_DIR/openrc admin admin   # credentials and the release's CLI on PATH"
