"""The jobs' real playbooks run by ansible-playbook, as Zuul's executor would run them.

Each test freezes a job with Zuul's own loader, writes the inventory Zuul's
executor would (its `squash_variables` and `make_inventory_dict`, the per-node
`ansible_host`, `ansible_port`, `ansible_user` and `nodepool` it adds), passes a
zuul-like `zuul` dict as extra vars, and runs our playbooks in the frozen order:
pre-run (a failure stops the build), run, then every post-run whatever happened.
The external parents' playbooks (OpenDev's base, zuul-jobs' multinode) and the
roles of other repositories are stand-ins (tests/zuul_stubs/). Small fixture
plugins on the `external` deployer keep it fast; grenade-py is really installed
from a copy of the checkout into a virtualenv, once per session.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIXTURES, FULL_FLOW_TRACE, REPO, trace
from sshd import SshdServer, running_sshd, skip_without_sshd
from test_zuul_jobs import OURS, ansible_env, ansible_playbook, check

from grenade.zuul import validate

PHASES = ("setup", "base", "upgrade", "verify", "destroy")


@dataclass
class Build:
    """What one local 'build' did: each playbook's run, in order."""

    runs: list[tuple[str, str, subprocess.CompletedProcess[str]]]

    def rc(self, phase: str) -> int:
        return max(p.returncode for ph, _, p in self.runs if ph == phase)

    def output(self, phase: str) -> str:
        return "".join(p.stdout + p.stderr for ph, _, p in self.runs if ph == phase)


