"""The plan as data: every step, in order, compared with a golden file."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import FIXTURES

from grenade.plan import PlanInputs, build_plan, format_plan
from grenade.plugins import Project, Settings

PROJECTS = FIXTURES / "projects"
GOLDEN = FIXTURES / "plan"


def inputs(**kw) -> PlanInputs:
    settings = Settings(
        projects=[
            Project("alpha", str(PROJECTS / "10_alpha")),
            Project("beta", str(PROJECTS / "20_beta")),
        ],
        **kw.pop("settings", {}),
    )
    base = dict(
        settings=settings,
        grenade_dir=Path("/stack/grenade"),
        base_branch="stable/2025.2",
        target_branch="stable/2026.1",
        base_release="2025.2",
        stack=("bash", "./stack.sh"),
        stack_cwd="/stack/old",
        smoke=("tempest", "run", "--smoke"),
        target_devstack="/stack/new/devstack",
        versions=(
            "python3",
            "/stack/grenade/tools/service_versions.py",
            "--release-dir",
            "/stack/old",
        ),
    )
    base.update(kw)
    return PlanInputs(**base)


def render(steps) -> str:
    return format_plan(steps).replace(str(PROJECTS), "<projects>") + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GRENADE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_full_plan_matches_golden():
    check_golden("full.txt", render(build_plan(inputs())))


def test_settings_turn_off_smoke_and_resources():
    steps = build_plan(inputs(settings={"base_run_smoke": False, "verify_resources": False}))
    kinds = [s.kind for s in steps]
    assert "create" not in kinds and "verify-noapi" not in kinds and "destroy" not in kinds
    assert [s.id for s in steps if s.project == "smoke"] == ["verify-target/smoke"]


def test_forward_upgrade_plans_within():
    steps = build_plan(inputs(base_branch="stable/2026.1", base_release="2026.1"))
    notes = [s.note for s in steps if s.kind == "upgrade"]
    assert notes == ["within-2026.1/upgrade-alpha: applies", "within-2026.1/upgrade-beta: none"]


def test_reverse_kinds_are_reversed():
    steps = build_plan(inputs())
    assert [s.project for s in steps if s.kind == "destroy"] == ["beta", "alpha"]
    assert [s.project for s in steps if s.kind == "upgrade"] == ["alpha", "beta"]


def test_rehearsal_plan_rolls_back_then_upgrades_again_under_ids_of_its_own():
    from grenade.deployers import Command
    from grenade.rollback import rollback_steps, with_second_upgrade

    stop = Command(["bash", "./services.sh", "stop"], cwd=Path("/stack/new/devstack"))
    start = Command(["bash", "./services.sh", "start"], cwd=Path("/stack/old/devstack"))
    steps = rollback_steps(Path("/stack/grenade"), "lite", stop, start)
    plan = with_second_upgrade(build_plan(inputs(rollback=tuple(steps))))
    ids = [s.id for s in plan]
    rollback = [i for i in ids if i.startswith("rollback/")]
    assert rollback == [f"rollback/{s}" for s in ("check", "loss", "stop", "restore", "start")]
    # verify rollback per project after the rollback, then the second upgrade, then destroy
    first_again = ids.index("save-state/grenade+again")
    assert ids.index("verify-rollback/beta") < first_again < ids.index("destroy/beta")
    assert ids.index("rollback/start") < ids.index("verify-rollback/alpha")
    assert "upgrade/alpha+again" in ids and "verify-post/beta+again" in ids
    assert "snapshot/grenade+again" in ids  # the rolled-back cloud's own snapshot
    assert len(ids) == len(set(ids))  # every leg's steps have ids of their own
    by_id = {s.id: s for s in plan}
    assert by_id["rollback/stop"].cwd == "/stack/new/devstack"
    assert by_id["verify-rollback/alpha"].argv[-2:] == ("verify", "rollback")


def test_no_rollback_steps_unless_asked_and_a_deployer_that_cannot_refuses():
    import pytest

    from grenade.errors import DeployError
    from grenade.rollback import rollback_steps

    kinds = {s.kind for s in build_plan(inputs())}
    assert "snapshot" in kinds and not kinds & {"rollback", "verify-rollback"}
    with pytest.raises(DeployError, match="the external deployer cannot stop"):
        rollback_steps(Path("/stack/grenade"), "external", None, None)
