"""Logs: the full timestamped log, the one-line-per-step summary, one log per step.

`$STACK_ROOT/logs/grenade.log` gets everything and `grenade.summary.log` one line per
step with its duration. The original's names, `grenade.sh.log` and
`grenade.sh.log.summary`, are links to them so existing log collection (Zuul's
`zuul_copy_output`) finds them.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import TextIO

LEGACY_LINKS = {"grenade.sh.log": "grenade.log", "grenade.sh.log.summary": "grenade.summary.log"}


def timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"


def step_log_name(index: int, step_id: str) -> str:
    return f"{index:03d}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", step_id) + ".log"


class RunLog:
    """The run's log files and console output."""

    def __init__(self, logs_dir: Path, console: TextIO | None = None,
                 verbose: bool = False) -> None:
        self.dir = logs_dir
        self.steps_dir = logs_dir / "steps"
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        self.console = console if console is not None else sys.stdout
        self.verbose = verbose
        self.main = open(logs_dir / "grenade.log", "a", buffering=1)
        self.summary = open(logs_dir / "grenade.summary.log", "a", buffering=1)
        for link, target in LEGACY_LINKS.items():
            path = logs_dir / link
            if not path.is_symlink():
                if path.exists():
                    path.unlink()
                path.symlink_to(target)

    def close(self) -> None:
        self.main.close()
        self.summary.close()

    def line(self, text: str) -> None:
        """A line of hook output: into the full log, and the console when verbose."""
        self.main.write(f"{timestamp()} | {text}\n")
        if self.verbose:
            self.console.write(text + "\n")

    def info(self, text: str) -> None:
        """A message of grenade's own: full log and console."""
        self.main.write(f"{timestamp()} | {text}\n")
        self.console.write(text + "\n")
        self.console.flush()

    def step_done(self, step_id: str, status: str, duration: float, host: str) -> None:
        self.summary.write(f"{timestamp()} | {status:7} {duration:8.2f}s  {host:10} {step_id}\n")


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last `lines` lines of a file (empty if it does not exist)."""
    try:
        with open(path, errors="replace") as fh:
            return [ln.rstrip("\n") for ln in deque(fh, maxlen=lines)]
    except OSError:
        return []


def ensure_dir(path: Path) -> Path:
    os.makedirs(path, exist_ok=True)
    return path
