"""grenade/lint.py, grenade/skeleton.py and their tasks (grenade/cli_plugins.py):
each fault found in a fixture plugin with its file and line, the in-tree projects and
the skeleton clean, and the skeleton run through a whole upgrade on the fake cloud."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
import pytest
from conftest import FIXTURES, invoke

from grenade import PROJECTS_DIR
from grenade.lint import Finding, lint_paths
from grenade.releases import release_problem
from grenade.resources import ResourceStore

LINT = FIXTURES / "lint"

# Each fixture plugin and what lint must say of it: (file, line, severity, words).
FAULTS = {
    "misnamed": [
        ("from-2025.2/upgrade_misnamed", None, "error", "reads upgrade-misnamed"),
        ("from_2025.1", None, "error", "looks for from-2025.1/"),
        ("resource.sh", None, "error", "grenade reads resources.sh"),
        ("shutdhown.sh", None, "error", "grenade reads shutdown.sh"),
        ("upgrade-misnamed", None, "error", "outside a from-<release>/"),
    ],
    "no_upgrade": [
        ("settings", 3, "error", "registers no_upgrade, but its folder has no upgrade.sh")
    ],
    "bad_release": [
        ("from-2025.3", None, "error", "no release is named '2025.3'"),
        ("from-2026.1/upgrade-bad_release", None, "error", "configure_bad_release_upgrade"),
        ("from-epoxy", None, "warning", "epoxy is 2025.1"),
        ("within-zedd", None, "error", "did you mean zed?"),
    ],
    "bad_settings": [("settings", 4, "error", "$TOP_DIR/lib/no-such-lib: No such file")],
    "syntax_settings": [("settings", 3, "error", "unexpected end of file")],
    "not_bash": [
        ("resources.sh", 3, "error", "syntax error near unexpected token `('"),
        ("shutdown.sh", 1, "error", "not a bash script (/usr/bin/env python3)"),
        ("upgrade.sh", 1, "error", "not a bash script (/bin/sh)"),
        ("verify.sh", 6, "error", "bash cannot parse it"),
    ],
}


def _said(found: list[Finding], base: Path) -> list[tuple[str, int | None, str, str]]:
    return [(str(Path(f.path).relative_to(base)), f.line, f.severity, f.message) for f in found]


@pytest.mark.parametrize("plugin", sorted(FAULTS))
def test_each_fault_is_found_with_file_and_line(plugin: str) -> None:
    said = _said(lint_paths([LINT / plugin]), LINT / plugin)
    assert [s[:3] for s in said] == [e[:3] for e in FAULTS[plugin]], said
    for (_, _, _, message), (_, _, _, words) in zip(said, FAULTS[plugin], strict=True):
        assert words in message


def test_in_tree_projects_and_a_good_plugin_are_clean() -> None:
    # a projects dir, an external plugin's repo (its devstack/upgrade found), the fixtures
    assert lint_paths([PROJECTS_DIR, LINT / "good", FIXTURES / "projects"]) == []


@pytest.mark.parametrize(
    ("release", "severity"),
    [
        ("zed", None),
        ("xena", None),
        ("2025.1", None),
        ("2030.2", None),
        ("master", None),
        ("epoxy", "warning"),
        ("2025.3", "error"),
        ("2022.1", "error"),
        ("stable/2025.1", "error"),
    ],
)
def test_release_names(release: str, severity: str | None) -> None:
    problem = release_problem(release)
    assert (problem[0] if problem else None) == severity


def grenade(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The two tasks through invoke's Program, in a process of their own."""
    script = (
        "import sys\nfrom invoke import Collection, Program\n"
        "from grenade.cli_plugins import lint, new_plugin\n"
        "Program(namespace=Collection(lint, new_plugin), name='grenade', binary='grenade')"
        ".run(['grenade', *sys.argv[1:]])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_lint_task_prints_findings_and_exits_1_on_errors(tmp_path: Path) -> None:
    proc = grenade(
        "lint", str(LINT / "not_bash"), "--also", str(LINT / "bad_release"), cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"{LINT}/not_bash/upgrade.sh:1: error: not a bash script (/bin/sh): " in "\n".join(lines)
    assert f"{LINT}/bad_release/from-epoxy: warning: epoxy is 2025.1" in "\n".join(lines)
    assert len(lines) == 8
    assert "grenade lint: 7 error(s), 1 warning(s)" in proc.stderr

    proc = grenade("lint", str(LINT / "good"), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_new_plugin_refuses_a_bad_name_and_existing_files(tmp_path: Path) -> None:
    proc = grenade("new-plugin", "Bad name", cwd=tmp_path)
    assert proc.returncode == 1 and "is not a project name" in proc.stderr
    assert not any(tmp_path.iterdir())
    assert grenade("new-plugin", "widget", cwd=tmp_path).returncode == 0
    proc = grenade("new-plugin", "widget", cwd=tmp_path)
    assert proc.returncode == 1 and "would overwrite" in proc.stderr


def test_skeleton_passes_lint_and_survives_a_whole_run(run_yaml, tmp_path: Path) -> None:
    src = tmp_path / "widget-src"
    proc = grenade("new-plugin", "widget", "--dir", str(src), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    up = src / "devstack" / "upgrade"
    assert proc.stdout.split() == [
        str(up / n) for n in ("settings", "upgrade.sh", "shutdown.sh", "resources.sh")
    ]
    proc = grenade("lint", str(src), cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr

    repo = git.Repo.init(src, initial_branch="master")
    repo.index.add(["devstack"])
    repo.index.commit("skeleton")
    pluginrc = tmp_path / "pluginrc"
    pluginrc.write_text(f"enable_grenade_plugin widget {src} master\n")
    config = run_yaml(projects_dirs=[], pluginrc_file=str(pluginrc))
    proc = invoke(config, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    save = tmp_path / "stack" / "save"
    results = [json.loads(ln) for ln in (save / "resource-results.jsonl").read_text().splitlines()]
    checked = [(r["project"], r["resource"], r["result"], r["phase"]) for r in results]
    assert checked == [
        ("widget", "marker", "pass", phase)
        for phase in ("verify-pre", "verify-noapi", "verify-post")
    ]
    assert ResourceStore(save / "grenade_db.ini").get("widget", "marker") == ""
