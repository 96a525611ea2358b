"""A Zuul job's variables and inventory as a grenade run config (`grenade -f run.yaml`).

The run playbook writes what it knows on the node grenade runs on (the job's
variables, each node's inventory variables, the inventory's groups, the projects
Zuul checked out) as one JSON document, and this module turns it into the
`grenade:` mapping, so the mapping is Python, tested as data, rather than Jinja:

    python3 -m grenade.zuul.jobconfig job.json run.yaml

The inventory becomes `hosts` and `groups`: the node grenade runs on is `host:
local`; every other node that is in a group is a host reached over SSH at its
`nodepool.private_ipv4` (else `ansible_host`), as its `ansible_user`, on its
`ansible_port`; the node named `controller` is in group `controller` (unless the
nodeset has a `controller` group of its own); every other group of the nodeset
becomes a grenade group of the same name. The original grenade's job variables
keep their names (`grenade_from_branch`, `grenade_localrc`, `grenade_plugins`...);
what is new is `grenade_py_*`. doc/zuul-jobs.md has the table.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config import GrenadeConfig
from ..errors import ConfigError
from ..hosts import CONTROLLER

# The groups Ansible and Zuul add to every inventory: not groups of the nodeset.
IMPLICIT_GROUPS = ("all", "ungrouped", "zuul_unreachable")
# zuul-jobs' multi-node-known-hosts writes every node's host keys here.
ZUUL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_STACK_ROOT = "/opt/stack"

JobDoc = Mapping[str, Any]

# The job variables the mapping reads (roles/grenade-py/vars/main.yaml lists the
# same for the playbook to write): the original's names, then grenade-py's own.
JOB_VARIABLES = (
    "grenade_from_branch",
    "grenade_to_branch",
    "grenade_localrc",
    "grenade_plugins",
    "grenade_devstack_localrc",
    "devstack_plugins",
    "devstack_bases",
    "grenade_py_deployer",
    "grenade_py_stack_root",
    "grenade_py_projects_dirs",
    "grenade_py_upgrade_groups",
    "grenade_py_known_hosts",
    "grenade_py_accept_new_host_keys",
    "grenade_py_ssh_user",
    "grenade_py_ssh_key",
    "grenade_py_config",
)
# What it reads of each node's inventory variables.
NODE_VARIABLES = (
    "nodepool",
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "grenade_py_stack_root",
)


class JobConfigError(ConfigError):
    """The job's variables or inventory cannot make a grenade config."""


def _set(value: Any) -> bool:
    """Whether a job variable is set: the playbook passes an unset one as null."""
    return value is not None


def job_variables(doc: JobDoc) -> dict[str, Any]:
    """The job's variables the mapping reads, unset ones left out."""
    given = doc.get("vars") or {}
    return {name: given[name] for name in JOB_VARIABLES if _set(given.get(name))}


def node_address(name: str, hostvars: Mapping[str, Any]) -> str:
    """How the other nodes reach `name`: its private address, as devstack's multinode
    jobs use it, else the address Ansible reaches it at."""
    nodepool = hostvars.get("nodepool") or {}
    for address in (nodepool.get("private_ipv4"), hostvars.get("ansible_host")):
        if isinstance(address, str) and address.strip():
            return address
    raise JobConfigError(
        f"node {name!r} has neither nodepool.private_ipv4 nor ansible_host in the inventory"
    )


def inventory_groups(doc: JobDoc) -> dict[str, list[str]]:
    """grenade's groups from the inventory's: `controller` first, then the nodeset's
    groups in their order, each with its nodes."""
    groups = {
        name: list(members)
        for name, members in (doc.get("groups") or {}).items()
        if name not in IMPLICIT_GROUPS
    }
    if CONTROLLER not in groups:
        if CONTROLLER not in (doc.get("hostvars") or {}):
            raise JobConfigError(
                "the nodeset has no node named 'controller' and no group 'controller': "
                "grenade needs the node of the control plane"
            )
        groups[CONTROLLER] = [CONTROLLER]
    return {CONTROLLER: groups.pop(CONTROLLER), **groups}


