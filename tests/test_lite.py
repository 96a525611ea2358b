"""The lite deployer and tree: build_repo, lock files, stackrc, tools, and one real upgrade.

The slow test deploys REAL keystone and placement from PyPI (uv, cached between runs)
on a private PostgreSQL cluster, runs the in-tree projects' hooks in grenade's order
(create, verify pre-upgrade, shutdown, verify_noapi, upgrade, verify post-upgrade,
destroy), then unstacks and checks nothing is left running.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from conftest import typed_config

from grenade import PROJECTS_DIR, SHELL_DIR
from grenade.deployers import DeployContext, Deployer
from grenade.deployers.lite import (
    BRANCHES,
    TREE_DIR,
    LiteDeployer,
    build_repo,
    check_prerequisites,
    lock_release,
    read_lock,
    tree_processes,
    tree_services,
)
from grenade.errors import DeployError

TOOLS = SHELL_DIR / "tools"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lite"
PROJECTS = PROJECTS_DIR

# The series' service versions each lock must pin (shared/reference/openstack-on-pypi.md).
SERIES = {
    "2025.1": ("27.", "13."),
    "2025.2": ("28.1.0", "14.0.0"),
    "2026.1": ("29.1.0", "15.0.0"),
    "2026.2": ("30.", "16."),
}


def _major(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2])


# --- the branches repository ----------------------------------------------------------


@pytest.fixture(scope="module")
def lite_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repo(tmp_path_factory.mktemp("lite") / "lite-devstack.git")


def _heads(path: Path) -> dict[str, str]:
    repo = git.Repo(path)
    return {branch: repo.git.rev_parse(branch) for branch in BRANCHES}


def test_build_repo_is_deterministic(lite_repo: Path, tmp_path: Path) -> None:
    first = _heads(lite_repo)
    assert set(first) == {"stable/2025.1", "stable/2025.2", "stable/2026.1", "master"}
    again = _heads(build_repo(tmp_path / "elsewhere.git"))
    assert again == first, "the same source must give the same SHAs anywhere"
    started = time.monotonic()
    assert _heads(build_repo(lite_repo)) == first
    assert time.monotonic() - started < 5, "rebuilding an unchanged repository is cheap"


def test_branches_select_their_release(lite_repo: Path) -> None:
    repo = git.Repo(lite_repo)
    for branch, release in BRANCHES.items():
        commit = repo.commit(branch)
        assert commit.tree["RELEASE"].data_stream.read().decode().strip() == release
        releases = {t.name for t in commit.tree["releases"].trees}
        assert releases == {release}, f"{branch} carries only its own release data"
        assert commit.author.name == commit.committer.name == "grenade lite tree"
        assert not commit.parents
        for name in (
            "stackrc",
            "openrc",
            "stack.sh",
            "unstack.sh",
            "functions",
            "lib/keystone",
            "lib/placement",
            "lib/stack",
            "inc/python",
            "tools/oshttp.py",
            "tools/wsgi_server.py",
        ):
            assert commit.tree[name].type == "blob", f"{branch} lacks {name}"
        assert commit.tree["stack.sh"].mode & 0o111, "stack.sh keeps its exec bit"
    assert repo.head.reference.name == "master"


def test_build_repo_changes_with_source(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    shutil.copytree(TREE_DIR, source, symlinks=False)
    before = _heads(build_repo(tmp_path / "a.git", source))
    (source / "stackrc").write_text((source / "stackrc").read_text() + "# changed\n")
    after = _heads(build_repo(tmp_path / "a.git", source))
    assert all(before[b] != after[b] for b in BRANCHES)


# --- lock files -------------------------------------------------------------------------


@pytest.mark.parametrize("release", sorted(SERIES))
def test_lock_files_pin_the_series(release: str) -> None:
    lock = TREE_DIR / "releases" / release / "requirements.lock"
    pins = read_lock(lock)
    keystone, placement = SERIES[release]
    assert pins["keystone"].startswith(keystone)
    assert pins["openstack-placement"].startswith(placement)
    for name in ("python-openstackclient", "keystonemiddleware", "psycopg2-binary"):
        assert name in pins, f"{release} lock lacks {name}"
    if release != "2026.2":
        assert _major(pins["oslo-policy"]) < (6, 0)
    if release == "2025.1":
        assert _major(pins["oslo-db"]) < (18, 0)
    assert "invoke lock --release" in lock.read_text()


@pytest.mark.slow
def test_lock_release_regenerates_from_pypi(tmp_path: Path) -> None:
    out = lock_release("2026.2", tmp_path / "2026.2.lock")
    pins = read_lock(out)
    assert pins["keystone"] == "30.0.0" and pins["openstack-placement"] == "16.0.0"
    assert "invoke lock --release 2026.2" in out.read_text()


def test_read_lock_rejects_unpinned(tmp_path: Path) -> None:
    lock = tmp_path / "bad.lock"
    lock.write_text("keystone>=28\n")
    with pytest.raises(ValueError, match="not a pinned requirement"):
        read_lock(lock)


# --- stackrc and friends, without services ----------------------------------------------


@pytest.fixture
def trees(lite_repo: Path, tmp_path: Path) -> Path:
    """old/ and new/ checkouts of the default pair under a stack root."""
    root = tmp_path / "stack"
    git.Repo.clone_from(str(lite_repo), root / "old" / "devstack", branch="stable/2025.2")
    git.Repo.clone_from(str(lite_repo), root / "new" / "devstack", branch="stable/2026.1")
    return root


def _bash(
    script: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "LITE_"))}
    full.update(env or {})
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=full, capture_output=True, text=True, timeout=60
    )


def _vars(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_stackrc_layout_and_ports(trees: Path) -> None:
    data = trees / "data"
    data.mkdir()
    (data / "lite.env").write_text(
        "KEYSTONE_SERVICE_PORT=15000\nPLACEMENT_SERVICE_PORT=18778\nDATABASE_PORT=15432\n"
    )
    old = trees / "old" / "devstack"
    proc = _bash(
        "set -o errexit; source ./functions; source ./stackrc; source lib/database;"
        " source lib/keystone; source lib/placement;"
        " for v in LITE_RELEASE DEST DATA_DIR LITE_VENV SERVICE_DIR DATABASE_TYPE"
        " DATABASE_HOST DATABASE_PORT DATABASE_USER DATABASE_PASSWORD KEYSTONE_SERVICE_URI"
        " PLACEMENT_SERVICE_URI KEYSTONE_BIN_DIR KEYSTONE_CONF_DIR PLACEMENT_CONF"
        ' ENABLED_SERVICES BASE_SQL_CONN; do echo "$v=${!v}"; done;'
        " echo PREFIX=$(get_python_exec_prefix); echo PATH1=${PATH%%:*};"
        " echo URL=$(database_connection_url keystone);"
        " is_service_enabled keystone placement-api && echo ENABLED=yes",
        cwd=old,
    )
    assert proc.returncode == 0, proc.stderr
    v = _vars(proc.stdout)
    assert v["LITE_RELEASE"] == "2025.2"
    assert v["DEST"] == str(trees / "old")
    assert v["DATA_DIR"] == str(data)
    assert v["LITE_VENV"] == str(trees / "old" / "venv")
    assert v["PREFIX"] == str(trees / "old" / "venv" / "bin")
    assert v["PATH1"] == str(trees / "old" / "bin")
    assert v["KEYSTONE_BIN_DIR"] == str(trees / "old" / "bin")
    assert v["KEYSTONE_CONF_DIR"] == str(data / "etc" / "keystone")
    assert v["PLACEMENT_CONF"] == str(data / "etc" / "placement" / "placement.conf")
    assert v["DATABASE_TYPE"] == "postgresql" and v["DATABASE_PORT"] == "15432"
    assert v["DATABASE_HOST"] and v["DATABASE_USER"] and v["DATABASE_PASSWORD"]
    assert v["KEYSTONE_SERVICE_URI"] == "http://127.0.0.1:15000"
    assert v["PLACEMENT_SERVICE_URI"] == "http://127.0.0.1:18778"
    assert v["URL"].startswith("postgresql+psycopg2://")
    assert "@127.0.0.1:15432/keystone" in v["URL"]
    assert v["ENABLED"] == "yes"
    assert not (trees / "old" / "venv").exists(), "sourcing never installs anything"


def test_stackrc_switching_trees_resets_per_tree_paths(trees: Path) -> None:
    proc = _bash(
        f"source {trees}/old/devstack/stackrc; source {trees}/new/devstack/stackrc;"
        " echo DEST=$DEST; echo REL=$LITE_RELEASE; echo SD=$SERVICE_DIR;"
        " echo PATH2=$(echo $PATH | cut -d: -f1-2); echo OLDIN=$([[ :$PATH: == *:"
        f"{trees}/old/venv/bin:* ]] && echo yes || echo no)"
    )
    assert proc.returncode == 0, proc.stderr
    v = _vars(proc.stdout)
    assert v["DEST"] == str(trees / "new")
    assert v["REL"] == "2026.1"
    assert v["SD"] == str(trees / "new" / "status")
    assert v["PATH2"] == f"{trees}/new/bin:{trees}/new/venv/bin"
    assert v["OLDIN"] == "no"


def test_unstack_of_a_tree_never_stacked(trees: Path) -> None:
    proc = subprocess.run(
        ["bash", "./unstack.sh"],
        cwd=trees / "old" / "devstack",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_openrc_sets_credentials(trees: Path) -> None:
    proc = _bash(f"source {trees}/old/devstack/openrc admin admin; env | grep ^OS_ | sort")
    assert proc.returncode == 0, proc.stderr
    v = _vars(proc.stdout)
    assert v["OS_USERNAME"] == "admin" and v["OS_PROJECT_NAME"] == "admin"
    assert v["OS_IDENTITY_API_VERSION"] == "3" and v["OS_PASSWORD"]


def test_lib_files_source_and_scripts_parse() -> None:
    scripts = [
        p
        for p in TREE_DIR.rglob("*")
        if p.is_file()
        and p.suffix not in (".py", ".md")
        and "releases" not in p.parts
        and p.name != ".gitignore"
    ]
    scripts += [p for p in PROJECTS.rglob("*") if p.is_file()]
    for script in scripts:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"
    proc = _bash(
        "set -o errexit -o nounset; source ./functions; source lib/stack; source lib/apache;"
        " source lib/tls; is_ssl_enabled_service key && exit 3;"
        " start_tls_proxy key 2>/dev/null; restart_apache_server 2>/dev/null; echo ok",
        cwd=TREE_DIR,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# --- the deployer ---------------------------------------------------------------------


def _ctx(root: Path, **config: object) -> DeployContext:
    return DeployContext(
        stack_root=root,
        base_devstack_dir=root / "old" / "devstack",
        target_devstack_dir=root / "new" / "devstack",
        grenade_dir=root / "grenade",
        save_dir=root / "save",
        logs_dir=root / "logs",
        base_branch="stable/2025.2",
        target_branch="stable/2026.1",
        config=typed_config(**{"database": "postgresql", **config}),
        devstack_localrc={"target": [("/p/settings", "enable_service foo")]},
    )


def _prepare(deployer: Deployer, ctx: DeployContext) -> None:
    """The deployer's part of setup: check, then configure (grenade.setup.SETUP)."""
    deployer.check(ctx)
    deployer.configure(ctx)


