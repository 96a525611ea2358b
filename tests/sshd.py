"""Real sshd servers on 127.0.0.x for the remote-host tests (grenade.localnodes):
this machine plays the remote."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from grenade.localnodes import SSHD, SshdServer, free_port, running_sshd

__all__ = ["SSHD", "SshdServer", "free_port", "running_sshd", "skip_without_sshd", "sshd_server"]


def skip_without_sshd() -> None:
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} is not installed (apt-get install openssh-server)")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (apt-get install openssh-client)")


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """sshd -D on a free local port, logging in as ourselves (root) with a fresh key."""
    skip_without_sshd()
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
