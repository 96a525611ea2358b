"""The fault matrix, bad input: config, hints, YAML, refused resumes, plugins, `plan`.

Every fault is caused through real `python3 -m invoke` processes on the fixture
projects (the external deployer: no cloud to stack), and each test checks the exit
code, that the message names what the user must fix (key, file and line; plugin;
tree) and that what a run had made (run-state.json, logs) is still there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import git
import pytest
import yaml
from conftest import FIXTURES, invoke, trace
from faults import fault

from grenade import resume
from grenade.config import GrenadeConfig
from grenade.files import RunLock
from grenade.session import Session


def _line_of(path: Path, text: str) -> int:
    """The 1-based line of `path` where `text` first appears."""
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def _state(config: Path) -> dict:
    return json.loads((config.parent / "stack/save/run-state.json").read_text())


def _devstack_source(path: Path) -> Path:
    """A repository with the base and target branches (a devstack tree to check out)."""
    path.mkdir()
    (path / "README").write_text("tree\n")
    repo = git.Repo.init(path, initial_branch="master")
    repo.index.add(["README"])
    repo.index.commit("one")
    repo.create_head("stable/2025.2")
    repo.create_head("stable/2026.1")
    return path


def _plugin_source(path: Path, name: str, blob: int = 0) -> Path:
    """A plugin repository registering `name` (`blob` bytes of noise make it big)."""
    up = path / "devstack" / "upgrade"
    up.mkdir(parents=True)
    (up / "settings").write_text(f"register_project_for_upgrade {name}\n")
    (up / "upgrade.sh").write_text("true\n")
    if blob:
        (path / "noise.bin").write_bytes(os.urandom(blob))
    repo = git.Repo.init(path, initial_branch="master")
    repo.git.add("-A")
    repo.index.commit("plugin")
    repo.create_head("stable/2026.1")
    return path


# --- 1: projects_dirs -----------------------------------------------------------------


@fault(
    "9.1",
    "a projects_dirs entry that does not exist (in run.yaml or INVOKE_GRENADE_PROJECTS_DIRS)",
    1,
    "refused before setup, naming the key, the file and line (or the variable) and the path",
)
def test_missing_projects_dir_named_with_key_file_and_line(run_yaml, tmp_path):
    missing = tmp_path / "no-such-projects"
    config = run_yaml(projects_dirs=[str(FIXTURES / "projects"), str(missing)])
    proc = invoke(config, "setup")
    assert proc.returncode == 1, proc.stderr
    line = _line_of(config, str(missing))
    assert f"{config}:{line}: config key 'grenade.projects_dirs.1'" in proc.stderr
    assert f"no such directory {missing}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "stack" / "save").exists()  # nothing was set up

    config.write_text(yaml.safe_dump({"grenade": {"stack_root": str(tmp_path / "stack")}}))
    proc = invoke(config, "setup", env={"INVOKE_GRENADE_PROJECTS_DIRS": str(missing)})
    assert proc.returncode == 1
    assert "environment variable INVOKE_GRENADE_PROJECTS_DIRS" in proc.stderr
    assert str(missing) in proc.stderr


# --- 8: hints that work ---------------------------------------------------------------


@fault(
    "9.8",
    "a task run again after a failed step (base, phase.X)",
    1,
    "refused with hints naming the task that was run (`grenade base --resume`); "
    "that command continues at the failed step",
)
def test_hints_name_the_task_run_and_work(run_yaml):
    config = run_yaml()
    proc = invoke(config, "base", env={"FAIL_IN": "create/alpha"})
    assert proc.returncode == 3, proc.stderr
    proc = invoke(config, "base")
    assert proc.returncode == 1
    assert "failed at step create/alpha" in proc.stderr
    assert f"`grenade -f {config} base --resume` continues from it" in proc.stderr
    assert (
        f"`grenade -f {config} base --force`" in proc.stderr
        and f"`grenade -f {config} clean`" in proc.stderr
    )
    proc = invoke(config, "phase.create")
    assert proc.returncode == 1
    assert f"`grenade -f {config} phase.create --resume`" in proc.stderr

    # the hint works: the failed step again, the done ones not
    proc = invoke(config, "phase.create", "--resume")
    assert proc.returncode == 0, proc.stderr
    proc = invoke(config, "base", "--resume")
    assert proc.returncode == 0, proc.stderr
    lines = trace(config.parent / "stack")
    assert [ln.split()[0] for ln in lines].count("verify-base") == 1
    assert lines.count("create alpha resources.sh create TOP=old") == 2  # failed, then passed
    assert all(s["status"] == "done" for s in _state(config)["steps"].values())
    assert (config.parent / "stack/logs/grenade.log").is_file()


@fault(
    "9.8",
    "a later phase run before the earlier ones",
    1,
    "refused naming the steps not done and the task that runs them (`grenade base`)",
)
def test_order_hint_names_the_task_to_run_first(run_yaml):
    config = run_yaml()
    assert invoke(config, "setup").returncode == 0
    proc = invoke(config, "verify")
    assert proc.returncode == 1
    assert "not done: verify-base/" in proc.stderr
    assert f"`grenade -f {config} base` runs them" in proc.stderr
    assert f"`grenade -f {config} run --from verify-post` skips them" in proc.stderr
    assert "invoke " not in proc.stderr


# --- 9: YAML syntax ---------------------------------------------------------------------


@fault(
    "9.9",
    "a YAML syntax error in the -f config file",
    1,
    "one line `file:line:col: message`, no traceback (python3 -m invoke and grenade)",
)
def test_yaml_syntax_error_is_one_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"grenade:\n  stack_root: {tmp_path}/stack\n  deployer: external: x\n")
    proc = invoke(config, "status")
    assert proc.returncode == 1
    assert proc.stderr == f"{config}:3:21: invalid YAML: mapping values are not allowed here\n"
    grenade = subprocess.run(
        [sys.executable, "-m", "grenade", "-f", str(config), "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert grenade.returncode == 1
    assert grenade.stderr == proc.stderr


# --- 10: refused resumes name what changed ---------------------------------------------


@fault(
    "9.10",
    "a resume after a config key, or a file in a prepared tree (uncommitted), changed",
    1,
    "refused naming the key and where it is set, or the tree and its edited files; "
    "resumes once undone, state and logs kept",
)
def test_refused_resume_names_key_and_edited_tree(run_yaml, tmp_path):
    src = _devstack_source(tmp_path / "devstack-src")
    trees = {
        "base": {"repo": str(src), "branch": "stable/2025.2"},
        "target": {"repo": str(src), "branch": "stable/2026.1"},
    }
    config = run_yaml(**trees)
    proc = invoke(config, "run", env={"FAIL_IN": "verify-pre/alpha"})
    assert proc.returncode == 3, proc.stderr
    state = config.parent / "stack/save/run-state.json"
    before = state.read_text()

    run_yaml(**trees, enabled_services="alpha")
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    line = _line_of(config, "enabled_services")
    assert f"config key 'grenade.enabled_services' (now set at {config}:{line})" in proc.stderr
    assert f"`grenade -f {config} run --force` starts a new run" in proc.stderr

    run_yaml(**trees)
    target = config.parent / "stack/new/devstack"
    (target / "README").write_text("edited by hand\n")
    (target / "notes.txt").write_text("new\n")  # untracked: what hooks leave is no edit
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    assert f"target tree {target}: uncommitted changes since setup (README)" in proc.stderr
    assert "base tree" not in proc.stderr
    assert state.read_text() == before  # a refused resume changes nothing

    git.Repo(target).git.checkout("--", "README")
    (target / "notes.txt").unlink()
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert trace(config.parent / "stack")[-1] == "destroyed"
    assert (config.parent / "stack/logs/grenade.log").is_file()


@fault(
    "9.10b",
    "a resume of a run set up by an older grenade (one config hash in its state)",
    "0 / 1",
    "compared as before: resumes when nothing changed; a change is refused, "
    "saying only the hash is known",
)
def test_old_single_hash_fingerprint_still_compared(run_yaml):
    config = run_yaml()
    proc = invoke(config, "run", env={"FAIL_IN": "verify-pre/alpha"})
    assert proc.returncode == 3, proc.stderr
    path = config.parent / "stack/save/run-state.json"
    with Session(GrenadeConfig.from_file(config)) as session:
        old_settings = resume.settings_digest(session, session.setup)
    raw = json.loads(path.read_text())
    fp = raw["fingerprint"]
    fp.pop("local_changes")
    fp.update(config=GrenadeConfig.from_file(config).digest(), settings=old_settings)
    path.write_text(json.dumps(raw))

    run_yaml(enabled_services="alpha")
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    assert "config: " in proc.stderr and "set up by an older grenade" in proc.stderr
    run_yaml()
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 0, proc.stderr


# --- 11: plugin errors -------------------------------------------------------------------


@fault(
    "9.11",
    "a malformed pluginrc line",
    1,
    "setup fails naming the user's pluginrc and line (not GRENADE_DIR's copy)",
)
def test_malformed_pluginrc_line_names_the_users_file(run_yaml, tmp_path):
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text("# plugins\n\nenable_grenade_plugin delta\n")
    proc = invoke(run_yaml(pluginrc_file=str(pluginrc)), "setup")
    assert proc.returncode == 1
    assert f"{pluginrc}:3: expected 'enable_grenade_plugin" in proc.stderr
    assert "grenade/pluginrc" not in proc.stderr
    assert "Traceback" not in proc.stderr


@fault(
    "9.11b",
    "a plugin repository given as a relative path in pluginrc (good, and missing)",
    "0 / 1",
    "resolved against the pluginrc's directory; a missing one names plugin, file and line",
)
def test_relative_plugin_path_resolved_from_the_pluginrc(run_yaml, tmp_path):
    _plugin_source(tmp_path / "plugins-src" / "delta", "delta")
    conf = tmp_path / "conf"
    conf.mkdir()
    pluginrc = conf / "pluginrc"
    pluginrc.write_text("enable_grenade_plugin delta ../plugins-src/delta\n")
    config = run_yaml(pluginrc_file=str(pluginrc))
    proc = invoke(config, "setup")  # run from tmp_path: ../plugins-src would miss
    assert proc.returncode == 0, proc.stderr
    assert (config.parent / "stack/plugins/delta/devstack/upgrade/settings").is_file()
    copy = (config.parent / "stack/grenade/pluginrc").read_text()
    assert f"enable_grenade_plugin delta {tmp_path}/conf/../plugins-src/delta" in copy

    pluginrc.write_text("# one\nenable_grenade_plugin delta ../plugins-src/delta\n")
    pluginrc.write_text(pluginrc.read_text() + "enable_grenade_plugin epsilon ../nowhere\n")
    proc = invoke(config, "setup", "--force")
    assert proc.returncode == 1
    assert (
        f"{pluginrc}:3: plugin epsilon: no such repository ../nowhere "
        f"({conf}/../nowhere)" in proc.stderr
    )


@fault(
    "9.11c",
    "a plugin's git fails: unknown branch, or a full disk while checking it out",
    1,
    "setup fails naming the plugin, the pluginrc line and git's own message; no traceback",
)
def test_plugin_git_failures_are_messages(run_yaml, tmp_path):
    _plugin_source(tmp_path / "zeta", "zeta", blob=512 * 1024)
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(f"enable_grenade_plugin zeta {tmp_path / 'zeta'} stable/nope\n")
    config = run_yaml(pluginrc_file=str(pluginrc))
    proc = invoke(config, "setup")
    assert proc.returncode == 1
    assert f"{pluginrc}:1: plugin zeta: " in proc.stderr
    assert "unknown branch 'stable/nope'" in proc.stderr
    assert "Traceback" not in proc.stderr

    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(small)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        pluginrc.write_text(f"enable_grenade_plugin zeta {tmp_path / 'zeta'}\n")
        config = run_yaml(pluginrc_file=str(pluginrc), plugin_dir=str(small))
        proc = invoke(config, "setup", "--force")
        assert proc.returncode == 1
        assert f"{pluginrc}:1: plugin zeta: {tmp_path}/zeta" in proc.stderr
        assert "git checkout failed" in proc.stderr
        assert "Out of diskspace" in proc.stderr or "No space left" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        subprocess.run(["umount", str(small)], check=True)


# --- 12: plan while a run holds the lock --------------------------------------------


@fault(
    "9.12d",
    "`plan` while another run holds the stack_root",
    "0 / 1",
    "prints the run's plan without the lock; refused, changing nothing, if not set up yet",
)
def test_plan_reads_without_the_lock(run_yaml):
    config = run_yaml()
    stack = config.parent / "stack"
    with RunLock(stack):  # another run (this test's process) holds the stack_root
        proc = invoke(config, "plan")
        assert proc.returncode == 1
        assert f"{stack}: not set up yet" in proc.stderr
        assert f"(pid {os.getpid()})" in proc.stderr
        assert f"`grenade -f {config} plan` again" in proc.stderr
        assert not (stack / "save").exists() and not (stack / "grenade").exists()
    assert invoke(config, "setup").returncode == 0
    expected = invoke(config, "plan")
    assert expected.returncode == 0, expected.stderr
    with RunLock(stack):
        proc = invoke(config, "plan")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected.stdout and "resources.sh verify pre-upgrade" in proc.stdout


def test_yaml_error_text_without_a_mark():
    from grenade.config_origin import yaml_error_text

    try:
        yaml.safe_load("a: [")
    except yaml.YAMLError as exc:
        assert yaml_error_text("f.yaml", exc) == (
            "f.yaml:1:5: invalid YAML: expected the node content, but found '<stream end>' "
            "(while parsing a flow node)"
        )
    assert yaml_error_text("f.yaml", yaml.YAMLError("odd")) == "f.yaml: invalid YAML: odd"
