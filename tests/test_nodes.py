"""Multinode configuration: `hosts`, `groups`, `upgrade_groups`, host keys, reachability.

The remote hosts are real sshd servers on 127.0.0.1 and 127.0.0.2 (tests/sshd.py):
this machine plays every node, so a hook run "remotely" reads the same fixture
files, and the host-key and authentication checks are OpenSSH's and paramiko's own.
"""

from __future__ import annotations

import io
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke, write_config
from sshd import SshdServer, free_port, running_sshd, skip_without_sshd

from grenade import phases
from grenade.config import GrenadeConfig
from grenade.errors import ConfigError, HostsUnreachable
from grenade.fabrichost import FabricHost
from grenade.localhost import LocalHost
from grenade.nodes import build_inventory, check_reachable
from grenade.session import Session

HOOK = """echo "$GRENADE_PHASE on $GRENADE_HOST in [$GRENADE_HOST_GROUPS]" \\
    "ssh=${SSH_CONNECTION:+yes}"
"""


@pytest.fixture(scope="module")
def second_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """Another node, on 127.0.0.2, with its own host key."""
    skip_without_sshd()
    with running_sshd(tmp_path_factory.mktemp("sshd2"), address="127.0.0.2") as server:
        yield server


def node(server: SshdServer, *groups: str, **over: Any) -> dict[str, Any]:
    """A `hosts` entry reaching `server` as it expects."""
    entry = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key_filename": str(server.key_filename),
        "groups": list(groups),
    }
    entry.update(over)
    return entry


def config(tmp_path: Path, **grenade: Any) -> GrenadeConfig:
    return GrenadeConfig.from_file(
        write_config(tmp_path / "run.yaml", tmp_path / "stack", **grenade)
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


# -- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        (
            "hosts:\n    n1:\n      host: 10.0.0.1\n      prot: 22\n",
            5,
            "'grenade.hosts.n1.prot' is unknown (known keys: host, user, port",
        ),
        (
            "hosts:\n    n1:\n      host: 10.0.0.1\n      port: '22'\n",
            5,
            "'grenade.hosts.n1.port' must be int or null, got str",
        ),
        (
            "hosts:\n    n1:\n      host: 10.0.0.1\n      port: 70000\n",
            5,
            "'grenade.hosts.n1.port' must be between 1 and 65535, got 70000",
        ),
        ("hosts:\n    n1:\n      user: stack\n", 3, "'grenade.hosts.n1' needs host"),
        (
            "hosts:\n    n1:\n      host: local\n      user: stack\n",
            5,
            "'grenade.hosts.n1.user' means nothing for `host: local`",
        ),
        (
            "hosts:\n    n1:\n      host: h\n      groups: [a b]\n",
            5,
            "'grenade.hosts.n1.groups' has 'a b', which is not a group name",
        ),
        (
            "hosts:\n    n1:\n      host: h\n      stack_root: opt/stack\n",
            5,
            "'grenade.hosts.n1.stack_root' must be an absolute path",
        ),
        ("hosts:\n    n1: 10.0.0.1\n", 3, "'grenade.hosts.n1' must be a mapping"),
        (
            "hosts:\n    n1: {host: h, groups: [controller]}\n  groups:\n    subnode:\n"
            "      - n1\n      - ghost\n",
            7,
            "'grenade.groups.subnode.1' names host 'ghost', which grenade.hosts does not "
            "define (hosts: n1)",
        ),
        (
            "groups:\n    subnode: [n1]\n",
            3,
            "'grenade.groups.subnode.0' names host 'n1', which grenade.hosts does not define "
            "(hosts: none: grenade.hosts is not set)",
        ),
        (
            "hosts:\n    n1: {host: h, groups: [subnode]}\n",
            2,
            "'grenade.hosts' has no host in group 'controller'",
        ),
        (
            "hosts:\n    n1: {host: h, groups: [controller]}\n    n2: {host: i}\n",
            4,
            "'grenade.hosts.n2' is in no group",
        ),
        (
            "hosts:\n    n1: {host: h, groups: [controller]}\n  upgrade_groups:\n"
            "    - controller\n    - compute\n",
            6,
            "'grenade.upgrade_groups.1' names group 'compute', which no host is in "
            "(groups: controller)",
        ),
        (
            "upgrade_groups: [controller, controller]\n",
            2,
            "'grenade.upgrade_groups' names group 'controller' twice",
        ),
        (
            "upgrade_groups: [subnode]\n",
            2,
            "'grenade.upgrade_groups.0' names group 'subnode', which no host is in",
        ),
        ("accept_new_host_keys: 'yes'\n", 2, "must be bool, got str"),
        ("known_hosts: ' '\n", 2, "'grenade.known_hosts' must not be empty"),
    ],
)
def test_bad_host_config_names_file_and_line(tmp_path: Path, text: str, line: int, message: str):
    path = write(tmp_path / "run.yaml", f"grenade:\n  {text}")
    with pytest.raises(ConfigError) as err:
        GrenadeConfig.from_file(path)
    assert str(err.value).startswith(f"{path}:{line}: config key ") and message in str(err.value)