@pytest.fixture(scope="session")
def install(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Where the pre-run installs grenade-py (once: the role skips an existing
    virtualenv), and the checkout Zuul would have prepared: a copy of this one."""
    root = tmp_path_factory.mktemp("grenade-py")
    src = root / "src" / "opendev.org" / "openstack" / "grenade-py"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests", "bench"
        ),
    )
    # The node's python3 comes with grenade-py's dependencies (this interpreter's
    # packages), as an image with them baked in would: the pre-run's pip install of
    # the checkout then builds and installs grenade-py alone.
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    return {"src": str(src), "venv": str(venv)}


def zuul_vars(job: str, src: str, log_root: Path) -> dict[str, Any]:
    """The part of Zuul's `zuul` variable our roles read, shaped as the executor's."""
    project = {
        "name": "openstack/grenade-py",
        "short_name": "grenade-py",
        "canonical_hostname": "opendev.org",
        "canonical_name": OURS,
        "src_dir": src,
        "checkout": "master",
        "required": True,
    }
    return {
        "zuul": {
            "job": job,
            "pipeline": "check",
            "tenant": "grenade-py",
            "branch": "master",
            "change": "1",
            "patchset": "1",
            "build": "0" * 32,
            "buildset": "1" * 32,
            "project": project,
            "projects": {OURS: project},
            "executor": {"log_root": str(log_root)},
        }
    }


def run_build(
    tmp: Path,
    job: validate.FrozenJob,
    inventory: dict[str, Any],
    extra_vars: dict[str, Any],
    *args: str,
) -> Build:
    """Our playbooks of `job` in Zuul's order: pre-run until one fails, then run,
    then every post-run."""
    (tmp / "inventory.yaml").write_text(yaml.safe_dump(inventory))
    (tmp / "zuul-vars.json").write_text(json.dumps(extra_vars))
    runs: list[tuple[str, str, subprocess.CompletedProcess[str]]] = []
    pre_failed = False
    for pb in job.playbooks:
        if pb.project != OURS or (pre_failed and pb.phase != "post-run"):
            continue
        started = time.monotonic()
        proc = subprocess.run(
            [
                ansible_playbook(),
                "-v",  # each task's output, as Zuul's console shows it
                "-i",
                str(tmp / "inventory.yaml"),
                *args,
                "-e",
                f"@{tmp / 'zuul-vars.json'}",
                str(REPO / pb.path),
            ],
            capture_output=True,
            text=True,
            env={**ansible_env(tmp), "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml"},
            timeout=300,
        )
        runs.append((pb.phase, pb.path, proc))
        # the build's console, as Zuul keeps job-output.txt
        with open(tmp / "job-output.txt", "a") as console:
            console.write(f"{pb.phase} {pb.path}: rc {proc.returncode}, ")
            console.write(f"{time.monotonic() - started:.1f} s\n{proc.stdout}{proc.stderr}\n")
        pre_failed = pre_failed or (pb.phase == "pre-run" and proc.returncode != 0)
        if pb.phase == "run" and proc.returncode != 0:
            pre_failed = True  # Zuul goes straight to post-run
    return Build(runs)


def node_vars(address: str, **more: Any) -> dict[str, Any]:
    """What Zuul's executor gives each node, and the interpreter Ansible should use
    on it (discovery can pick a broken pyenv shim here)."""
    return {
        "ansible_host": address,
        "ansible_port": 22,
        "ansible_user": getpass.getuser(),
        "ansible_python_interpreter": sys.executable,
        "nodepool": {"private_ipv4": address, "public_ipv4": address, "label": "ubuntu-noble"},
        **more,
    }


def job_settings(tmp: Path, install: dict[str, str], **more: Any) -> dict[str, Any]:
    """A child job's vars: the fixture scenario on the external deployer, and where
    the roles put things here instead of /opt and the user's home."""
    return {
        "grenade_py_deployer": "external",
        "grenade_py_stack_root": str(tmp / "stack"),
        "grenade_py_python": sys.executable,
        "grenade_py_venv": install["venv"],
        "grenade_py_work_dir": str(tmp / "job"),
        "grenade_py_become": False,
        **more,
    }


def single_node(
    tmp: Path, install: dict[str, str], projects: Path, **more: Any
) -> tuple[Build, Path]:
    job = check().job("check", "grenade-py-lite")
    out = tmp / "zuul-output"
    settings = job_settings(
        tmp,
        install,
        grenade_py_projects_dirs=[str(projects)],
        grenade_py_config={"enabled_services": "alpha,beta", "timeout": 60},
        zuul_output_dir=str(out),
        **more,
    )
    host = node_vars("127.0.0.1", ansible_connection="local")
    inventory = validate.inventory(job, {"controller": host}, settings)
    extra = zuul_vars(job.name, install["src"], tmp / "executor-logs")
    return run_build(tmp, job, inventory, extra, "-c", "local"), out / "logs" / "grenade"


def ran_tasks(output: str) -> list[str]:
    return [
        line.split(" : ", 1)[1].split("]", 1)[0]
        for line in output.splitlines()
        if line.startswith("TASK [grenade-py : grenade ")
    ]


def junit(path: Path) -> tuple[int, int]:
    """(testcases, failures) of a junit.xml."""
    root = ET.parse(path).getroot()
    cases = root.findall(".//testcase")
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    return len(cases), len(failed)


def test_single_node_job_runs_each_phase_and_collects_the_logs(tmp_path, install):
    build, logs = single_node(tmp_path, install, FIXTURES / "projects")
    assert build.rc("pre-run") == 0, build.output("pre-run")[-3000:]
    assert build.rc("run") == 0, build.output("run")[-5000:]
    assert build.rc("post-run") == 0, build.output("post-run")[-3000:]
    run = build.output("run")
    # one task per phase on the job's console, in order
    assert ran_tasks(run) == [f"grenade {p}" for p in PHASES]
    # the inventory mapping's summary, then the phases' own output
    assert "host controller: local, groups controller tempest" in run
    assert trace(tmp_path / "stack") == FULL_FLOW_TRACE
    config = yaml.safe_load((tmp_path / "job" / "run.yaml").read_text())["grenade"]
    assert config["base"] == {"branch": "stable/2025.2"}  # the job's grenade_from_branch
    assert config["trees"] == {"prepared": True}
    # staged for zuul-jobs' fetch-output: logs, step logs, reports, save dir
    assert (logs / "grenade.log").is_file()
    assert (logs / "grenade.sh.log").resolve() == (logs / "grenade.log").resolve()
    assert any((logs / "steps").glob("*-upgrade_alpha@controller.log"))
    assert "</html>" in (logs / "report" / "report.html").read_text()
    report = json.loads((logs / "report" / "report.json").read_text())
    assert report["outcome"] == "passed" and {s["status"] for s in report["steps"]} == {"done"}
    cases, failures = junit(logs / "report" / "junit.xml")
    assert cases >= len(report["steps"]) and failures == 0
    state = json.loads((logs / "save" / "run-state.json").read_text())
    assert all(s["status"] == "done" for s in state["steps"].values())


def test_a_failing_hook_fails_the_job_and_its_logs_are_still_collected(tmp_path, install):
    # grenade_localrc reaches every hook through GRENADE_DIR/localrc: the fixture's
    # alpha fails its verify_noapi when FAIL_IN names it
    build, logs = single_node(
        tmp_path,
        install,
        FIXTURES / "projects",
        grenade_localrc={"FAIL_IN": "verify-noapi/alpha"},
    )
    assert build.rc("pre-run") == 0, build.output("pre-run")[-3000:]
    run = build.output("run")
    assert build.rc("run") != 0, run[-3000:]
    # the phase that failed is the last that ran; verify and destroy never started
    assert ran_tasks(run) == ["grenade setup", "grenade base", "grenade upgrade"]
    # the job's console names the step, host and exit code, and shows the log's end
    assert "rc: 3" in run
    assert (
        "FAILED step verify-noapi/alpha: project alpha, phase verify-noapi, host controller, "
        "exit code 3" in run
    )
    assert "| alpha: resource widget is broken" in run
    assert build.rc("post-run") == 0, build.output("post-run")[-3000:]
    assert "alpha: resource widget is broken" in (logs / "grenade.log").read_text()
    assert "</html>" in (logs / "report" / "report.html").read_text()
    report = json.loads((logs / "report" / "report.json").read_text())
    assert report["outcome"] == "failed"
    failed = [s for s in report["steps"] if s["status"] == "failed"]
    assert [s["kind"] for s in failed] == ["verify-noapi"], failed
    assert junit(logs / "report" / "junit.xml")[1] >= 1
    state = json.loads((logs / "save" / "run-state.json").read_text())
    assert "failed" in {s["status"] for s in state["steps"].values()}


# -- multinode: two sshd nodes -------------------------------------------------------------

SETTINGS = "register_project_for_upgrade memo\nregister_project_groups memo controller subnode\n"
# Records where each hook ran; the controller's create saves a value that
# verify_noapi on both nodes reads.
RESOURCES = """set -o errexit
source "$GRENADE_DIR/grenaderc"
source "$GRENADE_DIR/functions"
echo "$GRENADE_PHASE $GRENADE_HOST $*" >> "$SAVE_DIR/where.log"
case $1 in
create) resource_save memo token "made on $GRENADE_HOST" ;;
verify_noapi)
    [[ $(resource_get memo token) == "made on controller" ]] || die $LINENO "memo lost"
    resource_result memo token pass "read on $GRENADE_HOST"
    ;;
esac
"""
UPGRADE = 'echo "$GRENADE_PHASE $GRENADE_HOST upgrade" >> "$SAVE_DIR/where.log"\n'


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SshdServer]]:
    """The nodeset's two nodes as sshd servers, each logging in to a home of its own."""
    skip_without_sshd()
    base = tmp_path_factory.mktemp("nodes")
    (base / "home-controller").mkdir()
    (base / "home-compute1").mkdir()
    with (
        running_sshd(
            tmp_path_factory.mktemp("controller"), "127.0.0.2", home=base / "home-controller"
        ) as controller,
        running_sshd(
            tmp_path_factory.mktemp("compute1"), "127.0.0.3", home=base / "home-compute1"
        ) as compute1,
    ):
        yield {"controller": controller, "compute1": compute1}


