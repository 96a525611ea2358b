"""The original's entry point (`./grenade.sh`) and its cleanup (`force-destroy`),
driven as a job would: real processes, the fixture projects, real bash hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import BASE_HALF_TRACE, REPO, invoke, trace, write_config

BASE_HALF = BASE_HALF_TRACE


def grenade_dir(tmp_path: Path, localrc: str = "") -> Path:
    """A grenade directory as a job has it: grenade.sh (a link into this checkout),
    with the localrc a job writes beside it."""
    gdir = tmp_path / "grenade"
    gdir.mkdir(parents=True)
    (gdir / "grenade.sh").symlink_to(REPO / "grenade.sh")
    if localrc:
        (gdir / "localrc").write_text(localrc)
    return gdir


def grenade_sh(
    gdir: Path, config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`./grenade.sh ARGS` from an unrelated directory, its config named by GRENADE_CONFIG."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_GRENADE_")}
    clean.pop("PYTHONPATH", None)  # grenade.sh finds the checkout's package itself
    return subprocess.run(
        [str(gdir / "grenade.sh"), *args],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **clean,
            "GRENADE_CONFIG": str(config),
            "GRENADE_PYTHON": sys.executable,
            **(env or {}),
        },
    )


def state_of(stack: Path) -> dict[str, str]:
    raw = json.loads((stack / "save" / "run-state.json").read_text())
    return {sid: rec["status"] for sid, rec in raw["steps"].items()}


def test_base_then_target_half_equal_one_full_run(tmp_path):
    full = write_config(tmp_path / "full.yaml", tmp_path / "full-stack")
    proc = invoke(full, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = trace(tmp_path / "full-stack")

    stack = tmp_path / "stack"
    config = write_config(tmp_path / "run.yaml", stack)
    gdir = grenade_dir(tmp_path)
    base = grenade_sh(gdir, config, "-b")
    assert base.returncode == 0, base.stdout + base.stderr
    assert trace(stack) == BASE_HALF
    assert "prep-target" not in base.stdout
    assert state_of(stack).get("prep-target/grenade") is None
    target = grenade_sh(gdir, config, "-t")
    assert target.returncode == 0, target.stdout + target.stderr
    assert "verify-base alpha" not in target.stdout  # the base half did not run again
    assert trace(stack) == expected
    assert set(state_of(stack).values()) == {"done"}
    assert "grenade.sh completed in" in target.stdout


def test_stop_labels_stop_where_asked(tmp_path):
    stack = tmp_path / "stack"
    config = write_config(tmp_path / "run.yaml", stack)
    gdir = grenade_dir(tmp_path)
    proc = grenade_sh(gdir, config, "-s", "save-state")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("STOP called for save-state")
    assert trace(stack) == BASE_HALF[:7]  # save-state is the last step that ran
    states = state_of(stack)
    assert states["save-state/grenade"] == "done"
    assert "shutdown/alpha" not in states  # the rest pending
    status = invoke(config, "status")
    assert "pending" in status.stdout and "shutdown/alpha" in status.stdout

    # the rest of the run, as after the original's stop: no label, no stop
    proc = grenade_sh(gdir, config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert trace(stack)[:11] == BASE_HALF and trace(stack)[-1] == "destroyed"


def test_stop_numbers_kinds_and_halves(tmp_path):
    stack = tmp_path / "stack"
    config = write_config(tmp_path / "run.yaml", stack)
    gdir = grenade_dir(tmp_path)
    # 110 is base-smoke, the original's label after the base smoke (verify-base)
    proc = grenade_sh(gdir, config, "-q", "-s", "110")
    assert proc.returncode == 1 and "STOP called for 110" in proc.stdout
    assert trace(stack) == BASE_HALF[:1]
    # a grenade step kind; -b with a stop past the base half runs the half, no stop
    proc = grenade_sh(gdir, config, "-b", "-s", "run-smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert trace(stack) == BASE_HALF
    proc = grenade_sh(gdir, config, "-t", "-s", "upgrade")
    assert proc.returncode == 1 and "STOP called for upgrade" in proc.stdout
    assert trace(stack)[-1] == "upgrade beta upgrade.sh token=from alpha settings TOP=new"
    assert "verify-post/alpha" not in state_of(stack)
    proc = grenade_sh(gdir, config, "-s", "no-such-label")
    assert proc.returncode == 1 and "neither a stop label" in proc.stderr


def test_exit_code_is_the_failing_hooks(tmp_path):
    stack = tmp_path / "stack"
    config = write_config(tmp_path / "run.yaml", stack)
    proc = grenade_sh(grenade_dir(tmp_path), config, "-q", env={"FAIL_IN": "create/alpha"})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FAILED step create/alpha" in proc.stdout + proc.stderr
    assert "grenade.sh completed" not in proc.stdout


def test_quiet_and_verbose_localrc(tmp_path):
    marker = "Dumping old databases"  # save-state's own output
    config = write_config(tmp_path / "run.yaml", tmp_path / "stack")
    proc = grenade_sh(grenade_dir(tmp_path), config, "-b")
    assert proc.returncode == 0 and marker in proc.stdout  # the original's default: verbose
    config = write_config(tmp_path / "q.yaml", tmp_path / "stack-q")
    quiet = grenade_sh(grenade_dir(tmp_path / "q"), config, "-q", "-b")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert marker not in quiet.stdout and "save-state grenade: bash" in quiet.stdout
    log = (tmp_path / "stack-q" / "logs" / "grenade.sh.log").read_text()
    assert marker in log  # the full log keeps what the console leaves out
    # VERBOSE=False in localrc, as Zuul's write-grenade-conf writes it, is -q
    config = write_config(tmp_path / "z.yaml", tmp_path / "stack-z")
    zuul = grenade_sh(grenade_dir(tmp_path / "z", "VERBOSE=False\n"), config, "-b")
    assert zuul.returncode == 0 and marker not in zuul.stdout


def test_external_devstack_localrc_and_log_paths(tmp_path):
    stack = tmp_path / "stack"
    config = write_config(tmp_path / "run.yaml", stack)
    # no deployer in the config: alone, it would deploy the embedded lite cloud
    raw = yaml.safe_load(config.read_text())
    del raw["grenade"]["deployer"]
    config.write_text(yaml.safe_dump(raw))
    gdir = grenade_dir(
        tmp_path / "z",
        "BASE_DEVSTACK_BRANCH=stable/2025.1\nTARGET_DEVSTACK_BRANCH=stable/2025.2\n"
        "GRENADE_USE_EXTERNAL_DEVSTACK=True\n",
    )
    proc = grenade_sh(gdir, config, "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stack-base" not in proc.stdout  # external: the base was stacked by Zuul
    assert trace(stack)[0] == BASE_HALF[0]
    # the localrc beside grenade.sh gave the branches
    assert "release 2025.1" in proc.stdout and "release 2025.2" in proc.stdout
    # the environment says it as well as localrc does
    env_config = write_config(tmp_path / "env.yaml", tmp_path / "stack-env")
    raw["grenade"]["stack_root"] = str(tmp_path / "stack-env")
    env_config.write_text(yaml.safe_dump(raw))
    proc = grenade_sh(
        grenade_dir(tmp_path / "e"), env_config, "-b", env={"GRENADE_USE_EXTERNAL_DEVSTACK": "True"}
    )
    assert proc.returncode == 0 and trace(tmp_path / "stack-env") == BASE_HALF
    logs = stack / "logs"
    for name, target in (
        ("grenade.sh.log", "grenade.log"),
        ("grenade.sh.log.summary", "grenade.summary.log"),
    ):
        assert (logs / name).is_symlink() and os.readlink(logs / name) == target
    assert "destroy alpha" in (logs / "grenade.sh.log").read_text()
    assert "destroy/alpha" in (logs / "grenade.sh.log.summary").read_text()


def test_force_destroy_after_failed_run(tmp_path):
    stack = tmp_path / "stack"
    config = write_config(tmp_path / "run.yaml", stack)
    proc = invoke(config, "run", env={"FAIL_IN": "verify-post/alpha"})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    before = len(trace(stack))

    # alpha's force_destroy fails too: reported, and every other step still runs
    proc = invoke(config, "force-destroy", env={"FAIL_IN": "force-destroy/alpha"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert trace(stack)[before:] == [
        "force-destroy beta resources.sh force_destroy TOP=old",
        "force-destroy alpha resources.sh force_destroy TOP=old",
        "destroy beta resources.sh destroy TOP=old",
        "destroy alpha resources.sh destroy TOP=old",
        "destroyed",
    ]
    out = proc.stdout + proc.stderr
    assert "force-destroy: 1 of 4 step(s) failed" in out
    assert "FAILED step force-destroy/alpha: project alpha, phase force-destroy, host local" in out
    assert "002-force-destroy_alpha@local.log" in out
    assert "alpha: resource widget is broken" in out  # the log's tail
    # the run's own failure is still what status and --resume name
    status = invoke(config, "status")
    assert "failed at verify-post/alpha" in status.stdout

    proc = invoke(config, "force-destroy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "force-destroy: all 4 step(s) done" in proc.stdout


def test_force_destroy_without_a_run(tmp_path):
    config = write_config(tmp_path / "run.yaml", tmp_path / "stack")
    proc = invoke(config, "force-destroy")
    assert proc.returncode == 1
    assert "no run set up here; nothing to destroy" in proc.stderr