def test_hosts_and_groups_become_typed_config(tmp_path: Path):
    path = write(
        tmp_path / "run.yaml",
        f"""grenade:
  stack_root: {tmp_path}/stack
  hosts:
    storage1: {{host: 10.0.0.2, groups: [subnode], stack_root: /srv/stack}}
    ctl: {{host: local, groups: [controller]}}
    storage2: {{host: store-2, user: stack, port: 2222, key_filename: ~/k}}
  groups:
    subnode: [storage2, storage1]
    compute: [ctl]
  known_hosts: ~/nodes_known
""",
    )
    cfg = GrenadeConfig.from_file(path)
    # `groups` lists come first, then the hosts' own `groups`; controller leads
    assert list(cfg.groups.items()) == [
        ("controller", ("ctl",)),
        ("subnode", ("storage2", "storage1")),
        ("compute", ("ctl",)),
    ]
    assert cfg.upgrade_groups == ("controller", "subnode", "compute")  # all: a full upgrade
    ctl, storage1, storage2 = cfg.hosts["ctl"], cfg.hosts["storage1"], cfg.hosts["storage2"]
    assert ctl.is_local and ctl.groups == ("controller", "compute")
    assert ctl.stack_root == tmp_path / "stack"  # the run's, unless set
    assert storage1.stack_root == Path("/srv/stack") and storage1.port is None
    assert (storage2.user, storage2.port) == ("stack", 2222)
    assert storage2.key_filename == str(Path.home() / "k") and storage1.key_filename is None
    assert cfg.known_hosts == str(Path.home() / "nodes_known")
    assert not cfg.accept_new_host_keys


def test_without_hosts_the_run_is_this_machine(tmp_path: Path):
    cfg = config(tmp_path, upgrade_groups=["controller"])
    assert cfg.hosts == {} and cfg.upgrade_groups == ("controller",)
    inventory = build_inventory(cfg)
    assert list(inventory.groups) == ["controller"]
    (only,) = inventory.groups["controller"].hosts
    assert isinstance(only, LocalHost) and only.name == "local"
    inventory.close()


def test_inventory_has_one_host_per_entry_in_every_group(tmp_path: Path):
    cfg = config(
        tmp_path,
        hosts={
            "ctl": {"host": "local", "groups": ["controller", "compute"]},
            "n1": {"host": "10.9.9.9", "port": 2200, "user": "stack", "groups": ["compute"]},
            "n2": {"host": "10.9.9.8", "stack_root": "/srv/s", "groups": ["compute"]},
        },
    )
    inventory = build_inventory(cfg)
    try:
        ctl, n1, n2 = inventory.groups["compute"].hosts
        assert inventory.groups["controller"].hosts == (ctl,)  # one object, one connection
        assert isinstance(ctl, LocalHost) and ctl.name == "ctl"
        assert isinstance(n1, FabricHost) and isinstance(n2, FabricHost)
        assert (n1.connection.host, n1.connection.port, n1.user) == ("10.9.9.9", 2200, "stack")
        assert n1.log_dir == f"{tmp_path}/stack/logs/steps"
        assert n2.log_dir == "/srv/s/logs/steps" and n2.connection.port == 22
        assert inventory.groups["compute"].memberships["ctl"] == ("controller", "compute")
    finally:
        inventory.close()


