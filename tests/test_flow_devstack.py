"""The whole flow with the `devstack` deployer on a devstack-shaped fixture tree.

A full devstack cannot run on this machine; the fixture's stack.sh records what it
received (argv, cwd, local.conf) so the flow around it is real.
"""

from __future__ import annotations

import git
from conftest import invoke, trace
from test_devstack_deployer import make_devstack_repo


def test_run_with_devstack_deployer_stacks_base_with_plugin_lines(run_yaml, tmp_path):
    src = make_devstack_repo(tmp_path / "devstack-src")
    repo = git.Repo(src)
    # no MySQL server here: the tree's databases are SQLite files (none exist: skipped)
    with open(src / "stackrc", "a") as fh:
        fh.write("DATABASE_TYPE=sqlite\nDATABASE_SQLITE_DIR=$DEST/data/sqlite\n")
    repo.git.commit("-qam", "sqlite")
    repo.git.branch("stable/2025.2")
    repo.git.branch("stable/2026.1")
    record = tmp_path / "stack-record.txt"
    config = run_yaml(
        deployer="devstack",
        base={"repo": str(src), "branch": "stable/2025.2"},
        target={"repo": str(src), "branch": "stable/2026.1"},
        localrc={"ADMIN_PASSWORD": "secret word"},
    )
    proc = invoke(config, "setup", env={"STACK_RECORD": str(record)})
    assert proc.returncode == 0, proc.stderr
    # setup prints trees, SHAs, releases, projects and the per-release scripts
    sha = repo.commit("stable/2025.2").hexsha
    assert f"sha {sha}" in proc.stdout
    assert "release 2025.2" in proc.stdout and "release 2026.1" in proc.stdout
    assert "project alpha" in proc.stdout and "from-2025.2/upgrade-alpha: applies" in proc.stdout

    proc = invoke(config, "run", env={"STACK_RECORD": str(record)})
    assert proc.returncode == 0, proc.stderr
    text = record.read_text()
    stack = config.parent / "stack"
    assert f"cwd={stack}/old/devstack" in text
    assert "ADMIN_PASSWORD='secret word'" in text or 'ADMIN_PASSWORD="secret word"' in text
    assert "enable_service alpha" in text
    assert "# added by" in text and "10_alpha/settings" in text
    assert trace(stack)[0] == "verify-base alpha verify.sh base TOP=old"


def test_dirty_tree_refused_and_resume_fingerprint(run_yaml, tmp_path):
    src = make_devstack_repo(tmp_path / "devstack-src")
    git.Repo(src).git.branch("stable/2026.1")
    config = run_yaml(
        deployer="devstack",
        base={"repo": str(src), "branch": "stable/2025.1"},
        target={"repo": str(src), "branch": "stable/2026.1"},
    )
    record = tmp_path / "rec"
    assert invoke(config, "setup", env={"STACK_RECORD": str(record)}).returncode == 0
    (config.parent / "stack/new/devstack/stackrc").write_text("# edited by hand\n")
    proc = invoke(config, "setup", "--force", env={"STACK_RECORD": str(record)})
    assert proc.returncode == 1
    assert "stackrc" in proc.stderr and "new/devstack" in proc.stderr


def test_failures_in_stack_base_and_save_state_are_named(run_yaml, tmp_path):
    src = make_devstack_repo(tmp_path / "devstack-src")
    repo = git.Repo(src)
    repo.git.branch("stable/2025.2")
    repo.git.branch("stable/2026.1")
    config = run_yaml(
        deployer="devstack",
        base={"repo": str(src), "branch": "stable/2025.2"},
        target={"repo": str(src), "branch": "stable/2026.1"},
    )
    proc = invoke(config, "run")  # no STACK_RECORD: the fixture's stack.sh fails
    assert proc.returncode != 0
    assert "FAILED step stack-base/devstack: project devstack, phase stack-base" in proc.stderr
    assert "STACK_RECORD must name the record file" in proc.stderr
    # resumed with stack.sh fixed, the mysql dumps fail: this tree's databases are
    # MySQL ones and no MySQL answers here
    proc = invoke(config, "run", "--resume", env={"STACK_RECORD": str(tmp_path / "rec")})
    assert proc.returncode != 0
    assert "FAILED step save-state/grenade: project grenade, phase save-state" in proc.stderr
    assert "mysql" in proc.stderr
