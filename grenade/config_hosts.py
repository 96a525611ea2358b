"""The hosts of a multinode run, as configuration: `hosts`, `groups`, `upgrade_groups`.

A `hosts` entry names one node: its SSH address (or an ``~/.ssh/config`` alias,
resolved by Fabric), user, port, key, stack_root and groups; ``host: local`` is
the machine grenade runs on. `groups` adds members to groups by name. Each source
is checked entry by entry (`check_hosts`, `check_groups`: errors name the file
and line of the entry), the merged result as a whole (`check_topology`: every
group member is a host, `controller` has one, `upgrade_groups` are groups).
Without `hosts` the run is the one local host, the controller, as before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config_origin import describe_origin
from .errors import ConfigError
from .hosts import CONTROLLER

LOCAL = "local"  # `host: local`: the machine the tasks run on, no SSH
# Host and group names end up in log file names and in GRENADE_HOST_GROUPS
# (space-separated): plain words only.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_KEYS: dict[str, Any] = {
    "host": str,
    "user": (str, type(None)),
    "port": (int, type(None)),
    "key_filename": (str, type(None)),
    "stack_root": (str, type(None)),
    "groups": list,
    "localrc": dict,  # the node's own local.conf lines (ENABLED_SERVICES, HOST_IP...)
}
SSH_ONLY = ("user", "port", "key_filename")  # meaningless for `host: local`

Problem = tuple[tuple[str, ...], str] | None  # (keys under the checked one, why)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _types(expected: Any) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _names(value: Any, what: str) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    for name in value:
        if not NAME.fullmatch(name):
            return f"has {name!r}, which is not a {what} name (letters, digits, _ . -)"
    return None


def _check_entry(name: str, entry: Any) -> Problem:
    if not isinstance(entry, dict):
        return (name,), f"must be a mapping (host, user, port, ...), got {_type_name(entry)}"
    for key, value in entry.items():
        if key not in HOST_KEYS:
            return (name, str(key)), f"is unknown (known keys: {', '.join(HOST_KEYS)})"
        expected = _types(HOST_KEYS[key])
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
            return (name, key), f"must be {names}, got {_type_name(value)}"
    if not isinstance(entry.get("host"), str) or not entry["host"].strip():
        return (name,), "needs host (an address, an ~/.ssh/config alias, or local)"
    if entry["host"].startswith("-"):
        return (name, "host"), f"must not start with '-', got {entry['host']!r}"
    port = entry.get("port")
    if port is not None and not 0 < port < 65536:
        return (name, "port"), f"must be between 1 and 65535, got {port}"
    if entry["host"] == LOCAL:
        for key in SSH_ONLY:
            if entry.get(key) is not None:
                return (name, key), "means nothing for `host: local` (no SSH to this machine)"
    root = entry.get("stack_root")
    if root is not None and not Path(root).is_absolute():
        return (name, "stack_root"), f"must be an absolute path, got {root!r}"
    problem = _names(entry.get("groups", []), "group")
    if problem:
        return (name, "groups"), problem
    for var, value in (entry.get("localrc") or {}).items():
        if not isinstance(var, str) or not SHELL_NAME.fullmatch(var):
            return (name, "localrc"), f"has {var!r}, which is not a shell variable name"
        if isinstance(value, (dict, list)) or value is None:
            return (
                name,
                "localrc",
                var,
            ), f"must be a string, number or boolean, got {_type_name(value)}"
    return None


def check_hosts(value: dict[str, Any]) -> Problem:
    """One source's `hosts`: `{name: {host, user, port, key_filename, stack_root, groups}}`."""
    for name, entry in value.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            return (), f"has {name!r}, which is not a host name (letters, digits, _ . -)"
        problem = _check_entry(name, entry)
        if problem:
            return problem
    return None


def check_groups(value: dict[str, Any]) -> Problem:
    """One source's `groups`: `{group: [host name, ...]}`."""
    for group, members in value.items():
        if not isinstance(group, str) or not NAME.fullmatch(group):
            return (), f"has {group!r}, which is not a group name (letters, digits, _ . -)"
        problem = _names(members, "host")
        if problem:
            return (group,), problem
    return None


def check_upgrade_groups(value: list[Any] | None) -> Problem:
    if value is None:
        return None
    problem = _names(value, "group")
    if problem:
        return (), problem
    twice = sorted({g for g in value if value.count(g) > 1})
    return ((), f"names group {twice[0]!r} twice") if twice else None


def check_known_hosts(value: str) -> Problem:
    return ((), "must not be empty") if not value.strip() else None


