#!/usr/bin/env bash
#
# resources.sh - placement resources that must survive the upgrade.
#
# Who acts: placement's write APIs accept only the admin or the service role.
# The resources are created by a NON-admin user, placement_grenade, holding the
# service role (as nova's placement client does) and member on its own project;
# a second user, placement_grenade_reader (member only), reads its project's
# usages through the project-reader API.  Admin only creates and deletes the
# two users and their project.
#
#   create          a resource provider with VCPU/MEMORY_MB/DISK_GB inventory,
#                   a custom and a standard trait, and an allocation for a
#                   consumer of the project; the JSON of each is saved.
#   verify <side>   inventories, usages, traits, the allocation and the
#                   project's usages are identical to the saved JSON.
#   verify_noapi    the placement API refuses connections; the provider,
#                   inventory, traits and allocation rows are in the database.
#   destroy         delete allocation, provider, custom trait, users, project.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

source "$TOP_DIR/openrc" admin admin
source "$TOP_DIR/lib/placement"

set -o xtrace

PLACEMENT_GRENADE_PROJECT=placement_grenade
PLACEMENT_GRENADE_USER=placement_grenade
PLACEMENT_GRENADE_READER=placement_grenade_reader
PLACEMENT_GRENADE_PASSWORD=placement-grenade-pass
PLACEMENT_GRENADE_RP=placement_grenade_rp
PLACEMENT_GRENADE_CUSTOM_TRAIT=CUSTOM_GRENADE_LITE
PLACEMENT_GRENADE_STD_TRAIT=HW_CPU_X86_AVX2
# 1.39: consumer types; every release from 2025.1 on serves it.
PLACEMENT_GRENADE_MV=1.39
# GET /usages (project usages) at 1.38+ groups by consumer type with a query
# PostgreSQL rejects (GroupingError: allocations.resource_class_id must appear
# in the GROUP BY clause; placement 14 and 15 answer 500), so the project
# reader check uses the last microversion before consumer types.
PLACEMENT_GRENADE_USAGES_MV=1.37
INVENTORY='{"VCPU": {"total": 8, "allocation_ratio": 4.0},
  "MEMORY_MB": {"total": 16384, "reserved": 512},
  "DISK_GB": {"total": 200, "max_unit": 100}}'
ALLOCATION='{"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 20}'
ALLOCATED_TOTAL=2070

# placement METHOD PATH [options] - a placement call with the current token
# (microversion $MV, default PLACEMENT_GRENADE_MV) to $PLACEMENT_URL.
function placement {
    local method=$1 path=$2
    shift 2
    oshttp request "$method" "$PLACEMENT_URL$path" "$@" --service placement \
        --microversion "${MV:-$PLACEMENT_GRENADE_MV}"
}

# login user - switch OS_TOKEN to a token of user scoped to the project.
function login {
    os_login "$1" "$PLACEMENT_GRENADE_PASSWORD" "$PLACEMENT_GRENADE_PROJECT"
    if [[ -z ${PLACEMENT_URL:-} ]]; then
        PLACEMENT_URL=$(oshttp endpoint placement) || die $LINENO "placement: not in the catalog"
    fi
}

# save key command... - resource_save the command's output; die if it fails.
function save {
    local key=$1 value
    shift
    value=$("$@") || die $LINENO "placement: cannot read $key"
    resource_save placement "$key" "$value"
}

function new_uuid {
    python3 -c 'import uuid; print(uuid.uuid4())'
}

# The saved snapshot: what verify compares, as canonical JSON.
function snapshot_inventories {
    placement GET "/resource_providers/$1/inventories" --get inventories --canonical
}

function snapshot_usages {
    placement GET "/resource_providers/$1/usages" --get usages --canonical
}

function snapshot_traits {
    placement GET "/resource_providers/$1/traits" --get traits \
        | python3 -c 'import json, sys; print(json.dumps(sorted(json.load(sys.stdin))))'
}

function snapshot_allocation {
    placement GET "/allocations/$1" --canonical
}

function snapshot_project_usages {
    MV=$PLACEMENT_GRENADE_USAGES_MV placement GET "/usages?project_id=$1" --get usages --canonical
}

