"""Plugins: discover `settings` files, evaluate them in one bash process, read back.

Settings files are bash and may do anything bash does (define functions, export
variables, rewrite UPGRADE_PROJECTS), so they are never parsed here: they are
sourced by `$GRENADE_DIR/inc/dump-settings`, which writes the resulting state as
NUL-separated records that this module reads back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .hosts import CONTROLLER, KILL_GRACE
from .releases import upgrade_direction
from .watchdog import Watchdog

HOOKS = ("upgrade.sh", "shutdown.sh", "resources.sh", "verify.sh", "snapshot.sh")


@dataclass(frozen=True)
class Project:
    """A registered project: its name and the directory its hooks live in."""

    name: str
    dir: str
    # the host groups its hooks run on (register_project_groups; default controller)
    groups: tuple[str, ...] = (CONTROLLER,)

    def hook(self, name: str) -> Path | None:
        """The hook file, or None; only exact names count (no fuzzy matching)."""
        path = Path(self.dir) / name
        return path if path.is_file() else None

    def per_release_script(
        self, base_branch: str, target_branch: str, base_release: str | None = None
    ) -> tuple[str, Path, bool]:
        """(direction, path, exists) of what `upgrade_project` in upgrade.sh would source."""
        direction, rel = upgrade_direction(base_branch, target_branch, base_release=base_release)
        path = Path(self.dir) / f"{direction}-{rel}" / f"upgrade-{self.name}"
        return direction, path, path.is_file()


@dataclass(frozen=True)
class Settings:
    """What the settings files left behind."""

    projects: list[Project] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    database_sources: dict[str, str] = field(default_factory=dict)  # db -> settings file
    base_run_smoke: bool = True
    target_run_smoke: bool = True
    verify_resources: bool = True
    localrc: list[tuple[str, str, str]] = field(default_factory=list)  # side, file, text
    exports: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Settings:
        raw = dict(raw)
        raw["projects"] = [
            Project(**{**p, "groups": tuple(p.get("groups", (CONTROLLER,)))})
            for p in raw.get("projects", [])
        ]
        raw["localrc"] = [tuple(x) for x in raw.get("localrc", [])]
        return cls(**raw)

    def project(self, name: str) -> Project:
        for p in self.projects:
            if p.name == name:
                return p
        raise KeyError(name)

    def localrc_for(self, side: str) -> list[tuple[str, str]]:
        return [(f, text) for s, f, text in self.localrc if s == side]


def discover_settings(projects_dirs: Sequence[str], plugin_dirs: Sequence[Path]) -> list[Path]:
    """In-tree `NN_*/settings` in lexical order per dir, then plugins in pluginrc order."""
    files: list[Path] = []
    for pdir in projects_dirs:
        base = Path(pdir)
        if base.is_dir():
            files.extend(sorted(p for p in base.glob("*/settings") if p.is_file()))
    for gitdir in plugin_dirs:
        # A plugin without devstack/upgrade/settings is ignored, as in the original:
        # Zuul lists every devstack plugin in pluginrc.
        path = gitdir / "devstack" / "upgrade" / "settings"
        if path.is_file():
            files.append(path)
    return files


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "yes", "1", "on")


def parse_records(blob: bytes) -> list[tuple[str, str]]:
    parts = blob.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    if len(parts) % 2:
        raise SettingsError("settings dump is truncated (odd number of records)")
    return [
        (parts[i].decode(errors="replace"), parts[i + 1].decode(errors="replace"))
        for i in range(0, len(parts), 2)
    ]


# `NAME=value` of a secret-looking name, as xtrace or an echo of an export shows it
SECRET_ASSIGNMENT = re.compile(
    r"(\b[A-Za-z_][A-Za-z0-9_]*(?:PASSWORD|PASSWD|TOKEN|KEY|SECRET)[A-Za-z0-9_]*=)\S+",
    re.IGNORECASE,
)


def load_settings(
    grenade_dir: Path, files: list[Path], env: dict[str, str], timeout: float = 300
) -> Settings:
    """Source every settings file in one bash process and read back its state.

    The bash runs in its own session, so that on a timeout or an interrupt its whole
    process group goes (what the settings started in the background too), never
    more; its records and scratch files live in a directory under GRENADE_DIR that
    is removed however this ends (not /tmp, where a killed run left them behind).
    """
    for stale in grenade_dir.glob(".settings-*"):  # a runner killed while sourcing
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".settings-", dir=grenade_dir))
    out_path = work / "records"
    argv = ["bash", str(grenade_dir / "inc" / "dump-settings"), str(out_path), *map(str, files)]
    try:
        stdout, stderr, returncode = _run_in_own_group(argv, env, grenade_dir, timeout)
        if returncode != 0:
            detail = "\n".join((stderr or stdout).strip().splitlines()[-20:])
            # the masker learns the exports of settings that loaded; these did not
            detail = SECRET_ASSIGNMENT.sub(r"\1******", detail)
            raise SettingsError(
                f"phase setup: loading plugin settings failed (exit {returncode}):\n{detail}"
            )
        records = parse_records(out_path.read_bytes())
    except subprocess.TimeoutExpired:
        raise SettingsError(
            f"phase setup: settings files did not finish in {timeout}s: "
            + ", ".join(map(str, files))
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return settings_from_records(records, files)


def _run_in_own_group(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of `argv` run in a new session; on any exception
    (the timeout, an `Interrupted` raised by a signal) its process group is killed."""
    watchdog = Watchdog(KILL_GRACE)  # a runner killed outright takes the bash along
    watchdog.start()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    watchdog.watch(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        raise
    finally:
        watchdog.forget(proc.pid)
        watchdog.close()
    return stdout, stderr, proc.returncode


def settings_from_records(records: list[tuple[str, str]], files: list[Path]) -> Settings:
    values: dict[str, str] = {}
    dirs: dict[str, str] = {}
    localrc: list[tuple[str, str, str]] = []
    exports: dict[str, str] = {}
    db_sources: dict[str, str] = {}
    groups: dict[str, tuple[str, ...]] = {}
    for key, value in records:
        if key.startswith("PLUGIN_DIR:"):
            dirs[key.split(":", 1)[1]] = value
        elif key.startswith("GROUPS:"):
            groups[key.split(":", 1)[1]] = tuple(value.split())
        elif key.startswith("DB_FROM:"):
            db_sources[key.split(":", 1)[1]] = value
        elif key.startswith("LOCALRC:"):
            side, src, text = (value.split("\t", 2) + ["", ""])[:3]
            localrc.append((side, src, text))
        elif key.startswith("EXPORT:"):
            exports[key.split(":", 1)[1]] = value
        else:
            values[key] = value
    projects = []
    for name in values.get("UPGRADE_PROJECTS", "").split():
        if name not in dirs:
            raise SettingsError(
                f"phase setup: project {name} is in UPGRADE_PROJECTS but no "
                "settings file registered it (no PLUGIN_DIR entry)"
            )
        projects.append(Project(name=name, dir=dirs[name], groups=groups.get(name, (CONTROLLER,))))
    return Settings(
        projects=projects,
        databases=values.get("DATABASES_TO_SAVE", "").split(),
        database_sources=db_sources,
        base_run_smoke=_truthy(values.get("BASE_RUN_SMOKE"), True),
        target_run_smoke=_truthy(values.get("TARGET_RUN_SMOKE"), True),
        verify_resources=_truthy(values.get("VERIFY_RESOURCES"), True),
        localrc=localrc,
        exports=exports,
        files=[str(f) for f in files],
    )


def enabled_services_from_tree(devstack_dir: Path, fallback: str) -> str:
    """ENABLED_SERVICES as the base tree's stackrc computes it, else `fallback`."""
    stackrc = devstack_dir / "stackrc"
    if not stackrc.is_file():
        return fallback
    script = 'source ./stackrc >/dev/null 2>&1 </dev/null; printf %s "${ENABLED_SERVICES:-}"'
    env = dict(os.environ, TOP_DIR=str(devstack_dir))
    try:
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=devstack_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return fallback
    return proc.stdout.strip() or fallback