def test_deployer_commands_and_local_conf(trees: Path) -> None:
    (trees / "save").mkdir()
    os.chmod(trees.parent, 0o755)
    deployer = LiteDeployer()
    ctx = _ctx(trees, database="sqlite", localrc={"ADMIN_PASSWORD": "s3cret"})
    _prepare(deployer, ctx)
    base_conf = (trees / "old" / "devstack" / ".localrc.auto").read_text()
    assert f"DEST={trees / 'old'}" in base_conf
    assert f"DATA_DIR={trees / 'data'}" in base_conf
    assert "DATABASE_TYPE=sqlite" in base_conf and "ADMIN_PASSWORD=s3cret" in base_conf
    target_conf = (trees / "new" / "devstack" / "local.conf").read_text()
    assert "# added by /p/settings\nenable_service foo" in target_conf
    # grenade's tree checks must see a clean checkout after prepare (.gitignore).
    assert not git.Repo(trees / "old" / "devstack").is_dirty(untracked_files=True)
    proc = _bash(
        "source ./functions; source ./stackrc; echo T=$DATABASE_TYPE",
        cwd=trees / "old" / "devstack",
    )
    assert "T=sqlite" in proc.stdout

    stack = deployer.stack(ctx)
    assert stack is not None and stack.argv == ["bash", "./stack.sh"]
    assert stack.cwd == trees / "old" / "devstack"
    assert [c.cwd for c in deployer.unstack(ctx)] == [
        trees / "new" / "devstack",
        trees / "old" / "devstack",
    ]
    assert "GRENADE_CACHE_DIR" in deployer.hook_env(ctx)
    assert deployer.default_repo(type("P", (), {"cache_dir": trees / "cache"})())


