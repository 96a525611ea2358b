"""The run on the nodes (grenade.ship, grenade.fleet): trees, GRENADE_DIR and projects
shipped under each node's own stack_root, steps given the node's paths, the resource
memory shared by every host.

A local controller and two sshd nodes (127.0.0.2, 127.0.0.3, group `subnode`), each
node with a stack_root of its own, on the `external` deployer with devstack trees
that are git checkouts.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from sshd import SshdServer, running_sshd, skip_without_sshd

from grenade import memory_sync, phases
from grenade.config import GrenadeConfig
from grenade.errors import StepFailed, TreeError
from grenade.pathmap import PathMap
from grenade.resources import ResourceStore
from grenade.rundir import Paths
from grenade.session import Session
from grenade.ship import node_layout

# -- path maps and memory merges as data ---------------------------------------------------


def test_a_path_map_rewrites_whole_controller_paths_only():
    pm = PathMap.of([("/ctl/stack", "/srv/n1"), ("/src/projects", "/srv/n1/grenade/projects")])
    assert pm.argv(["bash", "/src/projects/30_x/resources.sh", "create"]) == [
        "bash",
        "/srv/n1/grenade/projects/30_x/resources.sh",
        "create",
    ]
    assert pm.text("/ctl/stack") == "/srv/n1"
    assert pm.text("--config=/ctl/stack/etc:/ctl/stack/bin x") == (
        "--config=/srv/n1/etc:/srv/n1/bin x"
    )
    assert pm.text("STACK_ROOT='/ctl/stack'") == "STACK_ROOT='/srv/n1'"
    # a longer name that starts the same, or a path that merely contains it: untouched
    assert pm.text("/ctl/stacked /x/ctl/stack") == "/ctl/stacked /x/ctl/stack"
    assert PathMap.of([("/opt/stack", "/opt/stack")]).identity


def test_the_keys_a_node_changed_are_merged_into_the_controllers_store(tmp_path):
    store = ResourceStore.in_save_dir(tmp_path)
    store.path.write_text("[a]\nkept = 1\nchanged = old\ngone = x\n")
    base = store.path.read_bytes()
    # meanwhile the controller (another host of the same step) saved a key
    store.path.write_text("[a]\nkept = 1\nchanged = old\ngone = x\nlocal = ctl\n")
    node = b"[a]\nkept = 1\nchanged = new\n\n[b]\nadded = grenade-b64:eA==\n"
    assert memory_sync.merge_store(tmp_path, base, node) == 3
    assert store.sections() == {
        "a": {"kept": "1", "changed": "new", "local": "ctl"},
        "b": {"added": "x"},
    }
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert memory_sync.merge_store(tmp_path, base, base) == 0  # nothing changed: no write


def test_a_node_gets_each_directory_at_its_place(tmp_path):
    ctl = tmp_path / "ctl"
    paths = Paths(
        stack_root=ctl,
        base_release_dir=ctl / "old",
        target_release_dir=ctl / "new",
        grenade_dir=ctl / "grenade",
        save_dir=ctl / "save",
        logs_dir=ctl / "logs",
        plugin_root=ctl / "plugins",
        cache_dir=ctl / "cache",
    )
    (ctl / "old" / "devstack").mkdir(parents=True)
    (ctl / "grenade").mkdir()
    (ctl / "grenade" / "localrc").write_text(f"MINE={ctl}/data/x\nSTACK_ROOT={ctl}\n")
    a, b = tmp_path / "src" / "a" / "10_x", tmp_path / "src" / "b" / "20_y"
    plugin = ctl / "plugins" / "p" / "devstack" / "upgrade"
    trees = {"base": (str(ctl / "old" / "devstack"), "1" * 40), "target": ("/nowhere", None)}
    node = node_layout(
        "n1", "/srv/n1", paths, trees, [str(b), str(plugin)], [str(a), str(b), str(plugin)]
    )
    assert [(i.kind, i.dest) for i in node.items] == [
        ("grenade", "/srv/n1/grenade"),
        ("tree", "/srv/n1/old/devstack"),  # the target: no SHA, not shipped
        ("projects", "/srv/n1/grenade/projects.1"),  # src/a is the first: projects
        ("projects", "/srv/n1/plugins/p/devstack"),
    ]
    assert node.paths.argv(["bash", f"{b}/resources.sh"]) == [
        "bash",
        "/srv/n1/grenade/projects.1/20_y/resources.sh",
    ]
    assert node.localrc.startswith("MINE=/srv/n1/data/x\nSTACK_ROOT=/srv/n1\n")
    assert "\nSAVE_DIR=/srv/n1/save\n" in node.localrc


# -- over SSH ------------------------------------------------------------------------------

SETTINGS = "register_project_for_upgrade memo\nregister_project_groups memo controller subnode\n"
# Says where it runs from; the controller's create saves a value, verify_noapi on every
# host reads it and saves its own, the controller's verify reads every node's.
RESOURCES = """#!/bin/bash
set -o errexit
source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"
source "$(dirname "$0")/../shared.inc"
echo "script=$0 grenade=$GRENADE_DIR save=$SAVE_DIR top=$TOP_DIR pwd=$PWD shared=$SHARED"
echo "layout=$STACK_ROOT $TARGET_DEVSTACK_DIR"
case $1 in
create)
    resource_save memo token "from the controller"
    ;;
