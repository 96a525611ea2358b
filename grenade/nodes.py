"""The run's hosts, built from the configuration, and proven reachable before setup.

`build_inventory` turns `hosts` and `groups` (grenade.config_hosts) into the
`Inventory` steps run on: a `LocalHost` for ``host: local``, a `FabricHost` over
SSH for every other entry, one object per host however many groups hold it.
Without `hosts` it is the one local controller, as before multinode.

`check_reachable` opens every remote host's connection at once and reports every
one that fails (address, port and why: refused, timed out, authentication, an
unknown or changed host key) in one error, before setup changes anything.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Sequence
from pathlib import PurePosixPath

import paramiko
from paramiko.ssh_exception import NoValidConnectionsError

from .config import GrenadeConfig
from .config_hosts import HostConfig
from .errors import HostsUnreachable
from .fabrichost import CONNECT_TIMEOUT, FabricHost, UnknownHostKey
from .hosts import Host, Inventory
from .localhost import LocalHost

REMOTE_LOG_DIR = ("logs", "steps")  # under a node's stack_root: its copy of each step log


def make_host(cfg: GrenadeConfig, node: HostConfig, connect_timeout: int) -> Host:
    """One configured host; a remote one is not contacted until it is used."""
    if node.is_local:
        return LocalHost(node.name)
    return FabricHost.connect(
        node.name,
        node.host,  # an ~/.ssh/config alias resolves in Fabric's config
        log_dir=str(PurePosixPath(node.stack_root, *REMOTE_LOG_DIR)),
        user=node.user,
        port=node.port,
        key_filename=node.key_filename,
        known_hosts=cfg.known_hosts or None,
        accept_new_keys=cfg.accept_new_host_keys,
        connect_timeout=connect_timeout,
    )


def build_inventory(cfg: GrenadeConfig, connect_timeout: int = CONNECT_TIMEOUT) -> Inventory:
    """The hosts and groups of the configuration: one `Host` per configured host."""
    if not cfg.hosts:
        return Inventory.local()
    hosts = {name: make_host(cfg, node, connect_timeout) for name, node in cfg.hosts.items()}
    return Inventory({group: [hosts[n] for n in names] for group, names in cfg.groups.items()})


def remote_hosts(inventory: Inventory) -> list[FabricHost]:
    seen: dict[str, FabricHost] = {}
    for group in inventory.groups.values():
        for host in group.hosts:
            if isinstance(host, FabricHost):
                seen.setdefault(host.name, host)
    return list(seen.values())


def where(host: FabricHost) -> str:
    """`name (user@address port N)`: the resolved values (after ~/.ssh/config)."""
    conn = host.connection
    return f"{host.name} ({conn.user}@{conn.host} port {conn.port})"


def why_unreachable(host: FabricHost, exc: BaseException) -> str:
    """What went wrong, in the words one acts on."""
    conn = host.connection
    timeout = conn.connect_timeout
    if isinstance(exc, NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return "connection refused (is sshd running and listening on that port?)"
        return "cannot connect: " + "; ".join(
            f"{addr[0]}: {e.strerror or e}" for addr, e in exc.errors.items()
        )
    if isinstance(exc, socket.gaierror):
        return f"address not found ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out: no answer within {timeout}s"
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"host key changed: the server presents {exc.key.get_name()} "
            f"{exc.key.fingerprint}, {host.known_hosts} has {exc.expected_key.fingerprint}; "
            "refused (if the node was rebuilt, remove its old line with `ssh-keygen -R`)"
        )
    if isinstance(exc, UnknownHostKey):
        return (
            f"unknown host key: {exc}; add it (`ssh-keyscan -p {conn.port} {conn.host}`) "
            "or set grenade.accept_new_host_keys: true for throwaway nodes"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        keys = conn.connect_kwargs.get("key_filename")
        tried = f" with key {', '.join(keys) if isinstance(keys, list) else keys}" if keys else ""
        return f"authentication failed as {conn.user}{tried} ({exc})"
    if isinstance(exc, paramiko.SSHException) and (
        # no banner, or (paramiko gives up waiting for the key exchange first, then
        # tries to log in) a handshake that never finished
        "banner" in str(exc) or "No existing session" in str(exc)
    ):
        return f"timed out: no SSH handshake within {timeout}s (is an SSH server listening?)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def unreachable(hosts: Sequence[FabricHost]) -> dict[str, str]:
    """Connect to every host at once; `{where: why}` for those that failed."""
    failed: dict[str, str] = {}

    def probe(host: FabricHost) -> None:
        try:
            host.connection.open()  # stays open: the first step reuses it
        except Exception as exc:
            failed[host.name] = why_unreachable(host, exc)

    threads = [threading.Thread(target=probe, args=(h,), name=f"ssh-{h.name}") for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {where(h): failed[h.name] for h in hosts if h.name in failed}


def check_reachable(inventory: Inventory) -> None:
    """Every remote host answers SSH and lets us in; else one error naming them all."""
    hosts = remote_hosts(inventory)
    failed = unreachable(hosts)
    if failed:
        raise HostsUnreachable(
            f"{len(failed)} of {len(hosts)} remote hosts cannot be reached over SSH; "
            "nothing was changed:\n" + "\n".join(f"  {h}: {why}" for h, why in failed.items())
        )
