"""The phase flow end to end on the fixture projects, through real bash hooks."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest
from conftest import FULL_FLOW_TRACE, REPO, invoke, trace
from conftest import alive as _alive
from conftest import wait_for as _wait_for
from faults import fault

from grenade import phases
from grenade.config import GrenadeConfig
from grenade.errors import StateError, StepFailed
from grenade.phases import kinds_between
from grenade.resources import ResourceStore
from grenade.session import Session


def make_run(config: Path) -> Session:
    return Session(GrenadeConfig.from_file(config), console=io.StringIO())


def run_all(config: Path, new_run: bool = False, **kwargs) -> Session:
    with make_run(config) as session:
        phases.setup(session, force=new_run)
        phases.run_kinds(session, kinds_between(None, None), **kwargs)
    return session


def test_full_flow_order_forward_and_reverse(run_yaml):
    config = run_yaml()
    run = run_all(config)
    lines = trace(run.paths.stack_root)
    assert lines == FULL_FLOW_TRACE
    # gamma's settings did not register it: it never appears, its upgrade.sh never ran
    assert not any("gamma" in ln for ln in lines)
    store = ResourceStore(run.paths.save_dir / "grenade_db.ini")
    assert store.get("beta", "seen") == "from alpha settings"
    state = json.loads((run.paths.save_dir / "run-state.json").read_text())
    assert all(s["status"] == "done" for s in state["steps"].values())


def test_reverse_order_with_three_projects(run_yaml, tmp_path):
    # shutdown and destroy reverse the project order, including an external plugin
    plugin = _plugin_repo(tmp_path / "delta-src", "delta")
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(f"enable_grenade_plugin delta {plugin}\n")
    config = run_yaml(pluginrc_file=str(pluginrc))
    run = run_all(config)
    lines = trace(run.paths.stack_root)
    shutdown = [ln.split()[1] for ln in lines if ln.startswith("shutdown ")]
    destroy = [ln.split()[1] for ln in lines if ln.startswith("destroy ")]
    upgrade = [ln.split()[1] for ln in lines if ln.startswith("upgrade ")]
    assert upgrade == ["alpha", "beta", "delta"]
    assert shutdown == ["delta", "alpha"]  # beta has no shutdown.sh
    assert destroy == ["delta", "beta", "alpha"]


def _plugin_repo(path: Path, name: str) -> Path:
    up = path / "devstack" / "upgrade"
    up.mkdir(parents=True)
    (up / "settings").write_text(f"register_project_for_upgrade {name}\n")
    body = (
        'source "$GRENADE_DIR/grenaderc"\nsource "$GRENADE_DIR/functions"\n'
        'source "$GRENADE_DIR/../trace.inc" 2>/dev/null || true\n'
        f'echo "$GRENADE_PHASE {name} $(basename $0) $* GITDIR=${{GITDIR[{name}]}}" '
        '>> "$SAVE_DIR/trace.log"\n'
    )
    for hook in ("upgrade.sh", "shutdown.sh", "resources.sh"):
        (up / hook).write_text(body)
    repo = git.Repo.init(path, initial_branch="master")
    repo.index.add(["devstack"])
    repo.index.commit("plugin")
    repo.create_head("stable/2026.1")
    return path


def test_external_plugin_from_pluginrc(run_yaml, tmp_path):
    plugin = _plugin_repo(tmp_path / "delta-src", "delta")
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(f"# a comment\nenable_grenade_plugin delta {plugin}\n")
    config = run_yaml(pluginrc_file=str(pluginrc))
    run = run_all(config)
    stack = run.paths.stack_root
    lines = trace(stack)
    # cloned where the original puts it, at the target branch, GITDIR visible to hooks
    assert (stack / "plugins" / "delta" / "devstack" / "upgrade" / "settings").is_file()
    assert f"upgrade delta upgrade.sh  GITDIR={stack}/plugins/delta" in lines
    assert run.setup.plugins[0].name == "delta"
    assert run.setup.plugins[0].branch == "stable/2026.1"


def test_per_release_scripts_within_and_unmaintained(run_yaml):
    # forward upgrade: base branch == target branch -> within-<release>
    config = run_yaml(base={"branch": "stable/2026.1"}, target={"branch": "stable/2026.1"})
    lines = trace(run_all(config).paths.stack_root)
    assert "within-2026.1 applied to alpha" in lines


def test_per_release_unmaintained_maps_to_release(run_yaml, tmp_path):
    config = run_yaml(base={"branch": "unmaintained/2025.2"})
    run = run_all(config)
    assert "from-2025.2 applied to alpha" in trace(run.paths.stack_root)
    plan_notes = [s.note for s in run.plan() if s.kind == "upgrade"]
    assert plan_notes[0] == "from-2025.2/upgrade-alpha: applies"


def test_plan_prints_every_step_and_runs_no_hook(run_yaml):
    config = run_yaml()
    proc = invoke(config, "plan")
    assert proc.returncode == 0, proc.stderr
    stack = config.parent / "stack"
    assert trace(stack) == []
    steps = [ln for ln in proc.stdout.splitlines() if ln[:4].strip().rstrip(".").isdigit()]
    kinds = [ln.split()[1] for ln in steps]
    assert kinds == [
        "verify-base",
        "early-create",
        "early-create",
        "create",
        "create",
        "verify-pre",
        "verify-pre",
        "save-state",
        "shutdown",
        "snapshot",  # the project's snapshot.sh (no rollback's: the external deployer)
        "verify-noapi",
        "verify-noapi",
        "prep-target",
        "upgrade",
        "upgrade",
        "verify-post",
        "verify-post",
        "verify-target",
        "verify-target",
        "destroy",
        "destroy",
    ]
    assert "from-2025.2/upgrade-alpha: applies" in proc.stdout
    assert "from-2025.2/upgrade-beta: none" in proc.stdout


def test_five_tasks_in_five_processes_equal_run(run_yaml, tmp_path):
    config = run_yaml()
    for name in ("setup", "base", "upgrade", "verify", "destroy"):
        proc = invoke(config, name)
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
    separate = trace(config.parent / "stack")

    other = tmp_path / "other"
    other.mkdir()
    config2 = other / "run.yaml"
    config2.write_text(config.read_text().replace(str(tmp_path / "stack"), str(other / "stack")))
    proc = invoke(config2, "run")
    assert proc.returncode == 0, proc.stderr
    assert separate == trace(other / "stack")
    assert "summary:" in proc.stdout

    # a completed task run again skips its done steps and says so
    proc = invoke(config, "base")
    assert proc.returncode == 0
    assert "skipping 7 step(s) already done" in proc.stdout
    assert trace(config.parent / "stack") == separate


def test_chained_tasks_in_one_process(run_yaml):
    config = run_yaml()
    proc = invoke(config, "setup", "base", "upgrade", "verify", "destroy")
    assert proc.returncode == 0, proc.stderr
    assert len(trace(config.parent / "stack")) == 20


def test_task_out_of_order_is_refused(run_yaml):
    config = run_yaml()
    proc = invoke(config, "upgrade")
    assert proc.returncode == 1
    assert "phase save-state needs earlier steps first" in proc.stderr
    assert "create/alpha" in proc.stderr


FAILING = [
    ("verify-base", "verify.sh"),
    ("early-create", "resources.sh"),
    ("create", "resources.sh"),
    ("verify-pre", "resources.sh"),
    ("shutdown", "shutdown.sh"),
    ("verify-noapi", "resources.sh"),
    ("upgrade", "upgrade.sh"),
    ("verify-post", "resources.sh"),
    ("verify-target", "verify.sh"),
    ("destroy", "resources.sh"),
]


@fault(
    "base",
    "a hook fails, in each of the 11 phases",
    "the hook's code",
    "stops at the step; the message names step, project, phase, host, script, "
    "log and its tail; state and resource memory kept",
)
@pytest.mark.parametrize("kind,script", FAILING)
def test_failure_in_each_phase_names_everything(run_yaml, monkeypatch, kind, script):
    config = run_yaml()
    monkeypatch.setenv("FAIL_IN", f"{kind}/alpha")
    with pytest.raises(StepFailed) as err:
        run_all(config)
    msg = str(err.value)
    assert f"FAILED step {kind}/alpha: project alpha, phase {kind}, host local, exit code" in msg
    assert f"projects/10_alpha/{script}" in msg
    assert "log:    " in msg and "/logs/steps/" in msg
    assert "last " in msg
    assert err.value.exit_code != 0
    state = json.loads((config.parent / "stack/save/run-state.json").read_text())
    assert state["failed_step"] == f"{kind}/alpha"
    assert state["steps"][f"{kind}/alpha"]["status"] == "failed"
    # the resource memory and logs survive the failure
    assert (config.parent / "stack/logs/grenade.log").read_text()
    assert (config.parent / "stack/save/grenade_db.ini").exists()


def test_failure_message_shows_log_tail_and_exit_code(run_yaml, monkeypatch):
    config = run_yaml()
    monkeypatch.setenv("FAIL_IN", "create/alpha")
    proc = invoke(config, "run", env={"FAIL_IN": "create/alpha"})
    assert proc.returncode == 3
    assert "alpha: resource widget is broken" in proc.stderr
    summary = (config.parent / "stack/logs/grenade.sh.log.summary").read_text()
    assert "FAILED" in summary and "create/alpha" in summary
    assert (config.parent / "stack/logs/grenade.sh.log").resolve().name == "grenade.log"


@fault(
    "base",
    "a hook hangs (with a background child)",
    124,
    "its process group is killed at the timeout (TERM, then KILL after the grace); "
    "the message says timed out",
)
def test_hung_hook_and_children_killed_at_timeout(run_yaml, monkeypatch):
    config = run_yaml(timeout=2)
    monkeypatch.setenv("HANG_IN", "create/alpha")
    start = time.monotonic()
    with pytest.raises(StepFailed) as err:
        run_all(config)
    assert time.monotonic() - start < 20
    assert "timed out after 2s (process group killed)" in str(err.value)
    assert err.value.exit_code == 124
    child = int((config.parent / "stack/save/hung-child.pid").read_text())
    time.sleep(0.2)
    assert not _alive(child)


def test_resume_restarts_at_failed_step(run_yaml, monkeypatch):
    config = run_yaml()
    proc = invoke(config, "run", env={"FAIL_IN": "upgrade/alpha"})
    assert proc.returncode == 7, proc.stderr
    before = trace(config.parent / "stack")
    assert before[-1] == "from-2025.2 applied to alpha"

    # without --resume a failed run is not silently continued
    proc = invoke(config, "run")
    assert proc.returncode == 1
    assert "--resume" in proc.stderr

    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 0, proc.stderr
    after = trace(config.parent / "stack")[len(before) :]
    assert after[0] == "upgrade alpha upgrade.sh  TOP=new"  # the failed step again
    assert not any(ln.startswith(("create", "shutdown")) for ln in after)  # done ones skipped
    assert after[-1] == "destroyed"


def test_resume_refused_when_fingerprint_changed(run_yaml, tmp_path):
    config = run_yaml()
    proc = invoke(config, "run", env={"FAIL_IN": "verify-pre/alpha"})
    assert proc.returncode == 3
    run_yaml(timeout=61)  # a runtime-only key: resuming with a longer timeout is fine
    run_yaml(timeout=61, enabled_services="alpha")  # this changes the run
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    assert "refusing to continue" in proc.stderr
    assert f"config key 'grenade.enabled_services' (now set at {config}:" in proc.stderr


def test_resume_refused_when_projects_changed(run_yaml, tmp_path):
    import shutil

    from conftest import FIXTURES

    projects = tmp_path / "projects"
    shutil.copytree(FIXTURES / "projects", projects)
    config = run_yaml(projects_dirs=[str(projects)])
    proc = invoke(config, "run", env={"FAIL_IN": "verify-pre/alpha"})
    assert proc.returncode == 3
    shutil.copytree(projects / "20_beta", projects / "25_delta")
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    assert f"settings file {projects}/25_delta/settings: new since setup" in proc.stderr
    shutil.rmtree(projects / "25_delta")
    with open(projects / "10_alpha" / "settings", "a") as fh:
        fh.write("export ALPHA_TOKEN=changed\n")
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    assert f"settings file {projects}/10_alpha/settings: changed since setup" in proc.stderr


def test_resume_refused_when_tree_moved(run_yaml, tmp_path):
    src = tmp_path / "devstack-src"
    src.mkdir()
    (src / "README").write_text("tree\n")
    repo = git.Repo.init(src, initial_branch="master")
    repo.index.add(["README"])
    repo.index.commit("one")
    repo.create_head("stable/2025.2")
    repo.create_head("stable/2026.1")
    config = run_yaml(
        deployer="external",
        base={"repo": str(src), "branch": "stable/2025.2"},
        target={"repo": str(src), "branch": "stable/2026.1"},
    )
    proc = invoke(config, "run", env={"FAIL_IN": "create/alpha"})
    assert proc.returncode == 3, proc.stderr
    target = config.parent / "stack/new/devstack"
    (target / "README").write_text("moved\n")
    t = git.Repo(target)
    t.index.add(["README"])
    t.index.commit("local change")
    proc = invoke(config, "run", "--resume")
    assert proc.returncode == 1
    assert f"target tree {target}: HEAD moved since setup" in proc.stderr


@fault(
    "base",
    "a second run on the same stack_root (and SIGTERM to the first)",
    "1 / 143",
    "the second is refused naming the pid holding the lock; SIGTERM ends the first with 143",
)
def test_second_run_on_same_stack_root_refused(run_yaml, monkeypatch):
    config = run_yaml()
    monkeypatch.setenv("HANG_IN", "create/alpha")
    first = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "-f", str(config), "run"],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: "create" in " ".join(trace(config.parent / "stack")))
        proc = invoke(config, "run")
        assert proc.returncode == 1
        assert "another grenade run holds" in proc.stderr
        # status only reads the state: it works during the run
        proc = invoke(config, "status")
        assert proc.returncode == 0, proc.stderr
        assert "done" in proc.stdout and "pending" in proc.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        out, errout = first.communicate(timeout=30)
    assert first.returncode == 143, errout
    state = json.loads((config.parent / "stack/save/run-state.json").read_text())
    assert state["steps"]["create/alpha"]["status"] == "failed"
    assert "interrupted" in state["steps"]["create/alpha"]["message"]
    child = int((config.parent / "stack/save/hung-child.pid").read_text())
    time.sleep(0.3)
    assert not _alive(child)


@fault(
    "base",
    "SIGINT while a hook runs",
    130,
    "the hook's process group is killed; "
    "the step is recorded failed with the signal; done steps stay done",
)
def test_sigint_exits_130(run_yaml, monkeypatch):
    config = run_yaml()
    monkeypatch.setenv("HANG_IN", "verify-pre/alpha")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "-f", str(config), "run"],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: "verify-pre alpha" in " ".join(trace(config.parent / "stack")))
    _wait_for(lambda: (config.parent / "stack/save/hung-child.pid").exists())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    state = json.loads((config.parent / "stack/save/run-state.json").read_text())
    assert state["failed_step"] == "verify-pre/alpha"
    assert state["steps"]["verify-pre/alpha"]["message"] == "interrupted by signal 2"
    assert state["steps"]["create/beta"]["status"] == "done"
    child = int((config.parent / "stack/save/hung-child.pid").read_text())
    time.sleep(0.3)
    assert not _alive(child)


def test_missing_config_file_is_an_error(tmp_path):
    proc = invoke(tmp_path / "nope.yaml", "status")
    assert proc.returncode == 1
    assert "nope.yaml: no such config file" in proc.stderr


def test_bad_config_key_named_with_file(run_yaml):
    config = run_yaml(stack_rot="/tmp/x")
    proc = invoke(config, "status")
    assert proc.returncode == 1
    assert f"{config}:" in proc.stderr
    assert "'grenade.stack_rot' is unknown" in proc.stderr


def test_bad_config_type_named_with_file_and_line(run_yaml):
    config = run_yaml(timeout="soon")
    with pytest.raises(Exception) as err:
        GrenadeConfig.from_file(config)
    assert f"{config}:" in str(err.value)
    assert "'grenade.timeout' must be int or float, got str" in str(err.value)


def test_env_config_is_honoured(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "INVOKE_GRENADE_STACK_ROOT": str(tmp_path / "elsewhere"),
            "INVOKE_GRENADE_DEPLOYER": "external",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{tmp_path / 'elsewhere'}: no run set up" in proc.stdout


def test_env_config_bad_value_named(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "INVOKE_GRENADE_DEPLOYER": "nonsense"},
    )
    assert proc.returncode == 1
    assert "environment (INVOKE_GRENADE_*)" in proc.stderr
    assert "'grenade.deployer' must be one of" in proc.stderr


def test_status_and_clean(run_yaml):
    config = run_yaml()
    assert invoke(config, "run").returncode == 0
    proc = invoke(config, "status")
    assert proc.returncode == 0
    assert "done" in proc.stdout and "upgrade/alpha" in proc.stdout
    proc = invoke(config, "clean")
    assert proc.returncode == 0, proc.stderr
    stack = config.parent / "stack"
    assert not (stack / "save").exists()
    assert (stack / "logs" / "grenade.log").exists()  # logs kept unless asked
    assert invoke(config, "clean", "--logs").returncode == 0
    assert not (stack / "logs").exists()


def test_unreadable_state_refused_but_clean_and_force_go_on(run_yaml):
    config = run_yaml()
    assert invoke(config, "setup").returncode == 0
    state = config.parent / "stack/save/run-state.json"
    state.write_text("{torn")
    proc = invoke(config, "base")
    assert proc.returncode == 1
    assert (
        "run state unreadable" in proc.stderr
        and f"`grenade -f {config} clean` removes it" in proc.stderr
    )
    proc = invoke(config, "run", "--force")
    assert proc.returncode == 0, proc.stderr
    assert "run state unreadable" in proc.stdout and "going on without it" in proc.stdout
    assert json.loads(state.read_text())["steps"]["destroy/alpha"]["status"] == "done"
    state.write_text("{torn")
    proc = invoke(config, "clean")
    assert proc.returncode == 0, proc.stderr
    assert not state.exists()


def test_force_reruns_done_steps(run_yaml):
    config = run_yaml()
    assert invoke(config, "setup", "base").returncode == 0
    n = len(trace(config.parent / "stack"))
    assert invoke(config, "base", "--force").returncode == 0
    assert len(trace(config.parent / "stack")) == 2 * n


def test_phase_namespace_task(run_yaml):
    config = run_yaml()
    assert invoke(config, "setup", "base").returncode == 0
    proc = invoke(config, "phase.save-state")
    assert proc.returncode == 0, proc.stderr
    proc = invoke(config, "phase.verify-pre", "--force")
    assert proc.returncode == 0
    assert trace(config.parent / "stack")[-1].startswith("verify-pre beta")


def test_state_is_written_after_every_step(run_yaml, monkeypatch):
    config = run_yaml()
    monkeypatch.setenv("FAIL_IN", "verify-pre/alpha")
    with pytest.raises(StepFailed):
        run_all(config)
    state = json.loads((config.parent / "stack/save/run-state.json").read_text())
    assert state["steps"]["create/beta"]["status"] == "done"
    assert state["steps"]["create/beta"]["duration"] >= 0
    assert "verify-pre/beta" not in state["steps"]


def test_list_shows_every_task():
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "--list"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for name in (
        "setup",
        "base",
        "upgrade",
        "verify",
        "destroy",
        "run",
        "plan",
        "status",
        "clean",
        "phase.stack-base",
        "phase.verify-noapi",
        "phase.destroy",
    ):
        assert name in proc.stdout
    assert "Stack the base cloud" in proc.stdout


def test_second_run_in_process_refused(run_yaml):
    config = run_yaml()
    with make_run(config), pytest.raises(StateError), make_run(config):
        pass


def test_smoke_command_honours_base_run_smoke(run_yaml):
    smoke = [
        "bash",
        "-c",
        'echo "smoke $GRENADE_PHASE $(basename $(dirname $TOP_DIR))" >> "$SAVE_DIR/trace.log"',
    ]
    config = run_yaml(smoke_command=smoke)
    lines = trace(run_all(config).paths.stack_root)
    assert [ln for ln in lines if ln.startswith("smoke")] == [
        "smoke verify-base old",
        "smoke verify-target new",
    ]
    # a settings/localrc BASE_RUN_SMOKE=False turns the base smoke off, as in the original
    config = run_yaml(smoke_command=smoke, grenade_localrc={"BASE_RUN_SMOKE": False})
    lines = trace(run_all(config, new_run=True).paths.stack_root)[len(lines) :]
    assert [ln for ln in lines if ln.startswith("smoke")] == ["smoke verify-target new"]


def test_release_override_reaches_upgrade_project(run_yaml):
    # a base on a branch that names no release (a SHA on master, say) with `release:`
    config = run_yaml(base={"branch": "master", "release": "2025.2"})
    run = run_all(config)
    assert "from-2025.2 applied to alpha" in trace(run.paths.stack_root)
    assert [s.note for s in run.plan() if s.kind == "upgrade"][
        0
    ] == "from-2025.2/upgrade-alpha: applies"


def test_failure_in_snapshot_names_it(run_yaml, monkeypatch):
    config = run_yaml()
    monkeypatch.setenv("FAIL_IN", "snapshot/beta")
    with pytest.raises(StepFailed) as err:
        run_all(config)
    assert (
        "FAILED step snapshot/beta: project beta, phase snapshot, host local, exit code 6"
        in str(err.value)
    )
    assert "beta: snapshot of the volume failed" in str(err.value)