def inventory_hosts(doc: JobDoc) -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
    """`hosts` and `groups` from the inventory, and the nodes left out (in no group)."""
    variables = job_variables(doc)
    hostvars: Mapping[str, Mapping[str, Any]] = doc.get("hostvars") or {}
    this_node = doc["node"]
    groups = inventory_groups(doc)
    grouped = {name for members in groups.values() for name in members}
    hosts: dict[str, Any] = {}
    for name, given in hostvars.items():
        if name not in grouped:
            continue
        hv = {key: given[key] for key in NODE_VARIABLES if key in given}
        if name == this_node:
            hosts[name] = {"host": "local"}
            continue
        entry: dict[str, Any] = {"host": node_address(name, hv)}
        user = variables.get("grenade_py_ssh_user") or hv.get("ansible_user")
        if _set(user):
            entry["user"] = str(user)
        if _set(hv.get("ansible_port")):
            entry["port"] = int(hv["ansible_port"])
        key = variables.get("grenade_py_ssh_key") or hv.get("ansible_ssh_private_key_file")
        if _set(key):
            entry["key_filename"] = str(key)
        if _set(hv.get("grenade_py_stack_root")):
            entry["stack_root"] = str(hv["grenade_py_stack_root"])
        hosts[name] = entry
    if this_node not in hosts:
        raise JobConfigError(
            f"grenade runs on {this_node!r}, which is in no group of the nodeset "
            f"(groups: {', '.join(groups)})"
        )
    left_out = [name for name in hostvars if name not in grouped]
    return hosts, {g: m for g, m in groups.items() if m}, left_out


def _canonical(url: str) -> str:
    """`https://opendev.org/openstack/heat(.git)` as Zuul names the project:
    `opendev.org/openstack/heat`."""
    name = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.strip()).rstrip("/")
    return name.removesuffix(".git")


