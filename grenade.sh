#!/usr/bin/env bash
# grenade.sh [-b] [-t] [-q] [-s STOP] - the original's entry point over grenade's
# tasks, so jobs and roles that run `./grenade.sh` work unchanged.
#
#   -b       the base half only: `grenade run --to verify-noapi` (stack, verify,
#            create and verify resources, save state, shut down, verify_noapi)
#   -t       the target half only: `grenade run --from prep-target` (prepare the
#            target, upgrade, verify, destroy); it assumes the base half ran.
#            -b and -t together only set up, as the original then runs no half.
#   -q       quiet: the console shows one line per step; hook output is in the logs
#   -s STOP  stop after STOP, exit 1 with "STOP called for STOP": one of the
#            original's labels (stack.sh post-stack.sh image-cache base-smoke
#            save-state upgrade-tempest run-smoke, or their numbers 10 15 20 110
#            130 290 330) or a grenade step kind (`grenade --list`: phase.KIND).
#            A STOP outside the half that runs is never reached, as in the original.
#
# As the original: it runs from its own directory, so `localrc` and `pluginrc`
# beside it are read (unless the config names others);
# GRENADE_USE_EXTERNAL_DEVSTACK=True (environment or localrc) selects the external
# deployer with the trees used where they are; VERBOSE=False in localrc is -q. The
# logs are where the original's were: $STACK_ROOT/logs/grenade.sh.log and
# grenade.sh.log.summary (links to grenade.log and grenade.summary.log).
# Beyond the original: GRENADE_CONFIG names a run.yaml (`grenade -f`), relative to
# the caller's directory; GRENADE_PYTHON the interpreter (python3). From a
# checkout, the checkout's package is used. The options and variables reach grenade
# as INVOKE_GRENADE_* variables, so a `deployer:` or `verbose:` that the
# GRENADE_CONFIG file sets wins over them (invoke puts `-f` above the environment).
# Exit codes are grenade's (the failing hook's own, ...), 1 at a STOP, 2 on usage.

set -o errexit -o nounset -o pipefail

usage() {
    echo "usage: ${0##*/} [-b] [-t] [-q] [-s STOP]"
}

# devstack's trueorfalse: what the original accepts as true
is_true() {
    case ${1:-} in
        1 | yes | Yes | YES | true | True | TRUE) return 0 ;;
        *) return 1 ;;
    esac
}

# the original's stop labels (inc/bootstrap `stop`), as the step kind they follow
stop_kind() {
    case $1 in
        stack.sh | 10 | post-stack.sh | 15 | image-cache | 20) echo stack-base ;;
        base-smoke | 110) echo verify-base ;;
        save-state | 130) echo save-state ;;
        upgrade-tempest | 290) echo upgrade ;;
        run-smoke | 330) echo verify-target ;;
        *) echo "$1" ;;
    esac
}

run_base=True
run_target=True
quiet=False
stop=""
while getopts bqs:t opt; do
    case $opt in
        b) run_target=False ;;
        t) run_base=False ;;
        q) quiet=True ;;
        s) stop=$OPTARG ;; # the original's STOP=$2 only worked with -s first
        *)
            usage >&2
            exit 2
            ;;
    esac
done
shift $((OPTIND - 1))
if (($# > 0)); then
    echo "grenade.sh: unexpected argument '$1'" >&2
    usage >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
# a link to grenade.sh still finds the checkout it belongs to
checkout=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
python=${GRENADE_PYTHON:-python3}
config=()
if [[ -n ${GRENADE_CONFIG:-} ]]; then
    # resolved before the cd below: relative to where the caller stands
    config=(-f "$(realpath -m -- "$GRENADE_CONFIG")")
fi
if [[ -f $checkout/grenade/__init__.py ]]; then
    export PYTHONPATH=$checkout${PYTHONPATH:+:$PYTHONPATH}
fi

cd "$here"

# The original sources localrc before its defaults: a VERBOSE or
# GRENADE_USE_EXTERNAL_DEVSTACK there wins over the environment. It is bash, so
# bash reads it, in a child, and only these two values come back (NUL-separated).
verbose=${VERBOSE:-True}
external=${GRENADE_USE_EXTERNAL_DEVSTACK:-False}
if [[ -f localrc ]]; then
    values=$(
        bash -c 'source ./localrc >/dev/null 2>&1 </dev/null
            printf "%s/%s" "${VERBOSE:-True}" "${GRENADE_USE_EXTERNAL_DEVSTACK:-False}"'
    ) || true
    verbose=${values%%/*}
    external=${values#*/}
fi
[[ $quiet == True ]] && verbose=False
if is_true "$verbose"; then
    export INVOKE_GRENADE_VERBOSE=true
else
    export INVOKE_GRENADE_VERBOSE=false
fi
if is_true "$external"; then
    export INVOKE_GRENADE_DEPLOYER=external
fi

kinds_text=$("$python" -c 'from grenade.plan import KINDS; print("\n".join(KINDS))') || {
    echo "grenade.sh: cannot import grenade with $python (pip install grenade, or run it from a checkout)" >&2
    exit 1
}
mapfile -t kinds <<<"$kinds_text"
index_of() {
    local i
    for i in "${!kinds[@]}"; do
        if [[ ${kinds[i]} == "$1" ]]; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

if [[ $run_base == False && $run_target == False ]]; then
    "$python" -m grenade "${config[@]}" setup
    exit 0
fi

first=0
last=$((${#kinds[@]} - 1))
lo=$first
hi=$last
[[ $run_base == False ]] && lo=$(index_of prep-target)
[[ $run_target == False ]] && hi=$(index_of verify-noapi)
stopped=""
if [[ -n $stop ]]; then
    at=$(index_of "$(stop_kind "$stop")") || {
        echo "grenade.sh: -s '$stop' is neither a stop label (stack.sh post-stack.sh" \
            "image-cache base-smoke save-state upgrade-tempest run-smoke) nor a step kind" \
            "(${kinds[*]})" >&2
        exit 1
    }
    if ((at >= lo && at <= hi)); then
        hi=$at
        stopped=$stop
    fi
fi
args=(run)
((lo > first)) && args+=(--from "${kinds[lo]}")
((hi < last)) && args+=(--to "${kinds[hi]}")

"$python" -m grenade "${config[@]}" "${args[@]}"
if [[ -n $stopped ]]; then
    echo "STOP called for $stopped"
    exit 1
fi
echo "grenade.sh completed in $SECONDS seconds."
