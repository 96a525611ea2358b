#!/usr/bin/env bash
#
# resources.sh - keystone resources that must survive the upgrade.
#
#   create                  as admin: project keystone_grenade, user
#                           keystone_grenade (password, default project),
#                           role member on the project; then a token issued AS
#                           THAT USER.  Ids, the token and a digest of the fernet
#                           keys are saved.
#   verify pre-upgrade|post-upgrade
#                           the user logs in (member role in its token), project,
#                           user and role assignment are there, and the token
#                           issued before the upgrade still validates.
#   verify_noapi            the identity API refuses connections; the rows are in
#                           the database; the fernet keys on disk are unchanged.
#   destroy                 delete the user and the project.
# Other phases do nothing.  Each check is reported with resource_result; a
# failed check makes the phase fail, naming the resources.
#
# Talks HTTP through $GRENADE_DIR/tools/oshttp.py (system python3), not the
# openstack CLI: one call costs ~50 ms instead of ~1.5 s.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

source "$TOP_DIR/openrc" admin admin
source "$TOP_DIR/lib/keystone"

set -o xtrace

KEYSTONE_GRENADE_PROJECT=keystone_grenade
KEYSTONE_GRENADE_USER=keystone_grenade
KEYSTONE_GRENADE_PASSWORD=keystone-grenade-pass
KEYSTONE_GRENADE_ROLE=member

function api {
    python3 "$GRENADE_DIR/tools/oshttp.py" "$@"
}

function dbquery {
    python3 "$GRENADE_DIR/tools/dbquery.py" "$@"
}

# json_get path - a value of the JSON document on stdin.
function json_get {
    python3 "$GRENADE_DIR/tools/oshttp.py" get "$@"
}

function admin_login {
    OS_TOKEN=$(api token) || die $LINENO "keystone: cannot log in as admin"
    export OS_TOKEN
}

# user_token - print a new token of the test user, scoped to its project.
function user_token {
    api --token "" --os-username "$KEYSTONE_GRENADE_USER" \
        --os-password "$KEYSTONE_GRENADE_PASSWORD" \
        --os-project-name "$KEYSTONE_GRENADE_PROJECT" \
        --os-user-domain-id default --os-project-domain-id default token "$@"
}

# fernet_digest - one digest over the names and contents of the key repository.
function fernet_digest {
    local dir
    dir=$(iniget "$KEYSTONE_CONF" fernet_tokens key_repository)
    dir=${dir:-/etc/keystone/fernet-keys/}
    local f out=""
    for f in "$dir"/*; do
        [[ -f $f ]] || continue
        out+="${f##*/} $(sha256sum <"$f")"$'\n'
    done
    [[ -n $out ]] || return 1
    printf '%s' "$out" | sha256sum | cut -d' ' -f1
}

# check resource description command... - one check of a keystone resource.
function check {
    resource_check keystone "$@"
}

# get_or_create kind name body - id of the named project/user, created when
# missing (create may be run again).
function get_or_create {
    local kind=$1 name=$2 body=$3 id
    id=$(api request GET "/v3/${kind}s?name=$name&domain_id=default" --get "${kind}s" \
        | json_get 0.id 2>/dev/null) || id=""
    if [[ -z $id ]]; then
        id=$(api request POST "/v3/${kind}s" --data "$body" --get "$kind.id") \
            || die $LINENO "keystone: cannot create $kind $name"
    fi
    echo "$id"
}

function create {
    admin_login
    local project_id user_id role_id token
    project_id=$(get_or_create project "$KEYSTONE_GRENADE_PROJECT" \
        "{\"project\": {\"name\": \"$KEYSTONE_GRENADE_PROJECT\", \"domain_id\": \"default\", \"description\": \"grenade: must survive the upgrade\"}}")
    resource_save keystone project_id "$project_id"

    user_id=$(get_or_create user "$KEYSTONE_GRENADE_USER" \
        "{\"user\": {\"name\": \"$KEYSTONE_GRENADE_USER\", \"domain_id\": \"default\", \"password\": \"$KEYSTONE_GRENADE_PASSWORD\", \"default_project_id\": \"$project_id\"}}")
    resource_save keystone user_id "$user_id"

    role_id=$(api request GET "/v3/roles?name=$KEYSTONE_GRENADE_ROLE" --get roles.0.id) \
        || die $LINENO "keystone: no role $KEYSTONE_GRENADE_ROLE"
    api request PUT "/v3/projects/$project_id/users/$user_id/roles/$role_id" --expect 204
    resource_save keystone role_id "$role_id"

    # A token of the user itself: it must still validate after the upgrade.
    token=$(user_token) || die $LINENO "keystone: $KEYSTONE_GRENADE_USER cannot log in"
    resource_save keystone user_token "$token"

    local digest
    digest=$(fernet_digest) || die $LINENO "keystone: no fernet keys found"
    resource_save keystone fernet_keys "$digest"
}

