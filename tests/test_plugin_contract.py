"""The plugin contract as the runner keeps it: how hooks are run, in which order,
with which phase, side and TOP_DIR, and how a failing one is named.

These assertions were made through the bash phase drivers of inc/plugin and
inc/upgrade (`resources`, `shutdown_services`, `upgrade_service`,
`fetch_grenade_plugins`) until the runner became their only owner; they run the
same small plugin (tests/fixtures/shell/plugins/alpha) through `grenade.phases`.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import git
import pytest
from conftest import write_config
from fixtures.shell.grenade_env import PLUGINS

from grenade import phases
from grenade.config import GrenadeConfig
from grenade.errors import ConfigError, StepFailed
from grenade.phases import kinds_between
from grenade.resources import read_results
from grenade.session import Session


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """alpha as an in-tree project: its upgrade.sh has no shebang and no exec bit."""
    root = tmp_path / "projects"
    root.mkdir()
    shutil.copytree(PLUGINS / "alpha", root / "10_alpha")
    return root


def add_second(projects: Path) -> None:
    second = projects / "20_second"
    second.mkdir()
    (second / "settings").write_text("register_project_for_upgrade second\n")
    (second / "shutdown.sh").write_text('echo "second shutdown TOP_DIR=$TOP_DIR"\n')
    (second / "upgrade.sh").write_text("exit 0\n")


def session_for(tmp_path: Path, projects: Path, **config) -> Session:
    config = {"enabled_services": "", **config}
    path = write_config(
        tmp_path / "run.yaml", tmp_path / "stack", projects_dirs=[str(projects)], **config
    )
    return Session(GrenadeConfig.from_file(path), console=io.StringIO())


def run_all(session: Session) -> None:
    phases.setup(session)
    phases.run_kinds(session, kinds_between(None, None))


def step_logs(session: Session, kind: str, project: str) -> list[Path]:
    """The step's log (one per host), found by its name `NNN-<kind>_<project>@<host>.log`."""
    return sorted(session.paths.logs_dir.joinpath("steps").glob(f"*-{kind}_{project}@*.log"))


def step_log(session: Session, kind: str, project: str) -> str:
    (log,) = step_logs(session, kind, project)
    return log.read_text()


# was test_shell.py::test_upgrade_service_runs_shebangless_upgrade_sh_with_target_top_dir
def test_upgrade_sh_without_shebang_runs_with_target_top_dir(tmp_path, projects):
    script = projects / "10_alpha" / "upgrade.sh"
    assert not script.read_text().startswith("#!") and not os.access(script, os.X_OK)
    with session_for(tmp_path, projects) as session:
        run_all(session)
    log = step_log(session, "upgrade", "alpha")
    assert f"alpha upgrade.sh TOP_DIR={session.paths.target_devstack}" in log
    assert "CONFIGURED alpha from-2025.2" in log
    assert "direction=from upgrade_dir=2025.2" in log


# was test_shell.py::test_resources_phases_and_results
def test_resource_phases_and_results(tmp_path, projects):
    with session_for(tmp_path, projects) as session:
        phases.setup(session)
        phases.run_kinds(session, ["early-create", "create", "verify-pre"])
    log = step_log(session, "verify-pre", "alpha")
    assert "alpha resources.sh verify pre-upgrade phase=verify-pre" in log
    results = read_results(session.paths.save_dir)
    assert {r.pop("host") for r in results} == {"local"}
    assert all(r.pop("run") for r in results)
    assert results == [
        {
            "project": "alpha",
            "resource": "thing",
            "result": "pass",
            "detail": "created",
            "phase": "create",
            "side": "",
        },
        {
            "project": "alpha",
            "resource": "thing",
            "result": "pass",
            "detail": "pre-upgrade",
            "phase": "verify-pre",
            "side": "pre-upgrade",
        },
    ]


