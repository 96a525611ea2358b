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