function create {
    os_login
    local project_id user_id reader_id
    project_id=$(keystone_get_or_create project "$PLACEMENT_GRENADE_PROJECT" \
        "{\"project\": {\"name\": \"$PLACEMENT_GRENADE_PROJECT\", \"domain_id\": \"default\"}}")
    user_id=$(keystone_get_or_create user "$PLACEMENT_GRENADE_USER" \
        "{\"user\": {\"name\": \"$PLACEMENT_GRENADE_USER\", \"domain_id\": \"default\", \"password\": \"$PLACEMENT_GRENADE_PASSWORD\", \"default_project_id\": \"$project_id\"}}")
    reader_id=$(keystone_get_or_create user "$PLACEMENT_GRENADE_READER" \
        "{\"user\": {\"name\": \"$PLACEMENT_GRENADE_READER\", \"domain_id\": \"default\", \"password\": \"$PLACEMENT_GRENADE_PASSWORD\", \"default_project_id\": \"$project_id\"}}")
    local service_role member_role
    service_role=$(keystone_get_or_create role service '{"role": {"name": "service"}}')
    member_role=$(keystone_get_or_create role member "")
    [[ -n $member_role ]] || die $LINENO "placement: keystone has no member role"
    oshttp request PUT "/v3/projects/$project_id/users/$user_id/roles/$service_role" --expect 204
    oshttp request PUT "/v3/projects/$project_id/users/$user_id/roles/$member_role" --expect 204
    oshttp request PUT "/v3/projects/$project_id/users/$reader_id/roles/$member_role" --expect 204
    resource_save placement project_id "$project_id"
    resource_save placement user_id "$user_id"
    resource_save placement reader_id "$reader_id"
    save endpoint oshttp endpoint placement

    # From here on: the non-admin service user.
    login "$PLACEMENT_GRENADE_USER"
    local rp consumer generation
    rp=$(placement GET "/resource_providers?name=$PLACEMENT_GRENADE_RP" \
        --get resource_providers | json_get 0.uuid 2>/dev/null) || rp=""
    if [[ -z $rp ]]; then
        rp=$(new_uuid)
        placement POST /resource_providers --expect 200 \
            --data "{\"name\": \"$PLACEMENT_GRENADE_RP\", \"uuid\": \"$rp\"}" >/dev/null
    fi
    resource_save placement rp_uuid "$rp"

    generation=$(placement GET "/resource_providers/$rp" --get generation)
    placement PUT "/resource_providers/$rp/inventories" --expect 200 >/dev/null \
        --data "{\"resource_provider_generation\": $generation, \"inventories\": $INVENTORY}"

    placement PUT "/traits/$PLACEMENT_GRENADE_CUSTOM_TRAIT" --expect 201,204
    generation=$(placement GET "/resource_providers/$rp" --get generation)
    placement PUT "/resource_providers/$rp/traits" --expect 200 >/dev/null \
        --data "{\"resource_provider_generation\": $generation, \"traits\": [\"$PLACEMENT_GRENADE_CUSTOM_TRAIT\", \"$PLACEMENT_GRENADE_STD_TRAIT\"]}"

    consumer=$(resource_get placement consumer_uuid)
    if [[ -z $consumer ]]; then
        consumer=$(new_uuid)
        placement PUT "/allocations/$consumer" --expect 204 \
            --data "{\"allocations\": {\"$rp\": {\"resources\": $ALLOCATION}}, \"project_id\": \"$project_id\", \"user_id\": \"$user_id\", \"consumer_generation\": null, \"consumer_type\": \"INSTANCE\"}"
        resource_save placement consumer_uuid "$consumer"
    fi

    save inventories snapshot_inventories "$rp"
    save usages snapshot_usages "$rp"
    save traits snapshot_traits "$rp"
    save allocation snapshot_allocation "$consumer"
    login "$PLACEMENT_GRENADE_READER"
    save project_usages snapshot_project_usages "$project_id"
}

function check_provider {
    expect_equal "$(placement GET "/resource_providers/$1" --get name)" "$PLACEMENT_GRENADE_RP"
}

# same name snapshot_function arg - the current JSON equals the saved one.
function same {
    local current
    current=$("$2" "$3") || return 1
    expect_equal "$current" "$(resource_get placement "$1")"
}