# was test_shell.py::test_resources_unknown_phase_is_passed_on_and_tolerated
def test_phases_a_resources_sh_does_not_implement_are_tolerated(tmp_path, projects):
    # alpha's dispatcher knows create, verify and destroy only
    with session_for(tmp_path, projects) as session:
        run_all(session)
    assert "alpha resources.sh early_create  phase=early-create" in step_log(
        session, "early-create", "alpha"
    )
    assert "alpha resources.sh verify_noapi pre-upgrade phase=verify-noapi" in step_log(
        session, "verify-noapi", "alpha"
    )
    assert session.state.status("verify-noapi/alpha") == "done"
    # a phase name the runner does not know is refused, naming it
    with pytest.raises(ConfigError, match="unknown step kind 'no_such_phase'"):
        kinds_between("no_such_phase", None)


# was test_shell.py::test_resources_skipped_by_configuration
@pytest.mark.parametrize(
    "config",
    [{"grenade_localrc": {"VERIFY_RESOURCES": False}}, {"verify_resources": False}],
    ids=["localrc", "config"],
)
def test_resources_skipped_by_configuration(tmp_path, projects, config):
    with session_for(tmp_path, projects, **config) as session:
        run_all(session)
        plan = session.plan()
    assert not [s for s in plan if s.script.endswith("resources.sh")]
    for kind in ("early-create", "create", "verify-pre", "verify-noapi", "verify-post", "destroy"):
        assert step_logs(session, kind, "alpha") == []
    assert "alpha upgrade.sh" in step_log(session, "upgrade", "alpha")
    assert read_results(session.paths.save_dir) == []
    said = session.console.getvalue()
    assert "Skipping resource phase create by configuration" in said
    assert "Skipping resource phase verify_noapi by configuration" in said


# was test_shell.py::test_resources_failure_names_script
def test_resources_failure_names_script(tmp_path, projects):
    with session_for(tmp_path, projects) as session:
        phases.setup(session)
        with pytest.raises(StepFailed) as err:
            # nothing was created: alpha's verify finds no value and fails
            phases.run_kinds(session, ["verify-post"], check_order=False)
        (step,) = [s for s in session.plan() if s.id == "verify-post/alpha"]
    assert err.value.exit_code == 1
    msg = str(err.value)
    assert "FAILED step verify-post/alpha: project alpha, phase verify-post, host local" in msg
    assert "exit code 1" in msg
    assert f"script: {projects}/10_alpha/resources.sh" in msg
    assert step.argv[-2:] == ("verify", "post-upgrade")
    last = read_results(session.paths.save_dir)[-1]
    assert last.pop("run") and last.pop("host") == "local"
    assert last == {
        "project": "alpha",
        "resource": "thing",
        "result": "fail",
        "detail": "got ''",
        "phase": "verify-post",
        "side": "post-upgrade",
    }


# was test_shell.py::test_shutdown_services_reverse_order_with_base_top_dir
def test_shutdown_reverse_order_with_base_top_dir(tmp_path, projects):
    add_second(projects)
    with session_for(tmp_path, projects) as session:
        phases.setup(session)
        phases.run_kinds(session, ["shutdown"], check_order=False)
    logs = sorted(
        step_logs(session, "shutdown", "alpha") + step_logs(session, "shutdown", "second"),
        key=lambda p: p.name,
    )
    base = session.paths.base_devstack
    lines = [ln for p in logs for ln in p.read_text().splitlines() if "shutdown TOP_DIR" in ln]
    assert lines == [f"second shutdown TOP_DIR={base}", f"alpha shutdown TOP_DIR={base}"]


# was test_shell.py::test_fetch_grenade_plugins_clones_missing_ones
def test_pluginrc_plugins_are_cloned_and_a_checkout_is_kept(tmp_path, projects):
    src = tmp_path / "src"
    repo = git.Repo.init(src, initial_branch="stable/2026.1")
    (src / "README").write_text("hi\n")
    repo.index.add(["README"])
    repo.index.commit("init")
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(f"enable_grenade_plugin demo {src}\n")
    with session_for(tmp_path, projects, pluginrc_file=str(pluginrc)) as session:
        phases.setup(session)
        checkout = session.paths.stack_root / "plugins" / "demo"
        assert (checkout / "README").read_text() == "hi\n"
        assert session.setup.plugins[0].branch == "stable/2026.1"  # the target branch
        phases.setup(session, force=True)  # the existing checkout is fetched again, not lost
        assert (checkout / "README").read_text() == "hi\n"