def test_local_conf_values_are_data_never_code(lite_repo: Path, tmp_path: Path) -> None:
    # A stack_root with a space and configuration values holding $(...): rendered
    # quoted, and sourcing .localrc.auto (grenade's, or the one stack.sh extracts from
    # local.conf) runs nothing.
    root = tmp_path / "stack root"
    for side, branch in (("old", "stable/2025.2"), ("new", "stable/2026.1")):
        git.Repo.clone_from(str(lite_repo), root / side / "devstack", branch=branch)
    pwned = [tmp_path / "pwned-localrc", tmp_path / "pwned-services"]
    evil = f"$(touch {pwned[0]})"
    services = f"key,placement-api,$(touch {pwned[1]})"
    ctx = _ctx(root, database="sqlite", localrc={"EVIL": evil}, enabled_services=services)
    _prepare(LiteDeployer(), ctx)
    tree = root / "old" / "devstack"
    auto = (tree / ".localrc.auto").read_text()
    assert f"DEST='{root / 'old'}'" in auto
    assert f"DATA_DIR='{root / 'data'}'" in auto
    assert f"EVIL='{evil}'" in auto and f"ENABLED_SERVICES='{services}'" in auto
    show = 'source ./stackrc; printf \'%s\\n\' "DEST=$DEST" "EVIL=$EVIL" "ES=$ENABLED_SERVICES"'
    for script in (
        f"source ./functions; {show}",
        'source ./functions; extract_localrc_section "$PWD" localrc local.conf'
        f" .localrc.auto; {show}",
    ):
        proc = _bash(script, cwd=tree)
        assert proc.returncode == 0, proc.stderr
        assert _vars(proc.stdout) == {"DEST": str(root / "old"), "EVIL": evil, "ES": services}
        assert not any(p.exists() for p in pwned), "a configuration value was executed"
    # stack.sh's own extraction gives what grenade wrote (less the comment line)
    extracted = (tree / ".localrc.auto").read_text().splitlines()[1:]
    assert extracted == auto.splitlines()[1:]