def git_tree(path: Path) -> None:
    """A devstack tree as Zuul's roles leave it: a git checkout."""
    path.mkdir(parents=True)
    (path / "stackrc").write_text(f"# {path.parent.name}\n")
    subprocess.run(["git", "-C", str(path), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "tree"], check=True)


def test_multinode_job_upgrades_the_controller_only_over_ssh(tmp_path, install, nodes):
    job = check().job("check", "grenade-py-multinode")
    assert job.nodes == ("controller", "compute1")
    projects = tmp_path / "projects" / "30_memo"
    projects.mkdir(parents=True)
    (projects / "settings").write_text(SETTINGS)
    (projects / "upgrade.sh").write_text(UPGRADE)
    (projects / "shutdown.sh").write_text(UPGRADE.replace("upgrade", "shutdown"))
    (projects / "resources.sh").write_text(RESOURCES)
    stack = tmp_path / "stack"
    for side in ("old", "new"):  # what devstack's (stubbed) roles would have prepared
        git_tree(stack / side / "devstack")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(n.known_hosts.read_text() for n in nodes.values()))
    settings = job_settings(
        tmp_path,
        install,
        grenade_py_projects_dirs=[str(tmp_path / "projects")],
        grenade_py_known_hosts=str(known_hosts),
        grenade_py_ssh_user=getpass.getuser(),  # the devstack job's `stack` is not here
        grenade_py_config={"enabled_services": "memo", "timeout": 60},
    )
    hosts = {
        name: node_vars(
            server.host,
            ansible_port=server.port,
            ansible_ssh_private_key_file=str(server.key_filename),
            ansible_ssh_common_args=f"-o UserKnownHostsFile={known_hosts}",
            zuul_output_dir=str(tmp_path / f"output-{name}"),
        )
        for name, server in nodes.items()
    }
    # each node its own stack_root, as a host-var (Zuul's host-vars) would set
    hosts["compute1"]["grenade_py_stack_root"] = str(tmp_path / "compute1-stack")
    inventory = validate.inventory(job, hosts, settings)
    extra = zuul_vars(job.name, install["src"], tmp_path / "executor-logs")
    build = run_build(tmp_path, job, inventory, extra)

    assert build.rc("pre-run") == 0, build.output("pre-run")[-3000:]
    run = build.output("run")
    assert build.rc("run") == 0, run[-5000:]
    assert build.rc("post-run") == 0, build.output("post-run")[-3000:]
    # devstack's orchestrate-devstack (a stand-in here) ran on both nodes first
    assert run.count("stub of devstack's orchestrate-devstack") == 2
    assert ran_tasks(run) == [f"grenade {p}" for p in PHASES]
    assert f"host compute1: {getpass.getuser()}@127.0.0.3 port {nodes['compute1'].port}" in run
    assert "upgrade_groups: controller" in run
    where = (stack / "save" / "where.log").read_text().splitlines()
    node_where = (tmp_path / "compute1-stack" / "save" / "where.log").read_text().splitlines()
    # upgrade_groups [controller]: shutdown and upgrade on the controller only;
    # verify_noapi on both nodes, reading what the controller's create saved
    assert "shutdown controller shutdown" in where and "upgrade controller upgrade" in where
    assert "verify-noapi controller verify_noapi pre-upgrade" in where
    assert node_where == ["verify-noapi compute1 verify_noapi pre-upgrade"]
    # each node staged its own logs: the controller's reports, the node's step log
    ctl = tmp_path / "output-controller" / "logs" / "grenade"
    report = json.loads((ctl / "report" / "report.json").read_text())
    assert report["outcome"] == "passed"
    assert "</html>" in (ctl / "report" / "report.html").read_text()
    assert junit(ctl / "report" / "junit.xml")[1] == 0
    sub = tmp_path / "output-compute1" / "logs" / "grenade"
    assert [p.name for p in (sub / "steps").iterdir()] == [
        next(p.name for p in (ctl / "steps").glob("*verify-noapi_memo*@compute1.log"))
    ]
