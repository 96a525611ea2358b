#!/usr/bin/env bash
#
# hand_upgrade.sh STACK_ROOT TIMES_FILE - the upgrade grenade's main job does
# (keystone, placement, swift, glance: lite tree 2025.2 -> 2026.1), written
# by hand as one plain bash script: the yardstick bench/embedded.py measures
# grenade against.
#
# What it uses, and why that is fair: the lite devstack tree IS the deployment
# (grenade drives it too), so this script runs its stack.sh/unstack.sh and
# sources its lib/* for stop_<service>, stack_install_service and
# start_<service>, exactly as the in-tree projects' shutdown.sh/upgrade.sh do.
# The HTTP, data and database checks call the same stdlib tools
# (grenade/shell/tools/*.py) the projects' resources.sh call; a hand-written
# test would need them too.  What it does NOT use is grenade itself: no
# runner, plan, phases, plugin discovery, per-hook bash, resource store,
# result records, reports or summaries: state is shell variables.
#
# Operations, in grenade's order (see grenade/projects/*/):
#   setup       two copies of the lite tree (base 2025.2, target 2026.1)
#   deploy      the base tree's stack.sh
#   create      the resources each resources.sh create makes, over HTTP
#   verify-pre  the same checks as resources.sh verify; then pg_dump x3
#   shutdown    stop_glance/swift/placement/keystone of the base tree
#   verify-noapi  APIs refuse connections; rows (dbquery.py), the swift
#               .data file (swift_disk.py), the glance file, fernet keys
#   upgrade     per project, the target tree's code and upgrade.sh's commands
#   verify-post the verify checks again; then pg_dump x3
#   destroy     delete what create made
# Each phase start is appended to TIMES_FILE as "<phase> <epoch seconds>".
# Services and the database are left running (as `grenade run` leaves them);
# bench/embedded.py stops them with the target tree's unstack.sh.

set -o errexit -o pipefail

ROOT=${1:?usage: hand_upgrade.sh STACK_ROOT TIMES_FILE}
TIMES=${2:?usage: hand_upgrade.sh STACK_ROOT TIMES_FILE}
REPO=$(cd "$(dirname "$0")/.." && pwd)
LITE=$REPO/grenade/devstack_trees/lite
TOOLS=$REPO/grenade/shell/tools
OLD=$ROOT/old/devstack NEW=$ROOT/new/devstack SAVE=$ROOT/save