def test_plugin_post_config_goes_after_the_localrc_section(trees: Path, tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "keystone.conf"
    plugin_text = "enable_service foo\n[[post-config|$KEYSTONE_CONF]]\n[token]\nexpiration = 7200"
    ctx = dataclasses.replace(
        _ctx(trees, database="sqlite"),
        devstack_localrc={"target": [("/p/settings", plugin_text), ("/q/settings", "QVAR=1")]},
    )
    _prepare(LiteDeployer(), ctx)
    tree = trees / "new" / "devstack"
    text = (tree / "local.conf").read_text()
    localrc, _, after = text.partition("[[post-config|$KEYSTONE_CONF]]\n")
    assert (
        "[[local|localrc]]" in localrc
        and "# added by /p/settings\nenable_service foo\n" in localrc
        and "# added by /q/settings\nQVAR=1\n" in localrc
    )
    assert after == "[token]\nexpiration = 7200\n"
    auto = (tree / ".localrc.auto").read_text()
    assert "[[" not in auto and "expiration" not in auto and "QVAR=1" in auto
    # what stack.sh does with it: extract the localrc, source it, apply post-config
    proc = _bash(
        'set -o errexit; source ./functions; extract_localrc_section "$PWD" localrc'
        f" local.conf .localrc.auto; source ./stackrc; KEYSTONE_CONF={conf};"
        " merge_config_group local.conf post-config; echo QVAR=$QVAR",
        cwd=tree,
    )
    assert proc.returncode == 0, proc.stderr
    assert "QVAR=1" in proc.stdout
    assert conf.read_text().split() == ["[token]", "expiration", "=", "7200"]


def _listing(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` outside git's own, with its content."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts
    }


def test_services_for_the_settings_are_worked_out_without_writing(trees: Path) -> None:
    # Setup sources the settings with the base cloud's services before configure
    # writes local.conf (their plugin lines go into it): check and enabled_services
    # write nothing, and the services are what the base stackrc computes once
    # configured, less the plugin lines.
    base = trees / "old" / "devstack"
    ctx = dataclasses.replace(
        _ctx(trees, database="sqlite", enabled_services=["key", "placement-api", "widget"]),
        devstack_localrc={"base": [("/p/settings", "ENABLED_SERVICES=from-a-plugin")]},
    )
    deployer = LiteDeployer()
    before = _listing(trees)
    deployer.check(ctx)
    assert deployer.enabled_services(ctx) == "key,placement-api,widget"
    assert _listing(trees) == before, "check or enabled_services wrote to the trees"
    (base / "localrc").write_text("ENABLED_SERVICES=key,widget\n")  # the tree's own wins
    before = _listing(trees)
    assert deployer.enabled_services(ctx) == "key,widget"
    assert _listing(trees) == before, "working out the services wrote to the trees"
    assert not (trees / "save").exists()

    deployer.configure(ctx.without_plugin_lines())
    proc = _bash("source ./stackrc; echo ES=$ENABLED_SERVICES", cwd=base)
    assert _vars(proc.stdout)["ES"] == "key,widget"
    deployer.configure(ctx)
    proc = _bash("source ./stackrc; echo ES=$ENABLED_SERVICES", cwd=base)
    assert _vars(proc.stdout)["ES"] == "from-a-plugin"
    # a tree without a stackrc: the configured services
    empty = dataclasses.replace(ctx, base_devstack_dir=trees / "nowhere")
    assert deployer.enabled_services(empty) == "key,placement-api,widget"


# --- the tree's services -----------------------------------------------------------------

WIDGET_LIB = """\
#!/bin/bash
#
# lib/widget - a service added to the lite tree as the README says.
#
# lite-service: widget widget-server

WIDGET_LITE_PORTS=WIDGET_SERVICE_PORT
WIDGET_LITE_REQUIRES="keystone placement"
WIDGET_SERVICE_URI=http://127.0.0.1:${WIDGET_SERVICE_PORT:-}

function is_widget_enabled {
    [[ ,${ENABLED_SERVICES:-}, == *,w-api,* ]]
}

function stop_widget {
    echo "stop widget"
}
"""


@pytest.fixture
def widget_tree(tmp_path: Path) -> Path:
    """A copy of the lite tree with one more service lib, lib/widget."""
    tree = tmp_path / "stack" / "old" / "devstack"
    shutil.copytree(
        TREE_DIR, tree, ignore=shutil.ignore_patterns("local.conf", ".localrc.auto", "localrc")
    )
    (tree / "lib" / "widget").write_text(WIDGET_LIB)
    return tree


def test_services_are_found_from_the_lib_headers(widget_tree: Path) -> None:
    lite = {
        "glance": "glance",
        "keystone": "keystone",
        "placement": "openstack-placement",
        "swift": "swift",
    }
    assert tree_services(TREE_DIR) == lite
    assert tree_services(widget_tree) == {**lite, "widget": "widget-server"}
    # a header may name the processes a service runs as (their pidfiles)
    assert tree_processes(TREE_DIR) == {
        "g-api": "glance",
        "keystone": "keystone",
        "placement": "openstack-placement",
        "s-proxy": "swift",
        "s-account": "swift",
        "s-container": "swift",
        "s-object": "swift",
    }
    order = (
        "source ./functions; source ./stackrc; source lib/stack;"
        ' lite_find_services "$PWD"; for s in "${LITE_SERVICE_NAMES[@]}"; do'
        " source lib/$s; done; echo NAMES=${LITE_SERVICE_NAMES[*]};"
        " echo DISTS=${LITE_SERVICE_DISTS[*]}; lite_order_services --enabled;"
        " echo ORDER=${LITE_SERVICES[*]}; echo PORTS=$(for s in ${LITE_SERVICES[*]};"
        " do lite_service_var $s LITE_PORTS; done)"
    )
    # bash sees the services Python sees; placement and widget wait for what they need
    v = _vars(
        _bash(order, cwd=widget_tree, env={"ENABLED_SERVICES": "w-api,placement-api,key"}).stdout
    )
    assert v["NAMES"] == "glance keystone placement swift widget"
    assert v["DISTS"] == "glance keystone openstack-placement swift widget-server"
    assert v["ORDER"] == "keystone placement widget"
    assert v["PORTS"] == "KEYSTONE_SERVICE_PORT PLACEMENT_SERVICE_PORT WIDGET_SERVICE_PORT"
    v = _vars(_bash(order, cwd=widget_tree, env={"ENABLED_SERVICES": "key"}).stdout)
    assert v["ORDER"] == "keystone" and v["PORTS"] == "KEYSTONE_SERVICE_PORT"
    proc = _bash(order, cwd=widget_tree, env={"ENABLED_SERVICES": "key,w-api"})
    assert proc.returncode != 0
    assert "widget requires placement, which is not enabled" in proc.stderr
    # a header naming another service than its file is refused by both readers
    (widget_tree / "lib" / "gadget").write_text("# lite-service: widget x\n")
    with pytest.raises(DeployError, match="must be named lib/widget"):
        tree_services(widget_tree)
    proc = _bash(order, cwd=widget_tree)
    assert proc.returncode != 0 and "must be named lib/widget" in proc.stderr


def test_unstack_stops_every_service_in_reverse_order(widget_tree: Path) -> None:
    # xtrace shows each top-level stop call with one '+'
    proc = subprocess.run(
        ["bash", "-x", "./unstack.sh"], cwd=widget_tree, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "stop widget" in proc.stdout
    stops = ("stop_widget", "stop_placement", "stop_keystone", "stop_database")
    called = [
        line.split()[1]
        for line in proc.stderr.splitlines()
        if line.startswith("+ stop_") and line.split()[1] in stops
    ]
    assert called == list(stops)


def _fake_install(venv: Path, dist: str, version: str) -> None:
    """A dist-info as pip writes it (what importlib.metadata reads)."""
    site = venv / "lib" / "python3.11" / "site-packages"
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


def test_versions_come_from_the_trees_service_libs(widget_tree: Path) -> None:
    root = widget_tree.parent.parent
    shutil.copytree(widget_tree, root / "new" / "devstack")
    _fake_install(root / "old" / "venv", "openstack_placement", "14.0.0")
    _fake_install(root / "new" / "venv", "openstack-placement", "15.0.0")
    _fake_install(root / "old" / "venv", "Widget.Server", "1.0")
    _fake_install(root / "new" / "venv", "keystone", "29.1.0")
    assert LiteDeployer().versions(_ctx(root)) == {
        "glance": (None, None),
        "keystone": (None, "29.1.0"),
        "placement": ("14.0.0", "15.0.0"),
        "swift": (None, None),
        "widget": ("1.0", None),
    }


def test_data_reaches_ping_check_and_test_with_retry_as_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    proc = _bash(f"source ./functions; ping_check '$(touch {marker})' 1 True", cwd=TREE_DIR)
    assert proc.returncode != 0 and "Couldn't ping $(touch" in proc.stderr
    proc = _bash(
        f"source ./functions; test_with_retry '[ -e {tmp_path}/never ]' gave-up 1"
        f" '0.2; touch {marker}'",
        cwd=TREE_DIR,
    )
    assert proc.returncode != 0 and "gave-up" in proc.stderr
    assert not marker.exists()
    # the command itself is a command line, as in devstack
    proc = _bash(
        f"source ./functions; test_with_retry 'touch {tmp_path}/ran' never 5 0.1", cwd=TREE_DIR
    )
    assert proc.returncode == 0 and (tmp_path / "ran").exists()


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory every user can enter (pytest's own are 0700)."""
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix="grenade-lite-", dir=base))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_prerequisites_name_the_blocking_directory(open_tmp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the postgres-user check applies when running as root")
    locked = open_tmp / "locked"
    (locked / "root").mkdir(parents=True)
    os.chmod(locked, 0o700)
    with pytest.raises(DeployError, match=f"cannot enter {locked}"):
        check_prerequisites(_ctx(locked / "root"))
    # MariaDB runs as the stack user (root): no other account needs to enter it.
    check_prerequisites(_ctx(locked / "root", database="mysql"))


def test_stack_refuses_an_untraversable_cluster_dir(open_tmp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the postgres user only matters when running as root")
    locked = open_tmp / "locked"
    (locked / "data").mkdir(parents=True)
    os.chmod(locked, 0o700)
    proc = _bash(
        f"source ./functions; DATA_DIR={locked}/data; source ./stackrc;"
        " source lib/database; configure_database",
        cwd=TREE_DIR,
    )
    assert proc.returncode != 0
    assert f"cannot enter {locked}" in proc.stderr


# --- tools -----------------------------------------------------------------------------


def _tool(name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOLS / name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_oshttp_offline_commands() -> None:
    out = _tool("oshttp.py", "get", "a.1.b", stdin='{"a": [0, {"b": "x"}]}')
    assert out.returncode == 0 and out.stdout.strip() == "x"
    out = _tool("oshttp.py", "get", "", "--canonical", stdin='{"z": 1, "a": [2]}')
    assert out.stdout.strip() == '{"a":[2],"z":1}'
    assert _tool("oshttp.py", "get", "0", stdin="[]").returncode == 1
    port = int(_tool("oshttp.py", "free-ports", "1").stdout)
    assert _tool("oshttp.py", "refused", f"http://127.0.0.1:{port}/").returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        assert _tool("oshttp.py", "refused", f"127.0.0.1:{busy}").returncode == 1


def test_dbquery_sqlite(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "x.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE project (id TEXT, name TEXT)")
        conn.execute("INSERT INTO project VALUES ('p1', 'demo')")
    out = _tool("dbquery.py", f"sqlite:///{db}", "SELECT id, name FROM project")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"id": "p1", "name": "demo"}]
    assert _tool("dbquery.py", "oracle://x/y", "SELECT 1").returncode == 2


def test_wsgi_server_clears_argv_and_stops_on_sigterm() -> None:
    port = int(_tool("oshttp.py", "free-ports", "1").stdout)
    env = {**os.environ, "PYTHONPATH": str(FIXTURES)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(TREE_DIR / "tools" / "wsgi_server.py"),
            "--name",
            "hello",
            "--port",
            str(port),
            "--env",
            "HELLO=world",
            "hello_app:application",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait = _tool("oshttp.py", "wait", f"http://127.0.0.1:{port}/", "--timeout", "20")
        assert wait.returncode == 0, wait.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            body = json.loads(resp.read())
        assert body == {"argv": ["hello"], "hello": "world"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "hello: stopped" in out