verify_noapi)
    seen=$(resource_get memo token)
    [[ $seen == "from the controller" ]] || die $LINENO "memo lost on $GRENADE_HOST: '$seen'"
    resource_save memo "seen_$GRENADE_HOST" "$seen, read on $GRENADE_HOST"
    resource_result memo token pass "read on $GRENADE_HOST"
    ;;
verify)
    for host in ctl n1 n2; do
        echo "$host: $(resource_get memo "seen_$host")"
    done
    ;;
esac
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SshdServer]]:
    skip_without_sshd()
    with (
        running_sshd(tmp_path_factory.mktemp("n1"), address="127.0.0.2") as n1,
        running_sshd(tmp_path_factory.mktemp("n2"), address="127.0.0.3") as n2,
    ):
        yield [n1, n2]


def git_tree(path: Path, text: str) -> str:
    path.mkdir(parents=True)
    (path / "README").write_text(text)
    (path / "stack.sh").write_text("#!/bin/bash\necho stacking\n")
    (path / "stack.sh").chmod(0o755)
    git = ["git", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", text], check=True)
    out = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    (path / "untracked").write_text("not in the commit\n")
    return out.stdout.strip()


def setup_run(tmp_path: Path, nodes: list[SshdServer], **roots: str) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "projects" / "30_memo"
    project.mkdir(parents=True)
    (project / "settings").write_text(SETTINGS)
    (project / "upgrade.sh").write_text("true\n")
    (project / "resources.sh").write_text(RESOURCES)
    (tmp_path / "projects" / "shared.inc").write_text("SHARED=v1\n")
    stack = tmp_path / "stack"
    shas = {
        "base": git_tree(stack / "old" / "devstack", "base"),
        "target": git_tree(stack / "new" / "devstack", "target"),
    }
    known = tmp_path / "known_hosts"
    known.write_text("".join(n.known_hosts.read_text() for n in nodes))

    def entry(i: int, server: SshdServer) -> dict[str, Any]:
        return {
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "key_filename": str(server.key_filename),
            "stack_root": roots.get(f"n{i}", str(tmp_path / f"n{i}root")),
            "groups": ["subnode"],
        }

    path = write_config(
        tmp_path / "run.yaml",
        stack,
        projects_dirs=[str(tmp_path / "projects")],
        enabled_services="",
        hosts={"ctl": {"host": "local", "groups": ["controller"]}}
        | {f"n{i}": entry(i, n) for i, n in enumerate(nodes, 1)},
        known_hosts=str(known),
    )
    return path, shas


def step_log(session: Session, step_id: str, host: str) -> str:
    name = step_id.replace("/", "_").replace("@", "_")
    return next((session.paths.logs_dir / "steps").glob(f"*-{name}@{host}.log")).read_text()


def test_memory_written_on_one_host_is_read_on_another(nodes, tmp_path):
    path, shas = setup_run(tmp_path, nodes)
    console = io.StringIO()
    with Session(GrenadeConfig.from_file(path), console=console) as session:
        phases.setup(session)
        phases.run_kinds(session, ["create", "verify-noapi", "verify-post"], check_order=False)
        logs = {h: step_log(session, "verify-noapi/memo@subnode", h) for h in ("n1", "n2")}
        verify = step_log(session, "verify-post/memo", "ctl")
        store = ResourceStore.in_save_dir(session.paths.save_dir).sections()["memo"]
        results = [json.loads(ln) for ln in (session.paths.save_dir / "resource-results.jsonl")
                   .read_text().splitlines()]  # fmt: skip
    # setup sent every node its copies, under its own stack_root
    for i in (1, 2):
        assert f"setup: node n{i}: sent GRENADE_DIR, base tree, target tree, projects dir " in (
            console.getvalue()
        )
    # the nodes read what the controller saved and wrote their own, which the
    # controller's next step read
    assert store["seen_n1"] == "from the controller, read on n1"
    assert store["seen_n2"] == "from the controller, read on n2"
    assert "n1: from the controller, read on n1" in verify
    assert "n2: from the controller, read on n2" in verify
    assert {(r["host"], r["detail"]) for r in results} >= {
        ("n1", "read on n1"),
        ("n2", "read on n2"),
    }
    # each node's hook ran from its shipped copies, given the node's paths
    for host in ("n1", "n2"):
        root = tmp_path / f"{host}root"
        assert (
            f"script={root}/grenade/projects/30_memo/resources.sh grenade={root}/grenade "
            f"save={root}/save top={root}/old/devstack pwd={root}/grenade shared=v1"
        ) in logs[host]
        assert f"layout={root} {root}/new/devstack" in logs[host]  # the node's localrc
        assert "grenade: sent" not in logs[host]  # setup had sent it all
        base = root / "old" / "devstack"
        assert (base / ".grenade-tree").read_text() == shas["base"] + "\n"
        assert (base / "stack.sh").stat().st_mode & 0o777 == 0o700
        assert not (base / "untracked").exists() and not (base / ".git").exists()
        for private in (root / "grenade", root / "save"):
            assert private.stat().st_mode & 0o777 == 0o700, private
        assert (root / "save" / "grenade_db.ini").stat().st_mode & 0o777 == 0o600


def test_a_node_whose_tree_is_at_another_sha_fails_naming_it(nodes, tmp_path):
    path, shas = setup_run(tmp_path, nodes)
    with Session(GrenadeConfig.from_file(path), console=io.StringIO()) as session:
        phases.setup(session)
        (tmp_path / "n2root" / "new" / "devstack" / ".grenade-tree").write_text("0" * 40 + "\n")
        with pytest.raises(StepFailed) as err:
            phases.run_kinds(session, ["create", "verify-noapi"], check_order=False)
        record = session.state.record("verify-noapi/memo@subnode")
    message = str(err.value)
    assert "FAILED step verify-noapi/memo@subnode: project memo, phase verify-noapi, host n2" in (
        message
    )
    assert f"node n2: the target tree at {tmp_path}/n2root/new/devstack is at {'0' * 40}" in (
        message
    )
    assert f"setup recorded {shas['target']}" in message
    assert record.hosts["n1"].status == "done" and record.hosts["n2"].status == "failed"


def test_nothing_is_sent_again_until_it_changes(nodes, tmp_path):
    path, _ = setup_run(tmp_path, nodes)
    functions = tmp_path / "n1root" / "grenade" / "functions"
    with Session(GrenadeConfig.from_file(path), console=io.StringIO()) as session:
        phases.setup(session)
        before = functions.stat().st_ino, functions.stat().st_mtime_ns
        fleet = session.fleet
        assert fleet is not None
        again = fleet.ship_all(session.setup, session.plan())
        assert again == [
            f"n1: {tmp_path}/n1root is up to date",
            f"n2: {tmp_path}/n2root is up to date",
        ]
        assert (functions.stat().st_ino, functions.stat().st_mtime_ns) == before
        # a project file changed on the controller: only its directory goes again,
        # before the next step on each node (n1's connection dropped meanwhile: its
        # helper starts again on the new one)
        (tmp_path / "projects" / "shared.inc").write_text("SHARED=v2\n")
        fleet.remote_hosts()[0].connection.close()
        phases.run_kinds(session, ["create", "verify-noapi"], check_order=False)
        log = step_log(session, "verify-noapi/memo@subnode", "n1")
    assert f"grenade: sent projects dir {tmp_path}/projects to n1:{tmp_path}/n1root\n" in log
    assert "shared=v2" in log
    assert (functions.stat().st_ino, functions.stat().st_mtime_ns) == before


def test_a_node_on_the_controllers_stack_root_gets_nothing(nodes, tmp_path):
    """The same file system (here, this machine at the same path): the node sees the
    controller's files, memory included; nothing is copied."""
    path, _ = setup_run(tmp_path, nodes, n1=str(tmp_path / "stack"))
    console = io.StringIO()
    with Session(GrenadeConfig.from_file(path), console=console) as session:
        phases.setup(session)
        phases.run_kinds(session, ["create", "verify-noapi"], check_order=False)
        log = step_log(session, "verify-noapi/memo@subnode", "n1")
        store = ResourceStore.in_save_dir(session.paths.save_dir).sections()["memo"]
    stack = tmp_path / "stack"
    assert f"n1: shares the controller's stack_root {stack}: nothing to ship" in console.getvalue()
    assert f"script={tmp_path}/projects/30_memo/resources.sh grenade={stack}/grenade" in log
    assert not (stack / "old" / "devstack" / ".grenade-tree").exists()
    assert store["seen_n1"] == "from the controller, read on n1"
    assert store["seen_n2"] == "from the controller, read on n2"
    assert os.access(stack / "old" / "devstack" / ".git", os.F_OK)  # its checkout, untouched


def test_a_nodes_own_git_checkout_is_checked_not_replaced(nodes, tmp_path):
    """A node whose tree is a git checkout of its own (Zuul prepared it): at the
    recorded SHA it is used as it is; at another, setup fails naming node and tree."""
    path, shas = setup_run(tmp_path, nodes)
    base = tmp_path / "stack" / "old" / "devstack"
    for host in ("n1", "n2"):
        clone = tmp_path / f"{host}root" / "old" / "devstack"
        subprocess.run(["git", "clone", "-q", str(base), str(clone)], check=True)
    other = tmp_path / "n2root" / "old" / "devstack"
    (other / "README").write_text("changed\n")
    subprocess.run(["git", "-C", str(other), "commit", "-qam", "other"], check=True)
    console = io.StringIO()
    with Session(GrenadeConfig.from_file(path), console=console) as session:
        with pytest.raises(TreeError) as err:
            phases.setup(session)
        assert not session.state.is_setup
        assert f"node n2: the base tree at {other} is a git checkout at " in str(err.value)
        assert f"setup recorded {shas['base']}" in str(err.value)
        assert "n1:" not in str(err.value)
        subprocess.run(["git", "-C", str(other), "reset", "-q", "--hard", shas["base"]], check=True)
        phases.setup(session)
    assert f"n2: sent GRENADE_DIR, target tree, projects dir {tmp_path}/projects" in (
        console.getvalue()
    )
    assert (other / ".git").is_dir() and not (other / ".grenade-tree").exists()


def test_a_node_gets_the_controllers_local_conf_with_its_own_lines():
    from grenade.config_hosts import HostConfig
    from grenade.errors import ConfigError
    from grenade.nodeconf import node_local_conf
    from grenade.pathmap import PathMap

    controller_conf = (
        "# Generated by grenade for the base side (lite deployer)\n[[local|localrc]]\n"
        "DEST=/opt/stack/old\nHOST_IP=10.0.0.1\nENABLED_SERVICES=key,s-proxy\n"
    )
    paths = PathMap.of([("/opt/stack", "/srv/node")])
    node = HostConfig(
        "storage1",
        "10.0.0.2",
        Path("/srv/node"),
        ("subnode",),
        localrc=(("ENABLED_SERVICES", "s-object"),),
    )
    text = node_local_conf(controller_conf, paths, node, None)
    assert "DEST=/srv/node/old" in text
    assert "HOST_IP=10.0.0.2" in text and "SERVICE_HOST=10.0.0.1" in text
    assert "ENABLED_SERVICES=s-object" in text and "key,s-proxy" not in text
    # a name, not an address: the controller's HOST_IP would be inherited
    named = HostConfig("storage2", "storage2.example", Path("/srv/node"), ("subnode",))
    with pytest.raises(ConfigError, match=r"hosts.storage2.localrc.HOST_IP"):
        node_local_conf(controller_conf, paths, named, None)