def test_an_ssh_config_alias_is_resolved_by_fabric(sshd_server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host storage\n  HostName {sshd_server.host}\n  Port {sshd_server.port}\n"
        f"  User {sshd_server.user}\n  IdentityFile {sshd_server.key_filename}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    cfg = config(
        tmp_path,
        hosts={"storage": {"host": "storage", "groups": ["controller"]}},
        known_hosts=str(sshd_server.known_hosts),
    )
    inventory = build_inventory(cfg)
    try:
        (host,) = inventory.groups["controller"].hosts
        assert isinstance(host, FabricHost)
        assert (host.connection.host, host.connection.port) == ("127.0.0.1", sshd_server.port)
        check_reachable(inventory)
        assert host.connection.run(
            "echo $SSH_CONNECTION", hide=True, in_stream=False
        ).stdout.strip()
    finally:
        inventory.close()


# -- reachability and host keys --------------------------------------------------------


def test_every_unreachable_host_is_named_at_once(sshd_server, second_sshd, tmp_path):
    wrong_key = keygen(tmp_path / "wrong_ed25519")
    closed = free_port()
    cfg = config(
        tmp_path,
        hosts={
            "good": node(sshd_server, "controller"),
            "closed": node(sshd_server, "subnode", port=closed),
            "badkey": node(sshd_server, "subnode", key_filename=str(wrong_key)),
            # the known_hosts file has 127.0.0.1's key only
            "stranger": node(second_sshd, "subnode"),
        },
        known_hosts=str(sshd_server.known_hosts),
    )
    inventory = build_inventory(cfg)
    try:
        with pytest.raises(HostsUnreachable) as err:
            check_reachable(inventory)
    finally:
        inventory.close()
    first, *rest = str(err.value).splitlines()
    assert first == "3 of 4 remote hosts cannot be reached over SSH; nothing was changed:"
    lines = {line.split()[0]: line for line in rest}
    assert sorted(lines) == ["badkey", "closed", "stranger"]
    user = sshd_server.user
    assert lines["closed"] == (
        f"  closed ({user}@127.0.0.1 port {closed}): connection refused "
        "(is sshd running and listening on that port?)"
    )
    assert lines["badkey"].startswith(
        f"  badkey ({user}@127.0.0.1 port {sshd_server.port}): authentication failed as "
        f"{user} with key {wrong_key}"
    )
    assert lines["stranger"].startswith(
        f"  stranger ({user}@127.0.0.2 port {second_sshd.port}): unknown host key: host key "
        f"of [127.0.0.2]:{second_sshd.port} (ssh-ed25519 SHA256:"
    )
    assert f"not found in known_hosts {sshd_server.known_hosts}" in lines["stranger"]
    assert "grenade.accept_new_host_keys: true" in lines["stranger"]


