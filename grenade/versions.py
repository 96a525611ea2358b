"""Version convergence: what each service runs, before and after the upgrade.

The plan's ``versions-base`` and ``converge`` steps run this module on the hosts of
their group, as any hook runs::

    python3 $GRENADE_DIR/tools/versions.py record -- READING...
    python3 $GRENADE_DIR/tools/versions.py check --target-dir DIR -- READING...

(GRENADE_DIR's copy of this module, which needs nothing but the standard library, so
that a node runs it without grenade installed.)

READING is the deployer's reading command (``Deployer.running_versions``), which
prints ``{"<service>": {"pid": N, "version": "x.y.z", "code": "<path>"}}`` for the
services it finds running, read from their processes. ``record`` keeps what runs at
the base; ``check`` keeps what runs after the upgrade and fails, naming service, host,
pid, version and code, when an upgraded service does not run code from the target
release's directory (a stale unit, a service restarted from the base tree), or when a
service that ran at the base no longer runs. On a host of a multinode run that no
upgrade touched yet (none of its ``GRENADE_HOST_GROUPS`` is in
``GRENADE_UPGRADED_GROUPS``), ``check`` asks the opposite: every service still runs
the processes it ran at the base, none restarted, none on the target's code. Both write
``$SAVE_DIR/service-versions.json``::

    {"base": {"<host>": {"<service>": {"pid": 123, "version": "28.1.0", "code": "/path"}}},
     "target": {...}}

The host is ``$GRENADE_HOST`` (the inventory's name) when the host interface sets it,
else the machine's hostname.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

FILE_NAME = "service-versions.json"
SIDE_OF = {"record": "base", "check": "target"}

Reading = dict[str, dict[str, Any]]


class VersionsError(Exception):
    """The reading could not be taken, or the services did not converge."""


def versions_file(save_dir: Path) -> Path:
    return save_dir / FILE_NAME


def load(save_dir: Path) -> dict[str, dict[str, Reading]]:
    """The recorded readings (``{}`` when none was taken yet)."""
    path = versions_file(save_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise VersionsError(f"{path}: unreadable ({exc})") from exc
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _locked(save_dir: Path) -> Iterator[None]:
    # The hosts of a group run this at once and may share SAVE_DIR (one machine).
    with open(save_dir / f".{FILE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def store(save_dir: Path, side: str, host: str, reading: Reading) -> None:
    """Put one host's reading of one side into the file, keeping the others."""
    save_dir.mkdir(parents=True, exist_ok=True)
    with _locked(save_dir):
        data = load(save_dir)
        data.setdefault(side, {})[host] = reading
        path = versions_file(save_dir)
        tmp = path.with_name(f".{FILE_NAME}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)


def merge_host(save_dir: Path, host: str, data: bytes) -> None:
    """A node's own service-versions.json: its readings of itself (`host`) recorded
    in the controller's file, the other hosts' entries left as they are here."""
    try:
        theirs = json.loads(data)
    except ValueError as exc:
        raise VersionsError(f"{host}'s {FILE_NAME} is not JSON: {exc}") from None
    for side in SIDE_OF.values():
        reading = theirs.get(side, {}).get(host) if isinstance(theirs, dict) else None
        if isinstance(reading, dict) and load(save_dir).get(side, {}).get(host) != reading:
            store(save_dir, side, host, reading)


def take_reading(argv: Sequence[str]) -> Reading:
    """Run the deployer's reading command and parse what it prints."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise VersionsError(f"cannot run the version reading {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise VersionsError(
            f"the version reading exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    try:
        reading = json.loads(proc.stdout)
    except ValueError as exc:
        raise VersionsError(f"the version reading printed no JSON: {proc.stdout[:500]!r}") from exc
    if not isinstance(reading, dict):
        raise VersionsError(f"the version reading printed {type(reading).__name__}, not an object")
    return reading


def processes(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A service's processes: the entry itself, then the others it lists."""
    return [entry, *entry.get("also", ())]


def _under(code: str, directory: Path) -> bool:
    try:
        return Path(code).resolve().is_relative_to(directory.resolve())
    except (OSError, ValueError):
        return False


def not_converged(
    host: str, target_dir: Path, now: Mapping[str, Any], before: Mapping[str, Any]
) -> list[str]:
    """Why the services of one host do not all run the target's code (empty: they do)."""
    problems = []
    for service in sorted(set(now) | set(before)):
        if service not in now:
            was = before[service]
            problems.append(
                f"service {service} on host {host} is not running after the upgrade "
                f"(it ran {was.get('version')} at the base, pid {was.get('pid')})"
            )
            continue
        for proc in processes(now[service]):
            code = str(proc.get("code") or "")
            if not _under(code, target_dir):
                problems.append(
                    f"service {service} on host {host} does not run the target's code: "
                    f"pid {proc.get('pid')} runs version {proc.get('version') or 'unknown'} "
                    f"from {code or 'an unknown path'} (not under {target_dir})"
                )
    return problems


def not_kept(
    host: str, target_dir: Path, now: Mapping[str, Any], before: Mapping[str, Any]
) -> list[str]:
    """Why the services of a host the upgrade left on the base release are not as they
    were (empty: every service still runs the same processes, on the base's code)."""
    problems = []
    for service in sorted(before):
        was = before[service]
        if service not in now:
            problems.append(
                f"service {service} on host {host} is not running, and this upgrade leaves "
                f"{host} on the base release (it ran {was.get('version')}, pid {was.get('pid')})"
            )
            continue
        old = {p.get("pid") for p in processes(was)}
        for proc in processes(now[service]):
            code = str(proc.get("code") or "")
            if proc.get("pid") not in old:
                problems.append(
                    f"service {service} on host {host} was restarted, and this upgrade leaves "
                    f"{host} on the base release: pid {proc.get('pid')} now, pid "
                    f"{was.get('pid')} at the base (version {proc.get('version') or 'unknown'} "
                    f"from {code or 'an unknown path'})"
                )
            elif _under(code, target_dir):
                problems.append(
                    f"service {service} on host {host} runs the target's code from {code}, "
                    f"and this upgrade leaves {host} on the base release"
                )
    return problems


def upgraded_here(env: Mapping[str, str]) -> bool:
    """This host is in a group an upgrade touched so far (GRENADE_UPGRADED_GROUPS);
    without the variables (one host, or an older runner) every host is."""
    upgraded = env.get("GRENADE_UPGRADED_GROUPS")
    mine = env.get("GRENADE_HOST_GROUPS")
    if upgraded is None or mine is None:
        return True
    return bool(set(upgraded.split()) & set(mine.split()))


def describe(reading: Reading) -> list[str]:
    lines = []
    for service, entry in sorted(reading.items()):
        for proc in processes(entry):
            lines.append(
                f"  {service:12} pid {proc.get('pid')!s:8} "
                f"{proc.get('version') or 'unknown':12} {proc.get('code')}"
            )
    return lines or ["  (no service of the deployer runs)"]


def host_name() -> str:
    return os.environ.get("GRENADE_HOST") or socket.gethostname()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m grenade.versions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("action", choices=sorted(SIDE_OF))
    parser.add_argument("--target-dir", type=Path, help="check: the target release's directory")
    parser.add_argument("--save-dir", type=Path, help="default: $SAVE_DIR")
    parser.add_argument("reading", nargs="*", help="-- the reading command")
    given = list(sys.argv[1:] if argv is None else argv)
    # The reading's own options are not ours: everything after -- is its argv.
    cut = given.index("--") if "--" in given else len(given)
    args = parser.parse_args(given[:cut])
    reading_argv = [*args.reading, *given[cut + 1 :]]
    if not reading_argv:
        parser.error("the reading command is missing (after --)")
    if args.action == "check" and args.target_dir is None:
        parser.error("check needs --target-dir")
    save_dir = args.save_dir or (Path(os.environ["SAVE_DIR"]) if "SAVE_DIR" in os.environ else None)
    if save_dir is None:
        parser.error("--save-dir or $SAVE_DIR is needed")
    host = host_name()
    side = SIDE_OF[args.action]
    try:
        reading = take_reading(reading_argv)
        store(save_dir, side, host, reading)
        print(f"services running on {host} ({side}):", *describe(reading), sep="\n")
        if args.action == "check":
            before = load(save_dir).get("base", {}).get(host, {})
            if upgraded_here(os.environ):
                problems = not_converged(host, args.target_dir, reading, before)
                done = f"every service on {host} runs the target's code (under {args.target_dir})"
            else:
                problems = not_kept(host, args.target_dir, reading, before)
                done = (
                    f"every service on {host} still runs its base processes "
                    "(the upgrade leaves this host on the base release)"
                )
            if problems:
                print("\n".join(f"FAIL {p}" for p in problems), file=sys.stderr)
                return 1
            print(done)
    except VersionsError as exc:
        print(f"grenade.versions: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
