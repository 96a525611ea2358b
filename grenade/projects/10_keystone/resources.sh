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
# Talks HTTP through the library's oshttp (inc/api), not the openstack CLI.

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

# user_token [token options] - a new token of the test user, scoped to its project.
function user_token {
    os_user_token "$KEYSTONE_GRENADE_USER" "$KEYSTONE_GRENADE_PASSWORD" \
        "$KEYSTONE_GRENADE_PROJECT" "$@"
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

function create {
    os_login
    local project_id user_id role_id token
    project_id=$(keystone_get_or_create project "$KEYSTONE_GRENADE_PROJECT" \
        "{\"project\": {\"name\": \"$KEYSTONE_GRENADE_PROJECT\", \"domain_id\": \"default\", \"description\": \"grenade: must survive the upgrade\"}}")
    resource_save keystone project_id "$project_id"

    user_id=$(keystone_get_or_create user "$KEYSTONE_GRENADE_USER" \
        "{\"user\": {\"name\": \"$KEYSTONE_GRENADE_USER\", \"domain_id\": \"default\", \"password\": \"$KEYSTONE_GRENADE_PASSWORD\", \"default_project_id\": \"$project_id\"}}")
    resource_save keystone user_id "$user_id"

    role_id=$(keystone_get_or_create role "$KEYSTONE_GRENADE_ROLE")
    [[ -n $role_id ]] || die $LINENO "keystone: no role $KEYSTONE_GRENADE_ROLE"
    oshttp request PUT "/v3/projects/$project_id/users/$user_id/roles/$role_id" --expect 204
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
    expect_equal "$(oshttp request GET "/v3/projects/$1" --get project.name)" \
        "$KEYSTONE_GRENADE_PROJECT"
}

function check_user {
    local user
    user=$(oshttp request GET "/v3/users/$1" --get user --canonical) || return 1
    expect_equal "$(json_get name <<<"$user")" "$KEYSTONE_GRENADE_USER" || return 1
    expect_equal "$(json_get default_project_id <<<"$user")" "$2"
}

function check_assignment {
    expect_equal "$(oshttp request HEAD "/v3/projects/$1/users/$2/roles/$3" \
        --expect 200,204,404 --print status)" 204
}

function check_token {
    local token=$1 user_id=$2 owner
    owner=$(oshttp request GET /v3/auth/tokens --subject-token "$token" --expect 200 \
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
    os_login
    resource_check keystone user_login \
        "$KEYSTONE_GRENADE_USER logs in to $KEYSTONE_GRENADE_PROJECT (${side:-any})" check_login
    resource_check keystone project "project $project_id" check_project "$project_id"
    resource_check keystone user "user $user_id" check_user "$user_id" "$project_id"
    resource_check keystone role_assignment "role $role_id of $user_id on $project_id" \
        check_assignment "$project_id" "$user_id" "$role_id"
    resource_check keystone token "the token issued before the upgrade validates" \
        check_token "$token" "$user_id"
    resource_checks_done keystone
}

# db_rows sql - rows of a query on keystone's own database.
function db_rows {
    dbquery_conf "$KEYSTONE_CONF" database "$1"
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
    resource_check_api_down keystone identity_api_down "$OS_AUTH_URL"
    resource_check keystone project "row of project $project_id" check_db_project "$project_id"
    resource_check keystone user "rows of user $user_id" check_db_user "$user_id"
    resource_check keystone role_assignment "row of the role assignment" \
        check_db_assignment "$project_id" "$user_id" "$role_id"
    resource_check keystone fernet_keys "fernet keys unchanged on disk" \
        check_fernet_keys "$(resource_get keystone fernet_keys)"
    resource_checks_done keystone
}

function destroy {
    os_login
    local user_id project_id
    user_id=$(resource_get keystone user_id)
    project_id=$(resource_get keystone project_id)
    if [[ -n $user_id ]]; then
        oshttp request DELETE "/v3/users/$user_id" --expect 204,404
    fi
    if [[ -n $project_id ]]; then
        oshttp request DELETE "/v3/projects/$project_id" --expect 204,404
    fi
}

resource_dispatch "$@"