def test_a_silent_listener_times_out_quickly(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts (in the kernel), never says a word
        port = listener.getsockname()[1]
        mute = {"host": "127.0.0.1", "port": port, "groups": ["controller"]}
        inventory = build_inventory(config(tmp_path, hosts={"mute": mute}), connect_timeout=1)
        start = time.monotonic()
        with pytest.raises(HostsUnreachable) as err:
            check_reachable(inventory)
        assert time.monotonic() - start < 5
        inventory.close()
    assert f"mute (root@127.0.0.1 port {port}): timed out: no SSH handshake within 1s" in str(
        err.value
    )


def test_new_host_keys_are_refused_unless_accepted_then_saved(second_sshd, tmp_path):
    known = tmp_path / "ssh" / "known_hosts"  # not there yet
    hosts = {"n2": node(second_sshd, "controller")}
    refused = build_inventory(config(tmp_path, hosts=hosts, known_hosts=str(known)))
    with pytest.raises(HostsUnreachable, match="n2 .*: unknown host key"):
        check_reachable(refused)
    refused.close()
    assert not known.exists()

    cfg = config(tmp_path, hosts=hosts, known_hosts=str(known), accept_new_host_keys=True)
    accepted = build_inventory(cfg)
    check_reachable(accepted)
    accepted.close()
    key = (second_sshd.dir / "host_ed25519.pub").read_text().split()[:2]
    assert known.read_text() == f"[127.0.0.2]:{second_sshd.port} {key[0]} {key[1]}\n"

    # saved: the default (refusing) check now knows the node
    again = build_inventory(config(tmp_path, hosts=hosts, known_hosts=str(known)))
    check_reachable(again)
    again.close()


def test_a_changed_host_key_is_refused_even_when_accepting_new_ones(sshd_server, tmp_path):
    other = keygen(tmp_path / "other_host_ed25519")
    key_type, key_data = Path(f"{other}.pub").read_text().split()[:2]
    known = write(
        tmp_path / "known_hosts", f"[127.0.0.1]:{sshd_server.port} {key_type} {key_data}\n"
    )
    before = known.read_text()
    cfg = config(
        tmp_path,
        hosts={"n1": node(sshd_server, "controller")},
        known_hosts=str(known),
        accept_new_host_keys=True,
    )
    inventory = build_inventory(cfg)
    with pytest.raises(HostsUnreachable) as err:
        check_reachable(inventory)
    inventory.close()
    assert f"n1 ({sshd_server.user}@127.0.0.1 port {sshd_server.port}): host key changed" in str(
        err.value
    )
    assert f"{known} has SHA256:" in str(err.value)
    assert known.read_text() == before


def test_setup_fails_before_changing_anything(sshd_server, tmp_path):
    closed = free_port()
    path = write_config(
        tmp_path / "run.yaml",
        tmp_path / "stack",
        hosts={
            "ctl": {"host": "local", "groups": ["controller"]},
            "n1": node(sshd_server, "subnode", port=closed),
        },
        known_hosts=str(sshd_server.known_hosts),
    )
    proc = invoke(path, "setup", timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"n1 ({sshd_server.user}@127.0.0.1 port {closed}): connection refused" in proc.stderr, (
        proc.stderr
    )
    stack = tmp_path / "stack"
    assert not (stack / "grenade").exists() and not (stack / "save" / "run-state.json").exists()


# -- hooks and the plan ----------------------------------------------------------------


def groups_project(root: Path) -> Path:
    d = root / "projects" / "10_where"
    d.mkdir(parents=True)
    (d / "settings").write_text("register_project_for_upgrade where\n")
    for hook in ("upgrade.sh", "resources.sh"):
        (d / hook).write_text(HOOK)
    return root / "projects"


def multinode_yaml(sshd_server: SshdServer, tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "run.yaml",
        tmp_path / "stack",
        projects_dirs=[str(groups_project(tmp_path))],
        enabled_services="",
        hosts={
            "ctl": {"host": "local", "groups": ["controller", "compute"]},
            "n1": node(sshd_server, "controller", stack_root=str(tmp_path / "n1")),
        },
        known_hosts=str(sshd_server.known_hosts),
    )


def test_hooks_see_their_host_and_its_groups(sshd_server, tmp_path):
    path = multinode_yaml(sshd_server, tmp_path)
    with Session(GrenadeConfig.from_file(path), console=io.StringIO()) as session:
        phases.setup(session)
        # verify_noapi runs on every host of the project's groups
        phases.run_kinds(session, ["verify-noapi"], check_order=False)
    logs = session.paths.logs_dir / "steps"
    assert next(logs.glob("*-verify-noapi_where@ctl.log")).read_text() == (
        "verify-noapi on ctl in [controller compute] ssh=\n"
    )
    assert next(logs.glob("*-verify-noapi_where@n1.log")).read_text() == (
        "verify-noapi on n1 in [controller] ssh=yes\n"
    )
    # the remote keeps its copy under its own stack_root
    assert next((tmp_path / "n1" / "logs" / "steps").glob("*-verify-noapi_where@n1.log"))


def test_plan_shows_the_hosts_of_each_step(sshd_server, tmp_path):
    proc = invoke(multinode_yaml(sshd_server, tmp_path), "plan", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln[:4].strip().rstrip(".").isdigit()]
    where = {(row[1], row[2]): row[3:5] for row in rows}
    # resources once, on the first host; verify_noapi and upgrade on every host
    assert where[("create", "where")] == ["controller", "ctl"], proc.stdout
    assert where[("verify-noapi", "where")] == ["controller", "ctl,n1"], proc.stdout
    assert where[("upgrade", "where")] == ["controller", "ctl,n1"], proc.stdout
