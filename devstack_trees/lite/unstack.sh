#!/usr/bin/env bash
#
# unstack.sh - stop what this tree's stack.sh (or a grenade upgrade with this
# tree as target) started: its services, then the PostgreSQL cluster of the
# run (shared by both trees; stopping it twice is harmless).  Data, venvs,
# configuration and logs stay, as with devstack's unstack.sh.

set -o errexit

TOP_DIR=$(cd "$(dirname "$0")" && pwd)
source "$TOP_DIR/functions"
if [[ -f $TOP_DIR/local.conf ]]; then
    extract_localrc_section "$TOP_DIR" localrc local.conf .localrc.auto
fi
source "$TOP_DIR/stackrc"
source "$TOP_DIR/lib/database"
source "$TOP_DIR/lib/keystone"
source "$TOP_DIR/lib/placement"

echo "lite unstack.sh: stopping OpenStack $LITE_RELEASE services of $DEST"
stop_placement
stop_keystone
if [[ " $DATABASE_BACKENDS " == *" $DATABASE_TYPE "* ]]; then
    stop_database
fi
echo "lite unstack.sh: done"
