#!/usr/bin/env bash
#
# resources.sh - a glance image that must survive the upgrade, byte for byte.
#
# Who acts: a NON-admin user, glance_grenade, member of its own project, owns
# a private image; admin only creates and deletes that user and project.
#
#   create          image grenade-image (raw/bare, custom properties), 3 MiB
#                   of random bytes uploaded to the file store; what the API
#                   shows of it (status, checksum, sha512, size, properties)
#                   and the data's md5 are saved.
#   verify <side>   the image shows as saved and its downloaded bytes have the
#                   saved md5 and size.
#   verify_noapi    the image API refuses connections; the images row is active
#                   with the saved checksum and size, its location is a file of
#                   the store, and that file has the saved size and md5.
#   destroy         delete image, user and project.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

source "$TOP_DIR/openrc" admin admin
source "$TOP_DIR/lib/glance"

set -o xtrace

GLANCE_GRENADE_PROJECT=glance_grenade
GLANCE_GRENADE_USER=glance_grenade
GLANCE_GRENADE_PASSWORD=glance-grenade-pass
GLANCE_GRENADE_IMAGE=grenade-image
GLANCE_GRENADE_SIZE=$((3 * 1024 * 1024))
# What of the image must not change (the API adds fields across releases).
GLANCE_GRENADE_FIELDS="name status visibility disk_format container_format size checksum \
os_hash_algo os_hash_value grenade_stage grenade_owner"

function login {
    os_login "$GLANCE_GRENADE_USER" "$GLANCE_GRENADE_PASSWORD" "$GLANCE_GRENADE_PROJECT"
}

function image_url {
    echo "$(resource_get glance endpoint)/v2/images/$(resource_get glance image_id)"
}

# snapshot_image - the image's lasting fields, as canonical JSON.
function snapshot_image {
    oshttp request GET "$(image_url)" --expect 200 | python3 -c '
import json, sys
image = json.load(sys.stdin)
print(json.dumps({k: image.get(k) for k in sys.argv[1].split()}, sort_keys=True))' \
        "$GLANCE_GRENADE_FIELDS"
}

function create {
    os_login
    keystone_project_user glance "$GLANCE_GRENADE_PROJECT" "$GLANCE_GRENADE_USER" \
        "$GLANCE_GRENADE_PASSWORD" member

    login
    local endpoint image_id payload md5
    endpoint=$(oshttp endpoint image) || die $LINENO "glance: not in the catalog"
    resource_save glance endpoint "$endpoint"
    image_id=$(resource_get glance image_id)
    if [[ -z $image_id ]]; then
        image_id=$(oshttp request POST "$endpoint/v2/images" --expect 201 --get id --data \
            "{\"name\": \"$GLANCE_GRENADE_IMAGE\", \"disk_format\": \"raw\", \"container_format\": \"bare\", \"visibility\": \"private\", \"grenade_stage\": \"base\", \"grenade_owner\": \"$GLANCE_GRENADE_USER\"}") \
            || die $LINENO "glance: cannot create image $GLANCE_GRENADE_IMAGE"
        resource_save glance image_id "$image_id"
    fi
    payload=$SAVE_DIR/glance-payload.bin
    head -c "$GLANCE_GRENADE_SIZE" /dev/urandom >"$payload"
    osdata put "$(image_url)/file" "$payload" --expect 204 >/dev/null \
        || die $LINENO "glance: cannot upload the data of image $image_id"
    md5=$(osdata digest "$payload" | json_get md5)
    rm -f "$payload"
    resource_save glance md5 "$md5"
    resource_save glance size "$GLANCE_GRENADE_SIZE"
    local image
    image=$(snapshot_image) || die $LINENO "glance: cannot read image $image_id"
    [[ $(json_get status <<<"$image") == active ]] \
        || die $LINENO "glance: image $image_id is $(json_get status <<<"$image") after its upload"
    [[ $(json_get checksum <<<"$image") == "$md5" ]] \
        || die $LINENO "glance: image $image_id has checksum $(json_get checksum <<<"$image"), not $md5"
    resource_save glance image "$image"
}

function check_image {
    expect_equal "$(snapshot_image)" "$(resource_get glance image)"
}

function check_download {
    local got
    got=$(osdata get "$(image_url)/file" --expect 200) || return 1
    expect_equal "$(json_get md5 <<<"$got") $(json_get size <<<"$got")" \
        "$(resource_get glance md5) $(resource_get glance size)"
}

function verify {
    local image_id
    image_id=$(resource_get glance image_id)
    login
    resource_check glance image "image $image_id: status, checksum, hashes, properties as saved" \
        check_image
    resource_check glance data "image $image_id: downloaded bytes have the saved md5 and size" \
        check_download
    resource_checks_done glance
}

function db_rows {
    dbquery_conf "$GLANCE_API_CONF" database "$1"
}

function check_db_image {
    local rows
    rows=$(db_rows "SELECT status, checksum, size FROM images WHERE id = '$1'") || return 1
    expect_equal "$(json_get 0.status <<<"$rows") $(json_get 0.checksum <<<"$rows") $(json_get 0.size <<<"$rows")" \
        "active $(resource_get glance md5) $(resource_get glance size)"
}

# check_store_file image_id - the location glance recorded is a file of the
# store with the saved size and md5.
function check_store_file {
    local rows url path
    rows=$(db_rows "SELECT value FROM image_locations WHERE image_id = '$1' AND deleted = false
        AND status = 'active'") || return 1
    url=$(json_get 0.value <<<"$rows") || {
        echo "no active location of image $1 in the database"
        return 1
    }
    path=${url#file://}
    [[ $url == file://* && -f $path ]] || {
        echo "location $url is not a file of this node"
        return 1
    }
    expect_equal "$(osdata digest "$path" | json_get md5) $(stat -c %s "$path")" \
        "$(resource_get glance md5) $(resource_get glance size)"
}

function verify_noapi {
    local image_id
    image_id=$(resource_get glance image_id)
    resource_check_api_down glance glance_api_down "$(resource_get glance endpoint)"
    resource_check glance image "row of image $image_id: active, checksum and size as saved" \
        check_db_image "$image_id"
    resource_check glance data "stored file of image $image_id: size and md5 as saved" \
        check_store_file "$image_id"
    resource_checks_done glance
}

function destroy {
    local id
    id=$(resource_get glance image_id)
    if [[ -n $id ]]; then
        login
        oshttp request DELETE "$(image_url)" --expect 204,404
    fi
    os_login
    keystone_project_user_delete glance
}

resource_dispatch "$@"
