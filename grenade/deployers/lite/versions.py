"""Which services a lite tree deploys, which version of each a release's venv holds, and
the command that reads which version each one RUNS.

A service is a ``lib/<service>`` whose leading comment block names it
(``# lite-service: NAME DISTRIBUTION``, see the tree's README, "Adding a service");
its version is the installed distribution's, read from the venv's metadata.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from grenade.errors import DeployError

from .. import SIDES, Command, DeployContext
from ..base import reading_tool

# ``# lite-service: NAME DISTRIBUTION [PROCESS,...]`` in a lib's leading comment block:
# lib/NAME is a service stack.sh deploys, from the PyPI distribution DISTRIBUTION, run
# as the processes PROCESS,... (their pidfile names, devstack's service names such as
# s-proxy; default NAME). The tree's lib/stack reads the same line: keep the two
# patterns alike.
SERVICE_HEADER = re.compile(
    r"#[ \t]*lite-service:[ \t]+([a-z0-9_]+)[ \t]+(\S+)(?:[ \t]+([a-z0-9_,-]+))?[ \t]*"
)


def tree_services(tree: Path) -> dict[str, str]:
    """``{service: distribution}`` of a lite tree's service libs, in lib name order."""
    return {name: dist for name, (dist, _) in _tree_headers(tree).items()}


def tree_processes(tree: Path) -> dict[str, str]:
    """``{process: distribution}``: the processes the tree's services run as."""
    return {
        process: dist for dist, processes in _tree_headers(tree).values() for process in processes
    }


def _tree_headers(tree: Path) -> dict[str, tuple[str, list[str]]]:
    services: dict[str, tuple[str, list[str]]] = {}
    lib = tree / "lib"
    for path in sorted(lib.iterdir()) if lib.is_dir() else []:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.strip() and not line.startswith("#"):
                break  # past the leading comment block
            match = SERVICE_HEADER.fullmatch(line)
            if match:
                if match.group(1) != path.name:
                    raise DeployError(
                        f"{path} declares lite-service {match.group(1)}: "
                        f"a service lib must be named lib/{match.group(1)}"
                    )
                processes = (match.group(3) or match.group(1)).split(",")
                services[match.group(1)] = (match.group(2), [p for p in processes if p])
                break
    return services


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def installed_version(venv: Path, dist: str) -> str | None:
    """The version of `dist` installed in `venv`, read from its metadata."""
    for site in venv.glob("lib/python3*/site-packages"):
        for found in importlib.metadata.distributions(path=[str(site)]):
            if _normalize(found.metadata["Name"] or "") == _normalize(dist):
                return found.version
    return None


def service_versions(ctx: DeployContext) -> dict[str, tuple[str | None, str | None]]:
    """Each service's version in the base and the target venv (None: not installed).

    The services and their distributions are the trees' ``lib/<service>`` headers
    (the target's declaration wins when both trees name a service).
    """
    dists = tree_distributions(ctx)
    base, target = (ctx.release_dir(side) / "venv" for side in SIDES)
    return {
        service: (installed_version(base, dist), installed_version(target, dist))
        for service, dist in dists.items()
    }


def tree_distributions(ctx: DeployContext) -> dict[str, str]:
    """``{service: distribution}`` of both trees (the target's declaration wins)."""
    dists: dict[str, str] = {}
    for side in SIDES:
        dists.update(tree_services(ctx.tree(side)))
    return dists


def reading_command(ctx: DeployContext) -> Command | None:
    """The reading of what the services run: the pidfiles of both release dirs (one per
    process a service header names), the processes they name, the code those processes'
    interpreters import (None: the trees declare no service)."""
    processes: dict[str, str] = {}
    for side in SIDES:
        processes.update(tree_processes(ctx.tree(side)))
    if not processes:
        return None
    argv = reading_tool(ctx)
    for side in SIDES:
        argv += ["--release-dir", str(ctx.release_dir(side))]
    for process, dist in processes.items():
        argv += ["--service", f"{process}={dist}"]
    return Command(argv=argv)
