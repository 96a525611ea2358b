"""Rollback: grenade's rollback vs the same rollback written by hand, in one run.

One real cloud (the main job's four services on PostgreSQL, lite deployer) is set up,
upgraded and verified once. Then, rounds times, alternately:

- hand: ``bench/hand_rollback.sh`` (stop the target's services, drop/create/pg_restore
  each database from the snapshot, copy the saved paths back, start the base's);
- grenade: the rollback kind's steps through the runner (``rollback/check``, ``loss``,
  ``stop``, ``restore``, ``start``: manifest checksums, the loss report's descriptions
  and the migration version checks on top of the same work);

each followed by the upgrade phase again (not timed), which takes a new snapshot.
Prints each round's times and the ratio of the medians (target <= 1.3).

    python bench/rollback.py [--rounds 2] [--keep]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
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

TARGET = 1.3


def grenade(config: Path, *tasks: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "grenade", "-f", str(config), *tasks],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"grenade {' '.join(tasks)} failed:\n{proc.stdout[-3000:]}{proc.stderr}")


def grenade_rollback(config: Path) -> float:
    cfg = GrenadeConfig.from_file(config)
    with Session(cfg, console=io.StringIO(), task="rollback") as session:
        session.rollback_requested = True
        started = time.monotonic()
        phases.run_kinds(session, ["rollback"], force=True, check_order=False)
        return time.monotonic() - started


def hand_rollback(stack_root: Path) -> float:
    snap = stack_root / "save" / "snapshots" / "pre_upgrade"
    started = time.monotonic()
    subprocess.run(
        ["bash", str(REPO / "bench" / "hand_rollback.sh"), str(stack_root), str(snap)],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the cloud and its dir")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="grenade-rollback-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    stack_root = base / "stack"
    config = base / "run.yaml"
    config.write_text(yaml.safe_dump({"grenade": {"stack_root": str(stack_root)}}))
    hand: list[float] = []
    ours: list[float] = []
    try:
        started = time.monotonic()
        grenade(config, "setup", "base", "upgrade", "verify")
        print(f"cloud set up, upgraded and verified in {time.monotonic() - started:.0f} s")
        for n in range(1, args.rounds + 1):
            hand.append(hand_rollback(stack_root))
            grenade(config, "upgrade", "--force")
            ours.append(grenade_rollback(config))
            grenade(config, "upgrade", "--force")
            print(f"  round {n}: hand {hand[-1]:6.2f} s   grenade {ours[-1]:6.2f} s", flush=True)
    finally:
        if not args.keep:
            subprocess.run(
                [sys.executable, "-m", "grenade", "-f", str(config), "clean"],
                capture_output=True,
            )
            shutil.rmtree(base, ignore_errors=True)
    ratio = statistics.median(ours) / statistics.median(hand)
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"rollback of keystone, placement, swift and glance (median of {args.rounds}): "
        f"hand {statistics.median(hand):.2f} s, grenade {statistics.median(ours):.2f} s, "
        f"ratio {ratio:.3f} (target <= {TARGET}: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
