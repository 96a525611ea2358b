#!/usr/bin/env bash
#
# resources.sh - a swift object that must survive the upgrade, byte for byte.
#
# Who acts: a NON-admin user, swift_grenade, member of its own project, owns
# the container and the object in its account (AUTH_<project id>); admin only
# creates and deletes that user and project.
#
#   create          container grenade-cont and object payload.bin: 4 MiB of
#                   random bytes with metadata (Stage, Owner); its md5, size and
#                   metadata are saved, and a token of the user issued now.
#   verify <side>   the object reads back (a fresh token) with the same md5,
#                   size, ETag and metadata; the token issued before the upgrade
#                   still reads it; a new object can be written, read, deleted.
#   verify_noapi    the proxy refuses connections; on a node that runs
#                   s-object, the object's .data file is on the device where the
#                   ring puts it, with the saved size and stored metadata.
#   destroy         delete object, container, user and project.

set -o errexit

source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"

source "$TOP_DIR/openrc" admin admin
source "$TOP_DIR/lib/swift"

set -o xtrace

SWIFT_GRENADE_PROJECT=swift_grenade
SWIFT_GRENADE_USER=swift_grenade
SWIFT_GRENADE_PASSWORD=swift-grenade-pass
SWIFT_GRENADE_CONTAINER=grenade-cont
SWIFT_GRENADE_OBJECT=payload.bin
SWIFT_GRENADE_SIZE=$((4 * 1024 * 1024))
SWIFT_GRENADE_META='{"x-object-meta-owner": "swift_grenade", "x-object-meta-stage": "base"}'

# login - switch OS_TOKEN to a token of the test user.
function login {
    os_login "$SWIFT_GRENADE_USER" "$SWIFT_GRENADE_PASSWORD" "$SWIFT_GRENADE_PROJECT"
}

function object_url {
    echo "$(resource_get swift endpoint)/$SWIFT_GRENADE_CONTAINER/$SWIFT_GRENADE_OBJECT"
}

# object_meta json - the x-object-meta-* headers of an osdata result, as
# canonical JSON.
function object_meta {
    python3 -c '
import json, sys
headers = json.load(sys.stdin)["headers"]
meta = {k: v for k, v in headers.items() if k.startswith("x-object-meta-")}
print(json.dumps(meta, sort_keys=True, separators=(",", ":")))' <<<"$1"
}

function create {
    os_login
    keystone_project_user swift "$SWIFT_GRENADE_PROJECT" "$SWIFT_GRENADE_USER" \
        "$SWIFT_GRENADE_PASSWORD" member

    login
    local endpoint payload put
    endpoint=$(oshttp endpoint object-store) || die $LINENO "swift: not in the catalog"
    resource_save swift endpoint "$endpoint"
    resource_save swift account "${endpoint##*/}"
    oshttp request PUT "$endpoint/$SWIFT_GRENADE_CONTAINER" --expect 201,202
    payload=$SAVE_DIR/swift-payload.bin
    head -c "$SWIFT_GRENADE_SIZE" /dev/urandom >"$payload"
    put=$(osdata put "$(object_url)" "$payload" --expect 201 \
        --header "X-Object-Meta-Stage: base" --header "X-Object-Meta-Owner: swift_grenade") \
        || die $LINENO "swift: cannot upload $SWIFT_GRENADE_CONTAINER/$SWIFT_GRENADE_OBJECT"
    local md5
    md5=$(osdata digest "$payload" | json_get md5)
    rm -f "$payload"
    [[ $(json_get headers.etag <<<"$put") == "$md5" ]] \
        || die $LINENO "swift: the upload's ETag is not the payload's md5 $md5"
    resource_save swift md5 "$md5"
    resource_save swift size "$SWIFT_GRENADE_SIZE"
    # read back by the user, the token saved for after the upgrade
    resource_save swift user_token "$OS_TOKEN"
}

