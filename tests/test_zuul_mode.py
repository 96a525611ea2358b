"""Zuul's way: external deployer, prepared trees and plugins, localrc/pluginrc in cwd.

What `write-grenade-conf` writes (a grenade localrc with the branches and
PLUGIN_DIR=$TARGET_RELEASE_DIR, a pluginrc with one enable_grenade_plugin line per
devstack plugin) must drive the run without any grenade config beyond the deployer.
"""

from __future__ import annotations

import shutil

import git
import yaml
from conftest import FIXTURES, invoke, trace
from test_phases import _plugin_repo


def test_zuul_prepared_trees_localrc_and_pluginrc(tmp_path):
    stack = tmp_path / "stack"
    # Zuul's setup-devstack-source-dirs: trees and plugins already checked out
    for side in ("old", "new"):
        tree = stack / side / "devstack"
        tree.mkdir(parents=True)
        (tree / "README").write_text(f"{side}\n")
        repo = git.Repo.init(tree, initial_branch="master")
        repo.index.add(["README"])
        repo.index.commit(side)
    _plugin_repo(stack / "new" / "delta", "delta")
    work = tmp_path / "grenade-checkout"
    work.mkdir()
    (work / "localrc").write_text(
        f"BASE_RELEASE=old\nBASE_RELEASE_DIR={stack}/$BASE_RELEASE\n"
        "BASE_DEVSTACK_DIR=$BASE_RELEASE_DIR/devstack\n"
        "BASE_DEVSTACK_BRANCH=stable/2025.2\n"
        f"TARGET_RELEASE=new\nTARGET_RELEASE_DIR={stack}/$TARGET_RELEASE\n"
        "TARGET_DEVSTACK_DIR=$TARGET_RELEASE_DIR/devstack\n"
        "TARGET_DEVSTACK_BRANCH=master\nTARGET_RUN_SMOKE=False\n"
        "SAVE_DIR=$BASE_RELEASE_DIR/save\nVERBOSE=False\n"
        "PLUGIN_DIR=$TARGET_RELEASE_DIR\nexport OS_TEST_TIMEOUT=1200\n"
    )
    (work / "pluginrc").write_text(
        "enable_grenade_plugin delta https://opendev.org/openstack/delta\n"
    )
    shutil.copytree(FIXTURES / "projects", work / "projects")
    config = work / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "grenade": {
                    "stack_root": str(stack),
                    "deployer": "external",
                    "trees": {"prepared": True},
                    "projects_dirs": [str(work / "projects")],
                    "enabled_services": "alpha,beta",
                }
            }
        )
    )
    proc = invoke(config, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = trace(stack)
    # the plugin Zuul prepared is used in place (its URL is not even reachable here)
    assert f"upgrade delta upgrade.sh  GITDIR={stack}/new/delta" in lines
    assert not (stack / "plugins").exists()
    # branches came from the localrc: from-2025.2 applies
    assert "from-2025.2 applied to alpha" in lines
    assert "release 2025.2" in proc.stdout and "release master" in proc.stdout
    sha = git.Repo(stack / "old" / "devstack").head.commit.hexsha
    assert f"sha {sha}" in proc.stdout
