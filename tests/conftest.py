"""Shared fixtures: a run config on a tmp stack_root with the fixture projects."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sshd import sshd_server  # noqa: F401  (a real sshd on 127.0.0.1 for remote-host tests)

from grenade.config import GrenadeConfig
from grenade.config_sources import DEFAULTS, merge

# CI machines have no git identity; fixture repositories still need commits.
for _var, _value in (
    ("GIT_AUTHOR_NAME", "grenade tests"),
    ("GIT_COMMITTER_NAME", "grenade tests"),
    ("GIT_AUTHOR_EMAIL", "tests@grenade.invalid"),
    ("GIT_COMMITTER_EMAIL", "tests@grenade.invalid"),
):
    os.environ.setdefault(_var, _value)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


# What the fixture projects' hooks trace in one whole run (alpha and beta; gamma is
# not enabled), in order: `trace()` of a stack_root after `run`.
FULL_FLOW_TRACE = [
    "verify-base alpha verify.sh base TOP=old",
    "early-create alpha resources.sh early_create TOP=old",
    "early-create beta resources.sh early_create TOP=old",
    "create alpha resources.sh create TOP=old",
    "create beta resources.sh create TOP=old",
    "verify-pre alpha resources.sh verify pre-upgrade TOP=old",
    "verify-pre beta resources.sh verify pre-upgrade TOP=old",
    "shutdown alpha shutdown.sh  TOP=old",
    "snapshot beta snapshot.sh pre_upgrade TOP=old",
    "verify-noapi alpha resources.sh verify_noapi pre-upgrade TOP=old",
    "verify-noapi beta resources.sh verify_noapi pre-upgrade TOP=old",
    "upgrade alpha upgrade.sh  TOP=new",
    "from-2025.2 applied to alpha",
    "upgrade beta upgrade.sh token=from alpha settings TOP=new",
    "verify-post alpha resources.sh verify post-upgrade TOP=old",
    "verify-post beta resources.sh verify post-upgrade TOP=old",
    "verify-target alpha verify.sh target TOP=new",
    "destroy beta resources.sh destroy TOP=old",
    "destroy alpha resources.sh destroy TOP=old",
    "destroyed",
]
BASE_HALF_TRACE = FULL_FLOW_TRACE[:11]  # up to verify_noapi: the original's `grenade.sh -b`


def write_config(path: Path, stack_root: Path, **grenade: Any) -> Path:
    data: dict[str, Any] = {
        "stack_root": str(stack_root),
        "deployer": "external",
        "projects_dirs": [str(FIXTURES / "projects")],
        "enabled_services": "alpha,beta",
        "timeout": 60,
    }
    data.update(grenade)
    path.write_text(yaml.safe_dump({"grenade": data}))
    return path


@pytest.fixture
def run_yaml(tmp_path: Path) -> Callable[..., Path]:
    """Write run.yaml for a stack_root under tmp_path; keyword args override keys."""

    def make(**grenade: Any) -> Path:
        return write_config(tmp_path / "run.yaml", tmp_path / "stack", **grenade)

    return make


def invoke(
    config: Path, *tasks: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `invoke -f config TASK...` in its own process, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "-f", str(config), *tasks],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start(config: Path, *tasks: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`invoke -f config TASK...` started in its own process, output piped: for tests
    that signal or kill the runner while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "-f", str(config), *tasks],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(cond: Callable[[], object], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, which an init that does not reap may keep,
    does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def trace(stack_root: Path) -> list[str]:
    path = stack_root / "save" / "trace.log"
    return path.read_text().splitlines() if path.exists() else []


def typed_config(**overrides: Any) -> GrenadeConfig:
    """A run configuration for a deployer's context, unvalidated like the mappings
    deployer tests used to pass: the defaults, no configured services, `overrides`."""
    return GrenadeConfig.from_data(merge(DEFAULTS, {"enabled_services": "", **overrides}))


@contextlib.contextmanager
def lite_dir(prefix: str) -> Iterator[Path]:
    """A directory for real lite clouds that every user can enter (PostgreSQL runs as
    the postgres user); afterwards every lite tree under it is unstacked, whatever
    happened, and the directory removed."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        # the target's first: the base's unstack.sh also stops the shared database
        trees = sorted(path.glob("**/devstack/unstack.sh"), key=lambda p: p.parts[-3] == "old")
        for unstack in trees:
            subprocess.run(
                ["bash", "./unstack.sh"], cwd=unstack.parent, capture_output=True, timeout=120
            )
        shutil.rmtree(path, ignore_errors=True)
