#!/usr/bin/env python3
"""service_versions - which code each running service runs, read from its process.

Prints ``{"<service>": {"pid": N, "version": "x.y.z", "code": "<path>"}}`` for every
service process found running (one with several live processes lists the others under
``"also"``, each of the same shape). Services and their PyPI distributions are given as
``--service NAME=DISTRIBUTION``; their processes are found through

- ``--release-dir DIR``: the lite tree's pidfiles, ``DIR/status/<screen>/NAME.pid`` and
  ``NAME-*.pid`` (devstack's legacy layout, which the lite tree's run_process writes;
  the key printed is the pidfile's name, e.g. placement-api), for each DIR;
- ``--systemd``: devstack's units, ``devstack@<service>.service``'s MainPID.

The version is never what a tree has installed: it is read from the interpreter the
process runs. Python finds its prefix from ``argv[0]`` (searched on the process's own
PATH) and the ``pyvenv.cfg`` beside it or one level up, so this does the same with the
process's ``/proc/<pid>/cmdline``, ``environ`` and ``cwd``; the site-packages its
``/proc/<pid>/maps`` shows loaded (native modules) come next. The first of those that
holds the distribution gives its version and its code's path.

Runs with the host's python3 and nothing but the standard library: grenade ships it
in GRENADE_DIR/tools and the deployer's reading command runs it on each host.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

PROC = Path("/proc")


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = _read(PROC / str(pid) / "stat").decode(errors="replace")
    return bool(stat) and stat.rpartition(")")[2].split()[:1] != ["Z"]


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group, the leader first: run_process records the
    group's leader, which may be a shell that started the interpreter."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _read(entry / "stat").decode(errors="replace").rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    members.sort(key=lambda p: (p != pgid, p))
    return members or ([pgid] if alive(pgid) else [])


def _environ(pid: int) -> dict[str, str]:
    env = {}
    for item in _read(PROC / str(pid) / "environ").split(b"\0"):
        name, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            env[name] = value
    return env


def _executable(pid: int) -> Path | None:
    """The interpreter's path as the process named it (what Python's prefix search
    starts from): argv[0], searched on the process's PATH when it has no slash."""
    argv = _read(PROC / str(pid) / "cmdline").split(b"\0")
    argv0 = argv[0].decode(errors="replace") if argv and argv[0] else ""
    if not argv0:
        return None
    if "/" in argv0:
        path = Path(argv0)
        if not path.is_absolute():
            try:
                path = Path(os.readlink(PROC / str(pid) / "cwd")) / path
            except OSError:
                return None
        return path
    for folder in _environ(pid).get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / argv0
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _site_packages(prefix: Path) -> list[Path]:
    return sorted(prefix.glob("lib/python3*/site-packages"))


def code_dirs(pid: int) -> list[Path]:
    """Where the process imports from, in the order its interpreter searches."""
    dirs: list[Path] = []
    exe = _executable(pid)
    if exe is not None:
        for prefix in (exe.parent, exe.parent.parent):
            if (prefix / "pyvenv.cfg").is_file():
                dirs += _site_packages(prefix)
                break
    for line in _read(PROC / str(pid) / "maps").decode(errors="replace").splitlines():
        fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
        if len(fields) == 6 and "/site-packages/" in fields[5]:
            site = Path(fields[5].split("/site-packages/", 1)[0] + "/site-packages")
            if site not in dirs:
                dirs.append(site)
    return dirs


def _is_python(pid: int) -> bool:
    try:
        return Path(os.readlink(PROC / str(pid) / "exe")).name.startswith("python")
    except OSError:
        return False


def _dist_code(dist: importlib.metadata.Distribution, site: Path) -> str:
    """The distribution's package directory (its top-level name), else site-packages;
    for an editable install (devstack's git trees), the tree it points at."""
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    url = direct.get("url", "") if isinstance(direct, dict) else ""
    if direct.get("dir_info", {}).get("editable") and url.startswith("file://"):
        return url[len("file://") :]
    for name in (dist.read_text("top_level.txt") or "").split():
        if (site / name).exists():
            return str(site / name)
    return str(site)


def read_process(pid: int, distribution: str) -> dict[str, object]:
    """What the service whose process (group) is `pid` runs: its interpreter's copy of
    `distribution`. version None: no site-packages of the process holds it."""
    members = group_members(pid)
    runner = next((p for p in members if _is_python(p)), pid)
    wanted = _normalize(distribution)
    for site in code_dirs(runner):
        for dist in importlib.metadata.distributions(path=[str(site)]):
            if _normalize(dist.metadata["Name"] or "") == wanted:
                return {"pid": runner, "version": dist.version, "code": _dist_code(dist, site)}
    try:
        code = os.readlink(PROC / str(runner) / "exe")
    except OSError:
        code = ""
    return {"pid": runner, "version": None, "code": code}


def pidfile_pids(release_dirs: list[Path], service: str) -> list[tuple[str, int]]:
    """``(process name, pid)`` of the service's live pidfiles in the release dirs, in
    their order: ``<service>.pid`` and ``<service>-*.pid`` (devstack names a service's
    processes so: lib/placement runs placement-api)."""
    found = []
    for release in release_dirs:
        pidfiles = [*release.glob(f"status/*/{service}.pid")]
        pidfiles += release.glob(f"status/*/{service}-*.pid")
        for pidfile in sorted(pidfiles):
            text = _read(pidfile).decode(errors="replace").split()
            if text and text[0].isdigit() and alive(int(text[0])):
                found.append((pidfile.stem, int(text[0])))
    return found


def systemd_pids(service: str) -> list[int]:
    """The MainPID of devstack's unit for the service (none when it does not run)."""
    proc = subprocess.run(
        ["systemctl", "show", "--property=MainPID", "--value", f"devstack@{service}.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    value = proc.stdout.strip()
    return [int(value)] if value.isdigit() and int(value) > 0 and alive(int(value)) else []


def reading(
    services: dict[str, str], release_dirs: list[Path], systemd: bool
) -> dict[str, dict[str, object]]:
    """``{process name: {pid, version, code[, also]}}`` of the services found running."""
    by_name: dict[str, list[dict[str, object]]] = {}
    for service, distribution in services.items():
        named = pidfile_pids(release_dirs, service)
        if systemd:
            named += [(service, p) for p in systemd_pids(service) if (service, p) not in named]
        for name, pid in named:
            by_name.setdefault(name, []).append(read_process(pid, distribution))
    found = {}
    for name, (first, *others) in by_name.items():
        found[name] = {**first, "also": others} if others else first
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--service", action="append", default=[], metavar="NAME=DISTRIBUTION", required=True
    )
    parser.add_argument("--release-dir", action="append", default=[], type=Path)
    parser.add_argument("--systemd", action="store_true")
    args = parser.parse_args(argv)
    services = {}
    for item in args.service:
        name, sep, dist = item.partition("=")
        if not sep or not name or not dist:
            parser.error(f"--service {item!r}: expected NAME=DISTRIBUTION")
        services[name] = dist
    json.dump(reading(services, args.release_dir, args.systemd), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
