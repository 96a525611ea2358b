"""Real sshd servers on 127.0.0.x: this machine plays the remote nodes.

For the tests, the benchmarks and the two-node example (examples/two_node.py):
each server gets keys made for it, listens on its own address and a free port, and
lets the current user in with the client key; the client checks the server's host
key against a known_hosts file holding only that key (no auto-adding), so a run
goes through the same verification a real deployment does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fabrichost import FabricHost

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 15.0


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick; racy only in theory)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


@dataclass
class SshdServer:
    host: str
    port: int
    user: str
    key_filename: Path  # the client's private key
    known_hosts: Path  # holds the server's host key, and nothing else
    dir: Path
    log: Path  # sshd's own log (-e): where to look when a login fails

    def make_host(
        self, name: str = "remote", log_dir: Path | str | None = None, **kw: object
    ) -> FabricHost:
        from .fabrichost import FabricHost  # Fabric takes 0.2 s to import

        return FabricHost.connect(
            name,
            self.host,
            user=self.user,
            port=self.port,
            key_filename=str(self.key_filename),
            known_hosts=str(self.known_hosts),
            log_dir=str(log_dir or self.dir / "remote-logs"),
            **kw,  # type: ignore[arg-type]
        )


def _keygen(path: Path) -> None:
    if path.exists():
        return  # a node started again keeps its keys
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "grenade-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _wait_for_banner(address: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on port {port}:\n{log.read_text()}")


# What a node of this machine needs of its environment to reach the package
# registries as this machine does (a CA bundle, a proxy, pip's and uv's settings):
# a real node has its own, a session of an sshd here starts without them.
NETWORK_ENV = re.compile(
    r"(SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|PIP_\w+|UV_\w+"
    r"|(https?|no|all)_proxy|(HTTPS?|NO|ALL)_PROXY)"
)


def network_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    return {k: v for k, v in environ.items() if NETWORK_ENV.fullmatch(k) and '"' not in v}


@contextlib.contextmanager
def running_sshd(
    base: Path,
    address: str = "127.0.0.1",
    home: Path | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[SshdServer]:
    """sshd -D on a free port of `address` (any 127.0.0.x), logging in as ourselves
    with a fresh key; its host key, client key and known_hosts under `base`.

    `home`: the sessions' HOME, as if the node were a machine of its own; the login
    shell then reads that home's dotfiles instead of ours (whose pyenv init costs each
    session a quarter second of CPU, shared by every node of this one machine).
    `env`: set in every session (sshd's SetEnv), e.g. `network_env()`."""
    host_key, client_key = base / "host_ed25519", base / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = base / "authorized_keys"
    authorized.write_text((base / "client_ed25519.pub").read_text())
    port = port or free_port(address)
    # Non-default port: OpenSSH and paramiko both look the key up as "[host]:port".
    known_hosts = base / "known_hosts"
    key_type, key_data = (base / "host_ed25519.pub").read_text().split()[:2]
    known_hosts.write_text(f"[{address}]:{port} {key_type} {key_data}\n")
    config = base / "sshd_config"
    # private: the SetEnv lines may carry a proxy's or an index's credentials
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {address}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                "PidFile none",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "LogLevel VERBOSE",
                # Many parallel sessions per connection: a hook plus its kill commands.
                "MaxSessions 20",
                *([f"SetEnv HOME={home}"] if home else []),
                *(f'SetEnv {k}="{v}"' for k, v in (env or {}).items()),
                "",
            ]
        )
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    log = base / "sshd.log"
    with open(log, "wb") as log_fh:
        # sshd insists on being started by its absolute path (it re-executes itself).
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_banner(address, port, proc, log)
        yield SshdServer(
            host=address,
            port=port,
            user=pwd.getpwuid(os.geteuid()).pw_name,
            key_filename=client_key,
            known_hosts=known_hosts,
            dir=base,
            log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
