"""Framework overhead: grenade's full flow vs a plain bash driver, side by side.

Both run the same no-op projects (settings, upgrade.sh, shutdown.sh, resources.sh,
each hook sourcing grenaderc and functions) in the same order, each hook through
bash with its output appended to a log file. Prints both times and the ratio;
the target is a ratio <= 1.10.

    python bench/overhead.py [--projects 100] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grenade import phases  # noqa: E402
from grenade.config import GrenadeConfig  # noqa: E402
from grenade.session import Session  # noqa: E402

HOOK = """source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"
echo "{name} $(basename "$0") $*"
"""

# The plain driver: what grenade.sh does, minus everything grenade adds.
DRIVER = r"""
set -o errexit
export GRENADE_DIR="$1" SAVE_DIR="$2" LOGDIR="$3"
LOG="$3/plain.log"
source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"
export TOP_DIR="$TARGET_DEVSTACK_DIR" ENABLED_SERVICES=""
for f in "${@:4}"; do source "$f"; done
PROJECTS=($UPGRADE_PROJECTS)
REVERSED=($(reverse_list $UPGRADE_PROJECTS))
hook() { local p=$1 h=$2; shift 2
    [[ -f "${PLUGIN_DIR[$p]}/$h" ]] || return 0
    TOP_DIR=$TOP bash "${PLUGIN_DIR[$p]}/$h" "$@" >> "$LOG" 2>&1; }
TOP=$BASE_DEVSTACK_DIR
for p in "${PROJECTS[@]}"; do hook $p resources.sh early_create; done
for p in "${PROJECTS[@]}"; do hook $p resources.sh create; done
for p in "${PROJECTS[@]}"; do hook $p resources.sh verify pre-upgrade; done
TOP_DIR=$TOP bash "$GRENADE_DIR/save-state" base >> "$LOG" 2>&1
for p in "${REVERSED[@]}"; do hook $p shutdown.sh; done
for p in "${PROJECTS[@]}"; do hook $p resources.sh verify_noapi pre-upgrade; done
TOP_DIR=$TARGET_DEVSTACK_DIR bash "$GRENADE_DIR/prep-target" >> "$LOG" 2>&1
TOP=$TARGET_DEVSTACK_DIR
for p in "${PROJECTS[@]}"; do hook $p upgrade.sh; done
TOP=$BASE_DEVSTACK_DIR
for p in "${PROJECTS[@]}"; do hook $p resources.sh verify post-upgrade; done
TOP_DIR=$TARGET_DEVSTACK_DIR bash "$GRENADE_DIR/save-state" target >> "$LOG" 2>&1
for p in "${REVERSED[@]}"; do hook $p resources.sh destroy; done
"""


def make_projects(root: Path, count: int) -> Path:
    projects = root / "projects"
    for i in range(count):
        name = f"noop{i:03d}"
        d = projects / f"{i:03d}_{name}"
        d.mkdir(parents=True)
        (d / "settings").write_text(f"register_project_for_upgrade {name}\n")
        for hook in ("upgrade.sh", "shutdown.sh", "resources.sh"):
            (d / hook).write_text(HOOK.format(name=name))
    return projects


def time_grenade(root: Path, projects: Path) -> tuple[float, Session]:
    config = root / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "grenade": {
                    "stack_root": str(root / "stack"),
                    "deployer": "external",
                    "projects_dirs": [str(projects)],
                    "enabled_services": "",
                }
            }
        )
    )
    with open(os.devnull, "w") as quiet:
        start = time.perf_counter()
        with Session(GrenadeConfig.from_file(config), console=quiet) as session:
            phases.setup(session, force=True)
            phases.run_kinds(session, phases.kinds_between(None, None))
        return time.perf_counter() - start, session


def time_plain(run: Session, settings: list[str]) -> float:
    p = run.paths
    start = time.perf_counter()
    subprocess.run(
        [
            "bash",
            "-c",
            DRIVER,
            "driver",
            str(p.grenade_dir),
            str(p.save_dir),
            str(p.logs_dir),
            *settings,
        ],
        check=True,
    )
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="grenade-bench-") as tmp:
        root = Path(tmp)
        projects = make_projects(root, args.projects)
        settings = sorted(str(s) for s in projects.glob("*/settings"))
        g_times, b_times = [], []
        for _ in range(args.rounds):
            # Each timing starts with the disk's dirty pages written out, so neither
            # side pays for the other's writeback.
            os.sync()
            g, run = time_grenade(root, projects)
            os.sync()
            b = time_plain(run, settings)
            g_times.append(g)
            b_times.append(b)
        steps = len(run.plan())
        g, b = min(g_times), min(b_times)
        print(f"projects: {args.projects}, steps: {steps}, rounds: {args.rounds}")
        print(f"plain bash driver : {b:8.2f} s")
        print(f"grenade full flow : {g:8.2f} s")
        ratio = g / b
        print(f"ratio             : {ratio:8.3f}  (target <= 1.10)")
        print(f"overhead per step : {(g - b) / steps * 1000:8.2f} ms")
        return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