# check_object [token] - the object as saved, read with the token (default:
# the current one).
function check_object {
    local got
    got=$(OS_TOKEN=${1:-$OS_TOKEN} osdata get "$(object_url)" --expect 200) || return 1
    expect_equal "$(json_get md5 <<<"$got") $(json_get size <<<"$got")" \
        "$(resource_get swift md5) $(resource_get swift size)" || return 1
    expect_equal "$(json_get headers.etag <<<"$got")" "$(resource_get swift md5)" || return 1
    expect_equal "$(object_meta "$got")" "$(json_get '' --canonical <<<"$SWIFT_GRENADE_META")"
}

# check_write side - a new object in the container is written and read back.
function check_write {
    local url file got
    url=$(resource_get swift endpoint)/$SWIFT_GRENADE_CONTAINER/written-$1.txt
    file=$SAVE_DIR/swift-written-$1.txt
    echo "written during verify $1" >"$file"
    osdata put "$url" "$file" --expect 201 >/dev/null || return 1
    got=$(osdata get "$url" --expect 200) || return 1
    expect_equal "$(json_get md5 <<<"$got")" "$(osdata digest "$file" | json_get md5)" || return 1
    rm -f "$file"
    oshttp request DELETE "$url" --expect 204 >/dev/null
}

function verify {
    local side=${1:-any} what
    what="object $SWIFT_GRENADE_CONTAINER/$SWIFT_GRENADE_OBJECT of $(resource_get swift account)"
    login
    resource_check swift object "$what: md5, size, ETag and metadata as saved" check_object
    resource_check swift old_token "$what, read with the token issued before the upgrade" \
        check_object "$(resource_get swift user_token)"
    resource_check swift write "a new object written and read back ($side)" check_write "$side"
    resource_checks_done swift
}

# check_data_file - the object's .data file on this node's devices: size and
# the metadata swift stored with it.
function check_data_file {
    local found
    found=$("$SWIFT_PYTHON" "$GRENADE_DIR/tools/swift_disk.py" --swift-dir "$SWIFT_CONF_DIR" \
        --devices "$SWIFT_DEVICES_DIR" "$(resource_get swift account)" \
        "$SWIFT_GRENADE_CONTAINER" "$SWIFT_GRENADE_OBJECT") || {
        echo "no .data file on this node's devices ($SWIFT_DEVICES_DIR): $found"
        return 1
    }
    python3 -c '
import json, sys
found, md5, size, meta = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
problems = []
for data in found["files"]:
    path, stored = data["path"], {k.lower(): v for k, v in data["metadata"].items()}
    user_meta = {k: v for k, v in stored.items() if k.startswith("x-object-meta-")}
    length, etag, on_disk = stored.get("content-length"), stored.get("etag"), data["size"]
    if on_disk != size or length != str(size):
        problems.append(f"{path}: size {on_disk} (Content-Length {length}), expected {size}")
    if etag != md5:
        problems.append(f"{path}: stored ETag {etag}, expected {md5}")
    if user_meta != meta:
        problems.append(f"{path}: stored metadata {user_meta}, expected {meta}")
print("; ".join(problems) or "ok")
sys.exit(1 if problems else 0)' "$found" "$(resource_get swift md5)" "$(resource_get swift size)" \
        "$SWIFT_GRENADE_META"
}

function verify_noapi {
    local endpoint
    endpoint=$(resource_get swift endpoint)
    resource_check_api_down swift swift_api_down "${endpoint%%/v1/*}"
    if is_service_enabled s-object; then
        resource_check swift data_file \
            "the .data file of $SWIFT_GRENADE_CONTAINER/$SWIFT_GRENADE_OBJECT on ${GRENADE_HOST:-$(hostname)}'s devices" \
            check_data_file
    fi
    resource_checks_done swift
}

function destroy {
    local endpoint
    endpoint=$(resource_get swift endpoint)
    if [[ -n $endpoint ]]; then
        login
        oshttp request DELETE "$(object_url)" --expect 204,404
        oshttp request DELETE "$endpoint/$SWIFT_GRENADE_CONTAINER" --expect 204,404
    fi
    os_login
    keystone_project_user_delete swift
}

resource_dispatch "$@"