HOST_CHECKS: dict[tuple[str, ...], Any] = {
    ("hosts",): check_hosts,
    ("groups",): check_groups,
    ("upgrade_groups",): check_upgrade_groups,
    ("known_hosts",): check_known_hosts,
}


def group_members(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every group's hosts: those `groups` lists, then those whose own `groups` name
    it (in `hosts` order); `controller` first, the others in the order they appear."""
    groups: dict[str, list[str]] = {}
    listed = [(g, m) for g, members in data["groups"].items() for m in members]
    own = [(g, name) for name, e in data["hosts"].items() for g in e.get("groups") or []]
    for group, member in listed + own:
        members = groups.setdefault(group, [])
        if member not in members:
            members.append(member)
    if CONTROLLER in groups:
        groups = {CONTROLLER: groups.pop(CONTROLLER), **groups}
    return groups


def upgrade_groups(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The groups the shutdown and upgrade phases touch; by default every group (a
    full upgrade), `controller` first. Without hosts: the one local controller."""
    if data["upgrade_groups"] is not None:
        return tuple(data["upgrade_groups"])
    return tuple(group_members(data)) if data["hosts"] else (CONTROLLER,)


def _origin(layers: list[tuple[str, dict[str, Any]]], keys: tuple[str, ...]) -> str:
    """`file:line` of config key `grenade.<keys>` in the last source that sets it."""
    for source, layer in reversed(layers):
        node: Any = layer
        for key in keys:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                break
        else:
            return describe_origin(source, ("grenade", *keys))
    return "grenade's default"


def check_topology(data: Mapping[str, Any], layers: list[tuple[str, dict[str, Any]]]) -> None:
    """The merged hosts and groups as a whole; errors name the file and line."""

    def fail(keys: tuple[str, ...], why: str) -> None:
        raise ConfigError(f"{_origin(layers, keys)}: config key 'grenade.{'.'.join(keys)}' {why}")

    hosts, members = data["hosts"], group_members(data)
    for group, names in data["groups"].items():
        for i, name in enumerate(names):
            if name not in hosts:
                known = ", ".join(hosts) or "none: grenade.hosts is not set"
                why = f"names host {name!r}, which grenade.hosts does not define (hosts: {known})"
                fail(("groups", group, str(i)), why)
    if hosts:
        if not members.get(CONTROLLER):
            why = (
                f"has no host in group {CONTROLLER!r} (the node of the control plane): "
                f"give one `groups: [{CONTROLLER}]`"
            )
            fail(("hosts",), why)
        grouped = {m for names in members.values() for m in names}
        for name in hosts:
            if name not in grouped:
                fail(("hosts", name), "is in no group: nothing would run on it (give it `groups:`)")
    known_groups = list(members) if hosts else [CONTROLLER]
    for i, group in enumerate(data["upgrade_groups"] or []):
        if group not in known_groups:
            why = f"names group {group!r}, which no host is in (groups: {', '.join(known_groups)})"
            fail(("upgrade_groups", str(i)), why)


@dataclass(frozen=True)
class HostConfig:
    """One configured node."""

    name: str
    host: str  # an address, an ~/.ssh/config alias, or `local`
    stack_root: Path  # the node's own; the run's stack_root unless set
    groups: tuple[str, ...]  # every group it is in, from both keys
    user: str | None = None  # None: ~/.ssh/config's, else the local user (Fabric's rule)
    port: int | None = None  # None: ~/.ssh/config's, else 22
    key_filename: str | None = None  # added to ~/.ssh/config's IdentityFile
    # the node's own local.conf assignments, over the run's (grenade.nodeconf)
    localrc: tuple[tuple[str, object], ...] = ()  # values as given: localrc_lines quotes them

    @property
    def is_local(self) -> bool:
        return self.host == LOCAL


def hosts_from_data(data: Mapping[str, Any]) -> dict[str, HostConfig]:
    members = group_members(data)
    return {
        name: HostConfig(
            name=name,
            host=entry["host"],
            stack_root=Path(entry.get("stack_root") or data["stack_root"]),
            groups=tuple(g for g, names in members.items() if name in names),
            user=entry.get("user"),
            port=entry.get("port"),
            # paramiko opens the path as given (only ~/.ssh/config's IdentityFile is expanded)
            key_filename=os.path.expanduser(entry["key_filename"])
            if entry.get("key_filename")
            else None,
            localrc=tuple((entry.get("localrc") or {}).items()),
        )
        for name, entry in data["hosts"].items()
    }
