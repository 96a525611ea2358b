"""A real two-node lite cloud on this machine, over real SSH: the partial upgrade of
examples/two-node.yaml, the mixed cloud verified, then the rest upgraded.

The controller is this machine (keystone, placement, glance, swift's proxy on
127.0.0.1); the storage node is an sshd on 127.0.0.2 with a stack_root of its own
(swift's account, container and object servers). The config is the example's, with
the paths, port and keys of the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, lite_dir
from sshd import free_port, running_sshd, skip_without_sshd

from grenade.localnodes import network_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "two-node.yaml"
SABOTAGE = Path(__file__).parent / "fixtures" / "two_node_sabotage"
PROJECTS = REPO / "grenade" / "projects"
STORAGE = {"s-account", "s-container", "s-object"}


@pytest.fixture
def base() -> Iterator[Path]:
    skip_without_sshd()
    with lite_dir("grenade-2n-") as path:
        yield path


def two_node_config(base: Path, port: int, **extra: Any) -> Path:
    """examples/two-node.yaml with the test's stack_roots, port and keys."""
    data = yaml.safe_load(EXAMPLE.read_text())
    cfg = data["grenade"]
    cfg["stack_root"] = str(base / "controller")
    node = cfg["hosts"]["storage1"]
    node.update(
        stack_root=str(base / "storage1"),
        port=port,
        key_filename=str(base / "keys" / "client_ed25519"),
    )
    cfg["known_hosts"] = str(base / "keys" / "known_hosts")
    cfg.update(extra)
    path = base / "two-node.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def check(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def versions(base: Path) -> dict[str, Any]:
    return json.loads((base / "controller" / "save" / "service-versions.json").read_text())


def results(base: Path) -> list[dict[str, Any]]:
    text = (base / "controller" / "save" / "resource-results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def step_status(base: Path) -> dict[str, str]:
    state = json.loads((base / "controller" / "save" / "run-state.json").read_text())
    return {sid: rec["status"] for sid, rec in state["steps"].items()}


def test_partial_upgrade_leaves_the_storage_node_running_then_completes(base: Path):
    (base / "keys").mkdir()
    port = free_port("127.0.0.2")
    with running_sshd(base / "keys", address="127.0.0.2", port=port, env=network_env()):
        config = two_node_config(base, port)

        # 1. both nodes stacked, the controller upgraded, the mixed cloud verified
        out = check(invoke(config, "setup", "base", "upgrade", "verify", timeout=1200))
        first = versions(base)
        at_base, kept = first["base"]["storage1"], first["target"]["storage1"]
        assert set(at_base) == STORAGE, at_base  # no database, no API on the node
        for server in STORAGE:  # same processes, the base release's code
            assert kept[server]["pid"] == at_base[server]["pid"], (server, kept, at_base)
            assert kept[server]["version"] == at_base[server]["version"]
            assert "/old/" in kept[server]["code"], kept[server]
        proxy_base, proxy_now = first["base"]["controller"], first["target"]["controller"]
        assert set(proxy_now) == {"keystone", "placement-api", "g-api", "s-proxy"}
        assert proxy_now["s-proxy"]["version"] != proxy_base["s-proxy"]["version"]
        assert "/new/" in proxy_now["s-proxy"]["code"]
        status = step_status(base)
        for sid in (
            "stack-base/devstack",
            "stack-base/devstack@subnode",
            "converge/grenade@subnode",
        ):
            assert status[sid] == "done", (sid, status)
        # the storage node was never shut down nor upgraded in this leg
        assert not any(s.startswith(("shutdown/swift@", "upgrade/swift@")) for s in status)
        swift_post = {
            r["resource"]: r["result"]
            for r in results(base)
            if r["project"] == "swift" and r["phase"] == "verify-post"
        }
        # objects written before the upgrade read back through the new proxy, and a
        # new object lands on the old servers and reads back
        assert swift_post.get("object") == "pass" and swift_post.get("write") == "pass", swift_post
        noapi = {
            (r["resource"], r["host"]): r["result"]
            for r in results(base)
            if r["project"] == "swift" and r["phase"] == "verify-noapi"
        }
        assert noapi.get(("swift_api_down", "controller")) == "pass", noapi
        assert noapi.get(("data_file", "storage1")) == "pass", noapi
        assert "storage1" in out and "controller" in out

        # 2. the rest: the storage node upgraded, everything verified again
        out = check(invoke(config, "upgrade", "--groups", "subnode", timeout=900))
        done = versions(base)["target"]["storage1"]
        for server in STORAGE:
            assert done[server]["pid"] != at_base[server]["pid"]
            assert done[server]["version"] == proxy_now["s-proxy"]["version"]
            assert "/new/" in done[server]["code"]
        status = step_status(base)
        for sid in (
            "shutdown/swift@subnode+subnode",
            "upgrade/swift@subnode+subnode",
            "verify-noapi/swift@subnode+subnode",
            "converge/grenade+subnode",
            "converge/grenade@subnode+subnode",
            "verify-post/swift+subnode",
            "verify-post/keystone+subnode",
        ):
            assert status.get(sid) == "done", (sid, status)
        # `status`: both legs' steps, and each node's versions from its processes
        status_out = check(invoke(config, "status"))
        assert "upgrade/swift@subnode+subnode" in status_out
        before, after = at_base["s-object"]["version"], done["s-object"]["version"]
        assert f"storage1     s-object      {before} -> {after}" in status_out, status_out
        # report.json: each node's versions, read from its processes
        report = json.loads((base / "controller" / "logs" / "report" / "report.json").read_text())
        rows = {(v["host"], v["service"]): v for v in report["versions"]}
        assert rows[("storage1", "s-object")]["before"]["version"] == at_base["s-object"]["version"]
        assert rows[("storage1", "s-object")]["after"]["version"] == done["s-object"]["version"]
        assert rows[("controller", "s-proxy")]["after"]["code"] == proxy_now["s-proxy"]["code"]
        check(invoke(config, "destroy", timeout=600))
        check(invoke(config, "clean", timeout=600))


def test_a_controller_upgrade_restarting_a_storage_server_fails_naming_it(base: Path):
    (base / "keys").mkdir()
    port = free_port("127.0.0.2")
    projects = base / "sabotage"
    shutil.copytree(SABOTAGE, projects)
    (projects / "05_restart_storage" / "node-tree").write_text(
        str(base / "storage1" / "old" / "devstack")
    )
    with running_sshd(base / "keys", address="127.0.0.2", port=port, env=network_env()):
        config = two_node_config(
            base,
            port,
            projects_dirs=[str(projects), str(PROJECTS)],
            enabled_services="key,s-proxy,s-account,s-container,s-object",
        )
        data = yaml.safe_load(config.read_text())
        data["grenade"]["hosts"]["controller"]["localrc"]["ENABLED_SERVICES"] = "key,s-proxy"
        config.write_text(yaml.safe_dump(data))
        proc = invoke(config, "setup", "base", "upgrade", timeout=1200)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-6000:]
        assert "converge/grenade@subnode" in out, out[-6000:]
        assert "service s-object on host storage1 was restarted" in out, out[-6000:]
        assert step_status(base)["converge/grenade@subnode"] == "failed"
        check(invoke(config, "clean", timeout=600))
