#!/usr/bin/env bash
#
# hand_rollback.sh STACK_ROOT SNAPSHOT_DIR - the rollback grenade's rollback
# step does, written by hand: the yardstick bench/rollback.py measures
# `grenade rollback` against.  It stops the target's services, restores each
# database from the snapshot's pg_dump archive (drop, create, pg_restore),
# puts the saved configuration, keys and data back, and starts the base
# release's services, with the lite tree's own services.sh (as grenade's
# rollback does) and PostgreSQL's client tools.  No checksums, no migration
# version check, no loss report, no records: a person's script.

set -o errexit -o pipefail

ROOT=${1:?usage: hand_rollback.sh STACK_ROOT SNAPSHOT_DIR}
SNAP=${2:?usage: hand_rollback.sh STACK_ROOT SNAPSHOT_DIR}
OLD=$ROOT/old/devstack NEW=$ROOT/new/devstack

bash "$NEW/services.sh" stop

# the base tree's database settings (stackrc reads lite.env's port)
eval "$(
    cd "$OLD" && TOP_DIR=$OLD && source ./stackrc >/dev/null 2>&1
    printf 'HOST=%q PORT=%q DBUSER=%q PGPASSWORD=%q\n' "$DATABASE_HOST" "$DATABASE_PORT" \
        "$DATABASE_USER" "$DATABASE_PASSWORD"
)"
export PGPASSWORD
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
conn=(-h "$HOST" -p "$PORT" -U "$DBUSER")
for dump in "$SNAP"/db/*.dump; do
    db=${dump##*/}
    db=${db%.dump}
    "$bin/psql" "${conn[@]}" -d postgres -q -c "DROP DATABASE IF EXISTS \"$db\""
    "$bin/pg_restore" "${conn[@]}" -d postgres --create --exit-on-error "$dump"
done

while IFS=$'\t' read -r _project path copy; do
    [[ -n $path ]] || continue
    rm -rf -- "$path"
    tar -x -p --xattrs --xattrs-include='*' --numeric-owner -f "$SNAP/$copy" -C "$(dirname -- "$path")"
done <"$SNAP/data/paths.tsv"

bash "$OLD/services.sh" start