function check_login {
    local roles
    roles=$(user_token --get token.roles) || return 1
    [[ $roles == *"\"$KEYSTONE_GRENADE_ROLE\""* ]] || {
        echo "the token's roles $roles lack $KEYSTONE_GRENADE_ROLE"
        return 1
    }
}

function check_project {
    expect_equal "$(api request GET "/v3/projects/$1" --get project.name)" \
        "$KEYSTONE_GRENADE_PROJECT"
}

function check_user {
    local user
    user=$(api request GET "/v3/users/$1" --get user --canonical) || return 1
    expect_equal "$(json_get name <<<"$user")" "$KEYSTONE_GRENADE_USER" || return 1
    expect_equal "$(json_get default_project_id <<<"$user")" "$2"
}

function check_assignment {
    expect_equal "$(api request HEAD "/v3/projects/$1/users/$2/roles/$3" \
        --expect 200,204,404 --print status)" 204
}

function check_token {
    local token=$1 user_id=$2 owner
    owner=$(api request GET /v3/auth/tokens --subject-token "$token" --expect 200 \
        --get token.user.id) || return 1
    expect_equal "$owner" "$user_id"
}

function verify {
    local side=${1:-}
    local project_id user_id role_id token
    project_id=$(resource_get keystone project_id)
    user_id=$(resource_get keystone user_id)
    role_id=$(resource_get keystone role_id)
    token=$(resource_get keystone user_token)
    admin_login
    check user_login "$KEYSTONE_GRENADE_USER logs in to $KEYSTONE_GRENADE_PROJECT (${side:-any})" \
        check_login
    check project "project $project_id" check_project "$project_id"
    check user "user $user_id" check_user "$user_id" "$project_id"
    check role_assignment "role $role_id of $user_id on $project_id" \
        check_assignment "$project_id" "$user_id" "$role_id"
    check token "the token issued before the upgrade validates" check_token "$token" "$user_id"
    resource_checks_done keystone
}

function db_rows {
    dbquery "$(iniget "$KEYSTONE_CONF" database connection)" "$1"
}

function check_db_project {
    expect_equal "$(db_rows "SELECT name FROM project WHERE id = '$1'" | json_get 0.name)" \
        "$KEYSTONE_GRENADE_PROJECT"
}

function check_db_user {
    expect_equal "$(db_rows "SELECT name FROM local_user WHERE user_id = '$1'" | json_get 0.name)" \
        "$KEYSTONE_GRENADE_USER" || return 1
    local n
    n=$(db_rows "SELECT count(*) AS n FROM password p JOIN local_user l
                 ON p.local_user_id = l.id WHERE l.user_id = '$1'" | json_get 0.n) || return 1
    ((n >= 1)) || { echo "no password row"; return 1; }
}

function check_db_assignment {
    expect_equal "$(db_rows "SELECT role_id FROM assignment WHERE type = 'UserProject'
        AND actor_id = '$2' AND target_id = '$1' AND role_id = '$3'" | json_get 0.role_id)" "$3"
}

function check_fernet_keys {
    expect_equal "$(fernet_digest)" "$1"
}

function verify_noapi {
    local project_id user_id role_id
    project_id=$(resource_get keystone project_id)
    user_id=$(resource_get keystone user_id)
    role_id=$(resource_get keystone role_id)
    # First: the API really is down (a check that passes against a running
    # keystone proves nothing about data at rest).
    check identity_api_down "nothing accepts connections at $OS_AUTH_URL" \
        api refused "$OS_AUTH_URL"
    check project "row of project $project_id" check_db_project "$project_id"
    check user "rows of user $user_id" check_db_user "$user_id"
    check role_assignment "row of the role assignment" \
        check_db_assignment "$project_id" "$user_id" "$role_id"
    check fernet_keys "fernet keys unchanged on disk" \
        check_fernet_keys "$(resource_get keystone fernet_keys)"
    resource_checks_done keystone
}

function destroy {
    admin_login
    local user_id project_id
    user_id=$(resource_get keystone user_id)
    project_id=$(resource_get keystone project_id)
    if [[ -n $user_id ]]; then
        api request DELETE "/v3/users/$user_id" --expect 204,404
    fi
    if [[ -n $project_id ]]; then
        api request DELETE "/v3/projects/$project_id" --expect 204,404
    fi
}

case $1 in
    create)
        create
        ;;
    verify)
        verify "${2:-}"
        ;;
    verify_noapi)
        verify_noapi
        ;;
    destroy)
        destroy
        ;;
esac
