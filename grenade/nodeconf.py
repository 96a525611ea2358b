"""What a node's trees are configured with: its own ``local.conf``, and the files the
controller's stack makes that every node needs.

A shipped tree holds only its commit's files (grenade.ship), and the ``local.conf``
grenade writes at setup is the controller's. A node's ``local.conf`` is that one,
every controller path mapped to the node's (its DEST, DATA_DIR...), then the node's
own assignments over it, devstack's multinode way:

- ``HOST_IP``: the node's address when its ``host`` is an IP address;
- ``SERVICE_HOST``: the controller's ``HOST_IP`` (its ``local.conf``, else its
  address), where the node's services find keystone and the other APIs;
- then the host entry's ``localrc`` (``ENABLED_SERVICES`` of a storage node, a
  ``HOST_IP`` the address does not give...), the last word.

A tree whose ``local.conf`` grenade did not write (the external deployer's) gets
nothing: the node brings its own configuration.

Shared files are what the deployer's stack makes on the controller for the whole
cloud (``Deployer.node_files``: the lite tree's ports and swift's rings and
``swift.conf``, whose hash decides where every object lies). They are sent to every
node before its steps, once they exist and whenever they change, so a storage
node's servers start with the controller's rings.
"""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path

from .config_hosts import HostConfig
from .deployers.localconf import (
    GENERATED_MARKER,
    LOCALRC_HEADER,
    merge_local_conf,
    render_localrc_auto,
)
from .errors import ConfigError
from .pathmap import PathMap
from .rundir import localrc_lines


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def assignment(local_conf: str, name: str) -> str | None:
    """The value the last ``NAME=...`` line of the localrc section gives (quotes
    removed), or None; a value needing bash to expand it is not a value here."""
    value = None
    in_localrc = False
    for line in local_conf.splitlines():
        if line.startswith("[["):
            in_localrc = line.strip() == LOCALRC_HEADER
            continue
        if in_localrc and line.startswith(f"{name}="):
            try:
                words = shlex.split(line[len(name) + 1 :])
            except ValueError:
                continue
            value = words[0] if len(words) == 1 and "$" not in line else None
    return value


def controller_address(controller_conf: str, controller: HostConfig | None) -> str | None:
    """Where the nodes reach the controller's services."""
    found = assignment(controller_conf, "HOST_IP")
    if found:
        return found
    if controller is not None and is_address(controller.host):
        return controller.host
    return None


def own_lines(host: HostConfig, service_host: str | None) -> dict[str, object]:
    """The node's assignments over the controller's configuration."""
    own: dict[str, object] = {}
    if is_address(host.host):
        own["HOST_IP"] = host.host
    elif "HOST_IP" not in dict(host.localrc):
        # the controller's own would be inherited: the node's services on its address
        raise ConfigError(
            f"hosts.{host.name}: host {host.host!r} is not an IP address, so its HOST_IP "
            f"(where its services bind) is unknown: set hosts.{host.name}.localrc.HOST_IP"
        )
    if service_host:
        own["SERVICE_HOST"] = service_host
    own.update(dict(host.localrc))
    return own


def node_local_conf(
    controller_conf: str, pathmap: PathMap, host: HostConfig, controller: HostConfig | None
) -> str:
    """The node's ``local.conf`` from the controller's (see the module docstring)."""
    own = own_lines(host, controller_address(controller_conf, controller))
    header = f"# the node {host.name}'s own (hosts.{host.name}, grenade.nodeconf)"
    text = merge_local_conf(
        pathmap.text(controller_conf),
        "\n".join([LOCALRC_HEADER, header, *localrc_lines(own)]) + "\n",
    )
    return f"{GENERATED_MARKER} for the node {host.name}, from the controller's.\n{text}"


def node_tree_files(
    tree: Path, pathmap: PathMap, host: HostConfig, controller: HostConfig | None
) -> dict[str, bytes]:
    """The configuration files of one of the node's trees (empty: the tree's
    ``local.conf`` is not grenade's, the node brings its own)."""
    try:
        controller_conf = (tree / "local.conf").read_text()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    if not controller_conf.startswith(GENERATED_MARKER):
        return {}
    text = node_local_conf(controller_conf, pathmap, host, controller)
    return {"local.conf": text.encode(), ".localrc.auto": render_localrc_auto(text).encode()}


def shared_files(root: Path, paths: list[Path]) -> dict[str, bytes]:
    """The deployer's shared files that exist now, by path relative to `root` (the
    controller's stack_root): the node puts them at the same place under its own."""
    found = {}
    for path in paths:
        try:
            found[str(path.relative_to(root))] = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, ValueError):
            continue
    return found