function verify {
    local side=${1:-}
    local rp consumer project_id
    rp=$(resource_get placement rp_uuid)
    consumer=$(resource_get placement consumer_uuid)
    project_id=$(resource_get placement project_id)
    login "$PLACEMENT_GRENADE_USER"
    resource_check placement resource_provider "provider $rp (${side:-any})" check_provider "$rp"
    resource_check placement inventories "inventories of $rp as saved" \
        same inventories snapshot_inventories "$rp"
    resource_check placement usages "usages of $rp as saved" same usages snapshot_usages "$rp"
    resource_check placement traits "traits of $rp as saved" same traits snapshot_traits "$rp"
    resource_check placement allocation "allocation of consumer $consumer as saved" \
        same allocation snapshot_allocation "$consumer"
    login "$PLACEMENT_GRENADE_READER"
    resource_check placement project_usages \
        "usages of project $project_id, read by a project reader" \
        same project_usages snapshot_project_usages "$project_id"
    resource_checks_done placement
}

# db_rows sql - rows of a query on placement's own database.
function db_rows {
    dbquery_conf "$PLACEMENT_CONF" placement_database "$1"
}

function check_db_provider {
    expect_equal "$(db_rows "SELECT name FROM resource_providers WHERE uuid = '$1'" \
        | json_get 0.name)" "$PLACEMENT_GRENADE_RP"
}

function check_db_inventory {
    local rows
    rows=$(db_rows "SELECT count(*) AS n, sum(i.total) AS total FROM inventories i
        JOIN resource_providers r ON i.resource_provider_id = r.id WHERE r.uuid = '$1'") || return 1
    expect_equal "$(json_get 0.n <<<"$rows")/$(json_get 0.total <<<"$rows")" "3/16592"
}

function check_db_traits {
    expect_equal "$(db_rows "SELECT t.name FROM traits t
        JOIN resource_provider_traits rt ON rt.trait_id = t.id
        JOIN resource_providers r ON rt.resource_provider_id = r.id
        WHERE r.uuid = '$1' ORDER BY t.name" | json_get '' --canonical)" \
        "[{\"name\":\"$PLACEMENT_GRENADE_CUSTOM_TRAIT\"},{\"name\":\"$PLACEMENT_GRENADE_STD_TRAIT\"}]"
}

function check_db_allocation {
    local consumer=$1 project_id=$2 user_id=$3 rows
    expect_equal "$(db_rows "SELECT sum(used) AS used FROM allocations
        WHERE consumer_id = '$consumer'" | json_get 0.used)" "$ALLOCATED_TOTAL" || return 1
    rows=$(db_rows "SELECT p.external_id AS project, u.external_id AS usr FROM consumers c
        JOIN projects p ON c.project_id = p.id JOIN users u ON c.user_id = u.id
        WHERE c.uuid = '$consumer'") || return 1
    expect_equal "$(json_get 0.project <<<"$rows") $(json_get 0.usr <<<"$rows")" \
        "$project_id $user_id"
}

function verify_noapi {
    local rp consumer endpoint
    rp=$(resource_get placement rp_uuid)
    consumer=$(resource_get placement consumer_uuid)
    endpoint=$(resource_get placement endpoint)
    resource_check_api_down placement placement_api_down "$endpoint"
    resource_check placement resource_provider "row of provider $rp" check_db_provider "$rp"
    resource_check placement inventories "3 inventory rows of $rp" check_db_inventory "$rp"
    resource_check placement traits "trait rows of $rp" check_db_traits "$rp"
    resource_check placement allocation "allocation rows of consumer $consumer" \
        check_db_allocation "$consumer" \
        "$(resource_get placement project_id)" "$(resource_get placement user_id)"
    resource_checks_done placement
}

function destroy {
    local rp consumer id
    rp=$(resource_get placement rp_uuid)
    consumer=$(resource_get placement consumer_uuid)
    login "$PLACEMENT_GRENADE_USER"
    if [[ -n $consumer ]]; then
        placement DELETE "/allocations/$consumer" --expect 204,404
    fi
    if [[ -n $rp ]]; then
        placement DELETE "/resource_providers/$rp" --expect 204,404
    fi
    placement DELETE "/traits/$PLACEMENT_GRENADE_CUSTOM_TRAIT" --expect 204,404
    os_login
    for id in "$(resource_get placement user_id)" "$(resource_get placement reader_id)"; do
        if [[ -n $id ]]; then
            oshttp request DELETE "/v3/users/$id" --expect 204,404
        fi
    done
    id=$(resource_get placement project_id)
    if [[ -n $id ]]; then
        oshttp request DELETE "/v3/projects/$id" --expect 204,404
    fi
}

resource_dispatch "$@"