def plugins(doc: JobDoc) -> list[dict[str, str]]:
    """`grenade_plugins` (else `devstack_plugins`, as the original's pluginrc):
    name -> URL, or name -> {repo, branch}. A repository Zuul checked out (a
    required project) is used from its checkout, at the branch Zuul prepared
    with the change under test, rather than cloned from its URL."""
    variables = job_variables(doc)
    wanted = variables.get("grenade_plugins")
    if not _set(wanted):
        wanted = variables.get("devstack_plugins")
    if not _set(wanted):
        return []
    if not isinstance(wanted, Mapping):
        raise JobConfigError("grenade_plugins must map a plugin name to its repository URL")
    projects: Mapping[str, Mapping[str, Any]] = doc.get("zuul_projects") or {}
    home = doc.get("home") or "~"
    result = []
    for name, value in wanted.items():
        spec = dict(value) if isinstance(value, Mapping) else {"repo": value}
        if not isinstance(spec.get("repo"), str):
            raise JobConfigError(f"grenade_plugins.{name} needs a repository URL")
        entry = {"name": str(name), "repo": spec["repo"]}
        checkout = projects.get(_canonical(spec["repo"]))
        if checkout:
            entry["repo"] = posixpath.join(home, checkout["src_dir"])
            entry["branch"] = checkout.get("checkout") or spec.get("branch")
        elif spec.get("branch"):
            entry["branch"] = str(spec["branch"])
        result.append({k: v for k, v in entry.items() if v is not None})
    return result


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` into `base`, mappings merged key by key (as Zuul merges job vars)."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _layout(variables: Mapping[str, Any], grenade: dict[str, Any]) -> None:
    """The original's `devstack_bases` (shared, old, new) as stack_root and tree names."""
    bases = variables.get("devstack_bases")
    if not isinstance(bases, Mapping) or not _set(bases.get("shared")):
        return
    shared = str(bases["shared"])
    grenade["stack_root"] = shared
    for side, key in (("old", "base_name"), ("new", "target_name")):
        path = bases.get(side)
        if _set(path) and posixpath.dirname(str(path).rstrip("/")) == shared.rstrip("/"):
            grenade.setdefault("trees", {})[key] = posixpath.basename(str(path).rstrip("/"))


def grenade_config(doc: JobDoc) -> dict[str, Any]:
    """The `grenade:` mapping for the job described by `doc` (see the module's doc)."""
    variables = job_variables(doc)
    grenade: dict[str, Any] = {"deployer": variables.get("grenade_py_deployer") or "lite"}
    grenade["stack_root"] = DEFAULT_STACK_ROOT
    _layout(variables, grenade)
    if _set(variables.get("grenade_py_stack_root")):
        grenade["stack_root"] = str(variables["grenade_py_stack_root"])
    for var, side in (("grenade_from_branch", "base"), ("grenade_to_branch", "target")):
        if _set(variables.get(var)):
            grenade[side] = {"branch": str(variables[var])}
    if _set(variables.get("grenade_localrc")):
        grenade["grenade_localrc"] = dict(variables["grenade_localrc"])
    devstack_localrc = variables.get("grenade_devstack_localrc")
    if isinstance(devstack_localrc, Mapping) and _set(devstack_localrc.get("shared")):
        grenade["localrc"] = dict(devstack_localrc["shared"])
    if grenade["deployer"] == "external":
        # Zuul's devstack roles prepared both trees and every plugin (the original's
        # PLUGIN_DIR=$TARGET_RELEASE_DIR): use them where they are.
        grenade.setdefault("trees", {})["prepared"] = True
        target_dir = grenade.get("trees", {}).get("target_name", "new")
        grenade["plugin_dir"] = posixpath.join(grenade["stack_root"], target_dir)
    found = plugins(doc)
    if found:
        grenade["plugins"] = found
    if _set(variables.get("grenade_py_projects_dirs")):
        home = doc.get("home") or "~"
        grenade["projects_dirs"] = [
            posixpath.join(home, str(p)) for p in variables["grenade_py_projects_dirs"]
        ]
    hosts, groups, _ = inventory_hosts(doc)
    grenade["hosts"] = hosts
    grenade["groups"] = groups
    if any(entry["host"] != "local" for entry in hosts.values()):
        grenade["known_hosts"] = str(variables.get("grenade_py_known_hosts") or ZUUL_KNOWN_HOSTS)
    elif _set(variables.get("grenade_py_known_hosts")):
        grenade["known_hosts"] = str(variables["grenade_py_known_hosts"])
    if _set(variables.get("grenade_py_accept_new_host_keys")):
        grenade["accept_new_host_keys"] = bool(variables["grenade_py_accept_new_host_keys"])
    if _set(variables.get("grenade_py_upgrade_groups")):
        grenade["upgrade_groups"] = [str(g) for g in variables["grenade_py_upgrade_groups"]]
    if _set(variables.get("grenade_py_config")):
        _merge(grenade, variables["grenade_py_config"])
    return grenade


def describe(grenade: Mapping[str, Any], left_out: list[str]) -> str:
    """What the job's console shows: where each host is and its groups (no secrets:
    localrc values stay in the file)."""
    lines = [f"deployer {grenade['deployer']}, stack_root {grenade['stack_root']}"]
    for name, entry in grenade["hosts"].items():
        where = entry["host"]
        if where != "local":
            where = f"{entry.get('user', '')}@{where}".lstrip("@")
            where += f" port {entry['port']}" if "port" in entry else ""
        groups = [g for g, members in grenade["groups"].items() if name in members]
        lines.append(f"host {name}: {where}, groups {' '.join(groups)}")
    if grenade.get("upgrade_groups"):
        lines.append(f"upgrade_groups: {' '.join(grenade['upgrade_groups'])}")
    for name in left_out:
        lines.append(f"node {name}: in no group of the nodeset, not used by grenade")
    return "\n".join(lines)


def write(doc: JobDoc, out: Path) -> str:
    """Write `{grenade: ...}` to `out` (0600: localrc values may be secrets), check it
    with grenade's own config loader, and return what to show on the console."""
    grenade = grenade_config(doc)
    out.touch(mode=0o600)
    out.write_text(yaml.safe_dump({"grenade": grenade}, sort_keys=False))
    GrenadeConfig.from_file(out)
    return describe(grenade, inventory_hosts(doc)[2])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python3 -m grenade.zuul.jobconfig JOB_JSON RUN_YAML", file=sys.stderr)
        return 2
    try:
        doc = json.loads(Path(args[0]).read_text())
        print(write(doc, Path(args[1])))
    except (OSError, ValueError, ConfigError) as exc:
        print(f"grenade.zuul.jobconfig: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
