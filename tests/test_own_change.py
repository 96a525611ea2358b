"""Testing your own change: a service from a git repository + ref instead of its PyPI
release (config key ``services_from_git``; the lite tree's ``lib/stack``).

Fast: the key's checks, the ``<SERVICE>_REPO``/``<SERVICE>_BRANCH`` lines the lite
deployer writes per side, the lock without the service's pin, the checkout and
``sources.json`` the tree writes. Slow (a real run): keystone's 29.1.0 sdist made a
git repository, one commit added, and the target keystone upgraded to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import git
import pytest
import test_main_job
import yaml
from conftest import invoke
from test_lite import _ctx
from test_main_job import config

from grenade.config import GrenadeConfig
from grenade.deployers.lite import TREE_DIR, LiteDeployer, build_repo
from grenade.deployers.lite.tree import cache_dir
from grenade.errors import ConfigError, DeployError
from grenade.summary import git_source_lines

# the real run's stack_root: entered by postgres, unstacked and removed whatever happened
stack_root = test_main_job.stack_root

KEYSTONE_RELEASE = "29.1.0"  # the target's (stable/2026.1) keystone pin
OWN_CHANGE = "# grenade test: one commit on top of the release\n"


def _write(path: Path, grenade: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({"grenade": grenade}))
    return path


# --- the config key ----------------------------------------------------------------


def test_config_key_is_typed_per_side(tmp_path: Path) -> None:
    run = _write(
        tmp_path / "run.yaml",
        {
            "stack_root": str(tmp_path / "s"),
            "services_from_git": {
                "target": {"keystone": {"repo": "/src/keystone", "ref": "master"}},
                "base": {"placement": {"repo": "https://opendev.org/openstack/placement"}},
            },
        },
    )
    cfg = GrenadeConfig.from_file(run)
    keystone = cfg.services_from_git["target"]["keystone"]
    assert (keystone.repo, keystone.ref, keystone.version) == ("/src/keystone", "master", None)
    assert cfg.services_from_git["base"]["placement"].ref is None
    # it changes what the run tests: part of the resume fingerprint
    assert "grenade.services_from_git.target" in cfg.digests()


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ({"repo": "src/keystone"}, "keystone.repo must be a URL or an absolute path"),
        ({"repo": "/src/keystone", "ref": "--upload-pack=x"}, "keystone.ref must not start"),
        ({"repo": "/src/keystone", "branch": "x"}, "keystone has unknown key 'branch'"),
        ({"ref": "master"}, "keystone.repo must be a non-empty string, got null"),
        ("/src/keystone", "keystone must be a mapping"),
    ],
)
def test_config_key_errors_name_key_file_and_line(tmp_path: Path, source: object, why: str) -> None:
    run = _write(
        tmp_path / "run.yaml",
        {"stack_root": str(tmp_path / "s"), "services_from_git": {"target": {"keystone": source}}},
    )
    with pytest.raises(ConfigError) as err:
        GrenadeConfig.from_file(run)
    # the line of `target:` (safe_dump sorts: services_from_git, base, target)
    assert f"{run}:3: config key 'grenade.services_from_git.target'" in str(err.value)
    assert why in str(err.value)


# --- the deployer's local.conf -----------------------------------------------------


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    repo = build_repo(tmp_path / "lite.git")
    root = tmp_path / "stack"
    git.Repo.clone_from(str(repo), root / "old" / "devstack", branch="stable/2025.2")
    git.Repo.clone_from(str(repo), root / "new" / "devstack", branch="stable/2026.1")
    (root / "save").mkdir()
    return root


def test_deployer_writes_the_repo_for_its_side_only(trees: Path) -> None:
    source = {"repo": "/src/key stone", "ref": "my-change", "version": "29.1.1"}
    LiteDeployer().configure(_ctx(trees, services_from_git={"target": {"keystone": source}}))
    target = (trees / "new" / "devstack" / ".localrc.auto").read_text()
    assert "KEYSTONE_REPO='/src/key stone'" in target
    assert "KEYSTONE_BRANCH=my-change" in target and "KEYSTONE_PBR_VERSION=29.1.1" in target
    assert "KEYSTONE_REPO" not in (trees / "old" / "devstack" / ".localrc.auto").read_text()


def test_deployer_refuses_a_service_the_tree_lacks(trees: Path) -> None:
    ctx = _ctx(trees, services_from_git={"base": {"nova": {"repo": "/src/nova"}}})
    with pytest.raises(DeployError, match=r"services_from_git\.base\.nova': the base tree"):
        LiteDeployer().configure(ctx)


# --- the tree: lock without the pin, checkout, sources.json --------------------------


TREE_LIBS = "source ./functions; source ./stackrc; source lib/stack;"


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "LITE_"))}
    return subprocess.run(
        ["bash", "-c", f"set -o errexit; {TREE_LIBS} {script}"],
        cwd=TREE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lock_without_drops_only_the_named_pins(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "keystone==29.1.0\n    # via -r requirements.in\nkeystoneauth1==5.9.0\n"
        "oslo-policy==4.5.1\nOpenStack_Placement==15.0.0\n"
    )
    proc = _bash(
        'lite_lock_without "$LOCK" keystone oslo.policy openstack-placement',
        {"LOCK": str(lock), "DEST": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "    # via -r requirements.in\nkeystoneauth1==5.9.0\n"


def _tiny_repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path, initial_branch="master")
    (path / "README").write_text("one\n")
    repo.index.add(["README"])
    repo.index.commit("one")
    repo.create_tag("1.0.0")
    (path / "README").write_text("two\n")
    repo.index.add(["README"])
    repo.index.commit("two")
    return repo


def test_git_sources_check_out_and_record_the_commit(tmp_path: Path) -> None:
    src = _tiny_repo(tmp_path / "src repo")
    dest = tmp_path / "dest"
    dest.mkdir()
    env = {"DEST": str(dest), "KEYSTONE_REPO": str(tmp_path / "src repo")}
    show = 'lite_git_sources; echo "LOCK=$LITE_REQUIREMENTS_LOCK" "GIT=${LITE_GIT_SERVICES[*]}"'
    proc = _bash(show, {**env, "KEYSTONE_BRANCH": "1.0.0"})
    assert proc.returncode == 0, proc.stderr
    lock = dest / "requirements.lock"
    assert f"LOCK={lock} GIT=keystone\n" in proc.stdout
    tagged = src.commit("1.0.0").hexsha
    assert f"# keystone from git: {tmp_path / 'src repo'} @ {tagged}" in lock.read_text()
    assert not [ln for ln in lock.read_text().splitlines() if ln.startswith("keystone==")]
    assert "keystoneauth1==" in lock.read_text()  # the rest of the lock stays
    assert (dest / "keystone" / "README").read_text() == "one\n"  # checked out, at the tag
    recorded = json.loads((dest / "sources.json").read_text())["keystone"]
    assert recorded["sha"] == tagged and recorded["ref"] == "1.0.0"
    # the default branch of a checkout already there: it moves to the new commit
    proc = _bash(show, env)
    assert proc.returncode == 0, proc.stderr
    head = src.head.commit.hexsha
    assert git.Repo(dest / "keystone").head.commit.hexsha == head
    assert (dest / "keystone" / "README").read_text() == "two\n"
    assert json.loads((dest / "sources.json").read_text())["keystone"]["sha"] == head
    assert git_source_lines({"base": tmp_path / "none", "target": dest}) == [
        f"  keystone (target) from {tmp_path / 'src repo'} @ {head}"
    ]
    # a fresh clone at the default branch: its files are there, not just its HEAD
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert _bash("lite_git_sources", {**env, "DEST": str(fresh)}).returncode == 0
    assert (fresh / "keystone" / "README").read_text() == "two\n"
    proc = _bash("lite_git_sources", {**env, "KEYSTONE_BRANCH": "no-such-ref"})
    assert proc.returncode != 0 and "KEYSTONE_BRANCH=no-such-ref: no such ref" in proc.stderr


# --- the real run ------------------------------------------------------------------


def _keystone_sdist() -> Path:
    """keystone's sdist of the target release, downloaded once into grenade's cache."""
    where = cache_dir() / "sdists"
    sdist = where / f"keystone-{KEYSTONE_RELEASE}.tar.gz"
    if not sdist.is_file():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *("python3", "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", f"keystone=={KEYSTONE_RELEASE}", "-d", str(where)),
            ],
            check=True,
            timeout=600,
        )
    return sdist


def keystone_repo(path: Path) -> git.Repo:
    """The release's sdist as a git repository tagged with its version, plus one commit.

    PKG-INFO and the egg-info go: they are the sdist's, not the project's, and pbr
    would take the version from them instead of from git (29.1.1.dev1 here).
    """
    with tarfile.open(_keystone_sdist()) as tar:
        tar.extractall(path.parent, filter="data")
    (path.parent / f"keystone-{KEYSTONE_RELEASE}").rename(path)
    (path / "PKG-INFO").unlink()
    shutil.rmtree(path / "keystone.egg-info")
    repo = git.Repo.init(path, initial_branch="master")
    repo.git.add("-A")
    repo.index.commit(f"keystone {KEYSTONE_RELEASE} from its sdist")
    repo.create_tag(KEYSTONE_RELEASE)
    init = path / "keystone" / "__init__.py"
    init.write_text(init.read_text() + OWN_CHANGE)
    repo.index.add([str(init)])
    repo.index.commit("The change under test")
    return repo


@pytest.mark.slow
def test_upgrade_to_keystone_from_git_with_one_commit(stack_root: Path) -> None:
    repo = keystone_repo(stack_root.parent / "keystone")
    sha = repo.head.commit.hexsha
    source = {"repo": str(repo.working_dir), "ref": "master"}
    run_yaml = config(
        stack_root,
        services_from_git={"target": {"keystone": source}},
        enabled_services="key",  # the other services add time, not coverage
    )
    proc = invoke(run_yaml, "run", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert f"keystone (target) from {repo.working_dir} @ {sha}" in out
    assert "keystone      28.1.0 -> 29.1.1.dev1" in out  # pbr: the tag, plus one commit
    assert "FAIL" not in out
    # the target keystone process runs the checkout's code, with the change
    checkout = stack_root / "new" / "keystone"
    assert git.Repo(checkout).head.commit.hexsha == sha
    assert (checkout / "keystone" / "__init__.py").read_text().endswith(OWN_CHANGE)
    running = json.loads((stack_root / "save" / "service-versions.json").read_text())
    keystone = running["target"]["local"]["keystone"]  # converge's reading of the process
    assert (keystone["code"], keystone["version"]) == (str(checkout), "29.1.1.dev1"), running
    lock = (stack_root / "new" / "requirements.lock").read_text()
    assert "\nkeystone==" not in lock and f"@ {sha}" in lock
    assert invoke(run_yaml, "destroy").returncode == 0
    assert invoke(run_yaml, "clean").returncode == 0