mark() { echo "$1 $EPOCHREALTIME" >>"$TIMES"; }
fail() { echo "hand_upgrade: FAIL: $*" >&2; exit 1; }
eq() { [[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"; }

# The tools, as inc/api runs them (python3 first on PATH: the base venv's
# once openrc is sourced, as in the projects' hooks).
http() { python3 "$TOOLS/oshttp.py" "$@"; }
data() { python3 "$TOOLS/osdata.py" "$@"; }
jget() { python3 "$TOOLS/oshttp.py" get "$@"; }
sql() { python3 "$TOOLS/dbquery.py" "$(iniget "$1" "$2" connection)" "$3"; }
md5_of() { data digest "$1" | jget md5; }
utoken() { # user password project [token options]: a token of user on project
    local u=$1 pw=$2 p=$3
    shift 3
    http --os-username "$u" --os-password "$pw" --os-project-name "$p" \
        --os-user-domain-id default --os-project-domain-id default token "$@"
}
login() { OS_TOKEN=$(utoken "$@") || fail "$1 cannot log in"; export OS_TOKEN; }
admin() { unset OS_TOKEN; OS_TOKEN=$(http token) || fail "admin login"; export OS_TOKEN; }
new() { http request POST "/v3/$1s" --data "$2" --get "$1.id"; } # kind body: the new id
role() { # name: the role's id, created when absent (placement's "service")
    local id
    id=$(http request GET "/v3/roles?name=$1" --get roles | jget 0.id 2>/dev/null) || id=
    [[ -n $id ]] || id=$(new role "{\"role\": {\"name\": \"$1\"}}")
    echo "$id"
}
grant() { http request PUT "/v3/projects/$1/users/$2/roles/$3" --expect 204; }
project() { new project "{\"project\": {\"name\": \"$1\", \"domain_id\": \"default\"}}"; }
user() { # name password project_id
    new user "{\"user\": {\"name\": \"$1\", \"domain_id\": \"default\", \"password\": \"$2\", \"default_project_id\": \"$3\"}}"
}
dump() { # release: pg_dump of the three databases, as save-state does
    local db
    for db in keystone placement glance; do
        PGPASSWORD=$DATABASE_PASSWORD timeout 120 pg_dump -U "$DATABASE_USER" \
            -h "$DATABASE_HOST" -p "$DATABASE_PORT" "$db" >"$SAVE/$db.sql.$1"
    done
}

# --- setup: the two trees, each one release (grenade clones two branches) ---
mark setup
mkdir -p "$ROOT/old" "$ROOT/new" "$SAVE"
for side in old:2025.2 new:2026.1; do
    tree=$ROOT/${side%%:*}/devstack
    cp -rL "$LITE" "$tree" # -L: tools/oshttp.py is a symlink into grenade
    echo "${side#*:}" >"$tree/RELEASE"
    printf '%s\n' "DEST=$ROOT/${side%%:*}" "DATA_DIR=$ROOT/data" "DATABASE_TYPE=postgresql" \
        "ENABLED_SERVICES=key,placement-api,g-api,s-proxy,s-account,s-container,s-object" \
        >"$tree/localrc"
done

# --- deploy ------------------------------------------------------------------
mark deploy
(cd "$OLD" && bash ./stack.sh) >"$ROOT/stack.log" 2>&1 || fail "stack.sh (log $ROOT/stack.log)"

# From here on this shell is a client of the base cloud, as every resources.sh
# is (they all source the base tree's openrc): its functions, libs, creds.
TOP_DIR=$OLD
source "$OLD/inc/tree"
source "$OLD/openrc" admin admin
KS_USER=keystone_grenade KS_PW=keystone-grenade-pass
PL_USER=placement_grenade PL_READER=placement_grenade_reader PL_PW=placement-grenade-pass
SW_USER=swift_grenade SW_PW=swift-grenade-pass
GL_USER=glance_grenade GL_PW=glance-grenade-pass
PL_MV=1.39 PL_USAGES_MV=1.37 # see 15_placement/resources.sh: 1.38+ /usages 500s on PostgreSQL
SW_META='{"x-object-meta-owner":"swift_grenade","x-object-meta-stage":"base"}'
GL_FIELDS="name status visibility disk_format container_format size checksum os_hash_algo \
os_hash_value grenade_stage grenade_owner"
place() { # METHOD PATH [options]: placement API call at PL_MV (or MV)
    local m=$1 p=$2
    shift 2
    http request "$m" "$PL_URL$p" "$@" --service placement --microversion "${MV:-$PL_MV}"
}
fernet_digest() {
    local f out=
    for f in "$KEYSTONE_FERNET_KEYS_DIR"/*; do out+="${f##*/} $(sha256sum <"$f")"$'\n'; done
    printf '%s' "$out" | sha256sum | cut -d' ' -f1
}
pl_snapshot() { # name: the JSON placement's verify compares
    case $1 in
        inventories | usages) place GET "/resource_providers/$RP/$1" --get "$1" --canonical ;;
        traits) place GET "/resource_providers/$RP/traits" --get traits |
            python3 -c 'import json, sys; print(json.dumps(sorted(json.load(sys.stdin))))' ;;
        allocation) place GET "/allocations/$CONSUMER" --canonical ;;
        project_usages) MV=$PL_USAGES_MV place GET "/usages?project_id=$PL_PROJECT" --get usages --canonical ;;
    esac
}
object_meta() { python3 -c 'import json, sys; h = json.load(sys.stdin)["headers"]
print(json.dumps({k: v for k, v in h.items() if k.startswith("x-object-meta-")}, sort_keys=True, separators=(",", ":")))'; }
gl_snapshot() {
    http request GET "$GL_URL/v2/images/$IMAGE" --expect 200 | python3 -c 'import json, sys
image = json.load(sys.stdin); print(json.dumps({k: image.get(k) for k in sys.argv[1].split()}, sort_keys=True))' "$GL_FIELDS"
}

# --- create ------------------------------------------------------------------
mark create
admin
MEMBER=$(role member) SERVICE_ROLE=$(role service)
# keystone: project, user, member role, a token of the user, fernet key digest
KS_PROJECT=$(project keystone_grenade)
KS_UID=$(user $KS_USER $KS_PW "$KS_PROJECT")
grant "$KS_PROJECT" "$KS_UID" "$MEMBER"
KS_TOKEN=$(utoken $KS_USER $KS_PW keystone_grenade) || fail "keystone user login"
KS_FERNET=$(fernet_digest)
# placement: a service-role user and a reader; provider, inventory, traits, allocation
PL_PROJECT=$(project placement_grenade)
PL_UID=$(user $PL_USER $PL_PW "$PL_PROJECT") PL_RID=$(user $PL_READER $PL_PW "$PL_PROJECT")
grant "$PL_PROJECT" "$PL_UID" "$SERVICE_ROLE"
grant "$PL_PROJECT" "$PL_UID" "$MEMBER"
grant "$PL_PROJECT" "$PL_RID" "$MEMBER"
PL_URL=$(http endpoint placement)
login $PL_USER $PL_PW placement_grenade
RP=$(python3 -c 'import uuid; print(uuid.uuid4())') CONSUMER=$(python3 -c 'import uuid; print(uuid.uuid4())')
place POST /resource_providers --expect 200 --data "{\"name\": \"placement_grenade_rp\", \"uuid\": \"$RP\"}" >/dev/null
gen=$(place GET "/resource_providers/$RP" --get generation)
place PUT "/resource_providers/$RP/inventories" --expect 200 --data "{\"resource_provider_generation\": $gen,
  \"inventories\": {\"VCPU\": {\"total\": 8, \"allocation_ratio\": 4.0},
  \"MEMORY_MB\": {\"total\": 16384, \"reserved\": 512}, \"DISK_GB\": {\"total\": 200, \"max_unit\": 100}}}" >/dev/null
place PUT /traits/CUSTOM_GRENADE_LITE --expect 201,204
gen=$(place GET "/resource_providers/$RP" --get generation)
place PUT "/resource_providers/$RP/traits" --expect 200 --data "{\"resource_provider_generation\": $gen,
  \"traits\": [\"CUSTOM_GRENADE_LITE\", \"HW_CPU_X86_AVX2\"]}" >/dev/null
place PUT "/allocations/$CONSUMER" --expect 204 --data "{\"allocations\": {\"$RP\": {\"resources\":
  {\"VCPU\": 2, \"MEMORY_MB\": 2048, \"DISK_GB\": 20}}}, \"project_id\": \"$PL_PROJECT\",
  \"user_id\": \"$PL_UID\", \"consumer_generation\": null, \"consumer_type\": \"INSTANCE\"}"
declare -A PL_SAVED
for s in inventories usages traits allocation; do PL_SAVED[$s]=$(pl_snapshot $s); done
login $PL_READER $PL_PW placement_grenade
PL_SAVED[project_usages]=$(pl_snapshot project_usages)
# swift: the user's container and a 4 MiB object with metadata; its token
admin
SW_PROJECT=$(project swift_grenade)
SW_UID=$(user $SW_USER $SW_PW "$SW_PROJECT")
grant "$SW_PROJECT" "$SW_UID" "$MEMBER"
login $SW_USER $SW_PW swift_grenade
SW_URL=$(http endpoint object-store)
OBJ=$SW_URL/grenade-cont/payload.bin
http request PUT "$SW_URL/grenade-cont" --expect 201,202
head -c $((4 << 20)) /dev/urandom >"$SAVE/swift-payload.bin"
put=$(data put "$OBJ" "$SAVE/swift-payload.bin" --expect 201 \
    --header "X-Object-Meta-Stage: base" --header "X-Object-Meta-Owner: swift_grenade")
SW_MD5=$(md5_of "$SAVE/swift-payload.bin") && rm -f "$SAVE/swift-payload.bin"
eq "$(jget headers.etag <<<"$put")" "$SW_MD5" "swift upload ETag"
SW_TOKEN=$OS_TOKEN
# glance: the user's private 3 MiB image, uploaded to the file store
admin
GL_PROJECT=$(project glance_grenade)
GL_UID=$(user $GL_USER $GL_PW "$GL_PROJECT")
grant "$GL_PROJECT" "$GL_UID" "$MEMBER"
login $GL_USER $GL_PW glance_grenade
GL_URL=$(http endpoint image)
IMAGE=$(http request POST "$GL_URL/v2/images" --expect 201 --get id --data "{\"name\": \"grenade-image\",
  \"disk_format\": \"raw\", \"container_format\": \"bare\", \"visibility\": \"private\",
  \"grenade_stage\": \"base\", \"grenade_owner\": \"$GL_USER\"}")
head -c $((3 << 20)) /dev/urandom >"$SAVE/glance-payload.bin"
data put "$GL_URL/v2/images/$IMAGE/file" "$SAVE/glance-payload.bin" --expect 204 >/dev/null
GL_MD5=$(md5_of "$SAVE/glance-payload.bin") && rm -f "$SAVE/glance-payload.bin"
GL_SAVED=$(gl_snapshot)
eq "$(jget status <<<"$GL_SAVED") $(jget checksum <<<"$GL_SAVED")" "active $GL_MD5" "glance image after upload"

# verify side - resources.sh verify of the four projects, with the APIs up.
verify() {
    local side=$1 s got url
    # keystone: the user logs in with its role; project, user, assignment; old token
    admin
    [[ $(utoken $KS_USER $KS_PW keystone_grenade --get token.roles) == *'"member"'* ]] ||
        fail "keystone: $KS_USER's token lacks member"
    eq "$(http request GET "/v3/projects/$KS_PROJECT" --get project.name)" keystone_grenade "keystone project"
    got=$(http request GET "/v3/users/$KS_UID" --get user --canonical)
    eq "$(jget name <<<"$got") $(jget default_project_id <<<"$got")" "$KS_USER $KS_PROJECT" "keystone user"
    eq "$(http request HEAD "/v3/projects/$KS_PROJECT/users/$KS_UID/roles/$MEMBER" \
        --expect 200,204,404 --print status)" 204 "keystone role assignment"
    eq "$(http request GET /v3/auth/tokens --subject-token "$KS_TOKEN" --expect 200 \
        --get token.user.id)" "$KS_UID" "keystone token issued before the upgrade"
    # placement: as the service-role user, then the project reader
    login $PL_USER $PL_PW placement_grenade
    eq "$(place GET "/resource_providers/$RP" --get name)" placement_grenade_rp "placement provider"
    for s in inventories usages traits allocation; do
        eq "$(pl_snapshot $s)" "${PL_SAVED[$s]}" "placement $s"
    done
    login $PL_READER $PL_PW placement_grenade
    eq "$(pl_snapshot project_usages)" "${PL_SAVED[project_usages]}" "placement project usages"
    # swift: the object with a fresh token and the old one; a new object round trip
    login $SW_USER $SW_PW swift_grenade
    for s in "$OS_TOKEN" "$SW_TOKEN"; do
        got=$(OS_TOKEN=$s data get "$OBJ" --expect 200)
        eq "$(jget md5 <<<"$got") $(jget size <<<"$got")" "$SW_MD5 $((4 << 20))" "swift object"
        eq "$(jget headers.etag <<<"$got")" "$SW_MD5" "swift object ETag"
        eq "$(object_meta <<<"$got")" "$SW_META" "swift object metadata"
    done
    url=$SW_URL/grenade-cont/written-$side.txt
    echo "written during verify $side" >"$SAVE/swift-written.txt"
    data put "$url" "$SAVE/swift-written.txt" --expect 201 >/dev/null
    eq "$(data get "$url" --expect 200 | jget md5)" "$(md5_of "$SAVE/swift-written.txt")" "swift write"
    rm -f "$SAVE/swift-written.txt"
    http request DELETE "$url" --expect 204 >/dev/null
    # glance: the image's lasting fields, and its bytes
    login $GL_USER $GL_PW glance_grenade
    eq "$(gl_snapshot)" "$GL_SAVED" "glance image"
    got=$(data get "$GL_URL/v2/images/$IMAGE/file" --expect 200)
    eq "$(jget md5 <<<"$got") $(jget size <<<"$got")" "$GL_MD5 $((3 << 20))" "glance data"
}

mark verify-pre
verify pre-upgrade
dump 2025.2

# --- shutdown (reverse order), then the pidfiles must name no live process ----
mark shutdown
stop_glance
stop_swift
stop_placement
stop_keystone
for svc in g-api s-proxy s-object s-container s-account placement-api keystone; do
    pidfile=$SERVICE_DIR/$SCREEN_NAME/$svc.pid
    if [[ -r $pidfile ]] && kill -0 "$(<"$pidfile")" 2>/dev/null; then fail "$svc still runs"; fi
done

# --- verify-noapi: the data at rest ------------------------------------------
mark verify-noapi
for url in "$OS_AUTH_URL" "$PL_URL" "${SW_URL%%/v1/*}" "$GL_URL"; do
    http refused "$url" || fail "$url still accepts connections"
done
eq "$(sql "$KEYSTONE_CONF" database "SELECT name FROM project WHERE id = '$KS_PROJECT'" | jget 0.name)" \
    keystone_grenade "keystone project row"
eq "$(sql "$KEYSTONE_CONF" database "SELECT name FROM local_user WHERE user_id = '$KS_UID'" | jget 0.name)" \
    "$KS_USER" "keystone user row"
eq "$(sql "$KEYSTONE_CONF" database "SELECT count(*) AS n FROM password p JOIN local_user l
    ON p.local_user_id = l.id WHERE l.user_id = '$KS_UID'" | jget 0.n)" 1 "keystone password row"
eq "$(sql "$KEYSTONE_CONF" database "SELECT role_id FROM assignment WHERE type = 'UserProject'
    AND actor_id = '$KS_UID' AND target_id = '$KS_PROJECT' AND role_id = '$MEMBER'" | jget 0.role_id)" \
    "$MEMBER" "keystone assignment row"
eq "$(fernet_digest)" "$KS_FERNET" "keystone fernet keys on disk"
PQ() { sql "$PLACEMENT_CONF" placement_database "$1"; }
eq "$(PQ "SELECT name FROM resource_providers WHERE uuid = '$RP'" | jget 0.name)" \
    placement_grenade_rp "placement provider row"
got=$(PQ "SELECT count(*) AS n, sum(i.total) AS total FROM inventories i
    JOIN resource_providers r ON i.resource_provider_id = r.id WHERE r.uuid = '$RP'")
eq "$(jget 0.n <<<"$got")/$(jget 0.total <<<"$got")" 3/16592 "placement inventory rows"
eq "$(PQ "SELECT t.name FROM traits t JOIN resource_provider_traits rt ON rt.trait_id = t.id
    JOIN resource_providers r ON rt.resource_provider_id = r.id WHERE r.uuid = '$RP' ORDER BY t.name" |
    jget '' --canonical)" '[{"name":"CUSTOM_GRENADE_LITE"},{"name":"HW_CPU_X86_AVX2"}]' "placement trait rows"
eq "$(PQ "SELECT sum(used) AS used FROM allocations WHERE consumer_id = '$CONSUMER'" | jget 0.used)" \
    2070 "placement allocation rows"
got=$(PQ "SELECT p.external_id AS project, u.external_id AS usr FROM consumers c JOIN projects p
    ON c.project_id = p.id JOIN users u ON c.user_id = u.id WHERE c.uuid = '$CONSUMER'")
eq "$(jget 0.project <<<"$got") $(jget 0.usr <<<"$got")" "$PL_PROJECT $PL_UID" "placement consumer row"
# swift: the object's .data file where the ring puts it, size and stored metadata
got=$("$SWIFT_PYTHON" "$TOOLS/swift_disk.py" --swift-dir "$SWIFT_CONF_DIR" --devices "$SWIFT_DEVICES_DIR" \
    "${SW_URL##*/}" grenade-cont payload.bin) || fail "swift: no .data file"
python3 -c 'import json, sys
found, md5, meta = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
for f in found["files"]:
    s = {k.lower(): v for k, v in f["metadata"].items()}
    assert f["size"] == 4 << 20 and s.get("content-length") == str(4 << 20), f
    assert s.get("etag") == md5 and {k: v for k, v in s.items() if k.startswith("x-object-meta-")} == meta, f
' "$got" "$SW_MD5" "$SW_META" || fail "swift .data file"
# glance: the images row, and the file its active location names
GQ() { sql "$GLANCE_API_CONF" database "$1"; }
got=$(GQ "SELECT status, checksum, size FROM images WHERE id = '$IMAGE'")
eq "$(jget 0.status <<<"$got") $(jget 0.checksum <<<"$got") $(jget 0.size <<<"$got")" \
    "active $GL_MD5 $((3 << 20))" "glance image row"
path=$(GQ "SELECT value FROM image_locations WHERE image_id = '$IMAGE' AND deleted = false
    AND status = 'active'" | jget 0.value)
path=${path#file://}
eq "$(md5_of "$path") $(stat -c %s "$path")" "$GL_MD5 $((3 << 20))" "glance stored file"

# --- upgrade: each project's upgrade.sh commands, with the target tree -------
mark upgrade
(
    TOP_DIR=$NEW
    source "$NEW/inc/tree" # the target's stackrc and libs: new venv, new bin wrappers
    for p in keystone placement swift glance; do
        dir=${p^^}_CONF_DIR
        [[ -d $SAVE/etc.$p ]] || cp -pr "${!dir}" "$SAVE/etc.$p" # save_config_dir
        stack_install_service "$p" # builds the target venv once, then the wrappers
        case $p in
            keystone)
                for step in --expand --migrate --contract --check; do
                    "$KEYSTONE_BIN_DIR/keystone-manage" db_sync $step || fail "keystone db_sync $step"
                done ;;
            placement)
                "$PLACEMENT_BIN_DIR/placement-manage" db sync || fail "placement db sync"
                "$PLACEMENT_BIN_DIR/placement-manage" db online_data_migrations || fail "placement ODM"
                rc=0 && "$PLACEMENT_BIN_DIR/placement-status" upgrade check || rc=$?
                ((rc < 2)) || fail "placement-status upgrade check: $rc" ;;
            glance)
                "$GLANCE_BIN_DIR/glance-manage" db sync || fail "glance db sync"
                # 255: glance 33's checker itself crashes upstream; only 2 is a failure
                rc=0 && "$GLANCE_BIN_DIR/glance-status" upgrade check || rc=$?
                ((rc != 2)) || fail "glance-status upgrade check" ;;
        esac
        "start_$p" # returns once the service answers HTTP
    done
) >"$ROOT/upgrade.log" 2>&1 || fail "upgrade (log $ROOT/upgrade.log)"

mark verify-post
verify post-upgrade
dump 2026.1

# --- destroy -------------------------------------------------------------------
mark destroy
login $GL_USER $GL_PW glance_grenade
http request DELETE "$GL_URL/v2/images/$IMAGE" --expect 204,404
login $SW_USER $SW_PW swift_grenade
http request DELETE "$OBJ" --expect 204,404
http request DELETE "$SW_URL/grenade-cont" --expect 204,404
login $PL_USER $PL_PW placement_grenade
place DELETE "/allocations/$CONSUMER" --expect 204,404
place DELETE "/resource_providers/$RP" --expect 204,404
place DELETE /traits/CUSTOM_GRENADE_LITE --expect 204,404
admin
for id in "$GL_UID" "$SW_UID" "$PL_UID" "$PL_RID" "$KS_UID"; do
    http request DELETE "/v3/users/$id" --expect 204,404
done
for id in "$GL_PROJECT" "$SW_PROJECT" "$PL_PROJECT" "$KS_PROJECT"; do
    http request DELETE "/v3/projects/$id" --expect 204,404
done
mark end
echo "hand_upgrade: done"
