"""zuul.d/ and playbooks/ checked by the real tools: Zuul's own loader (zuul==14.3.0:
parse, link, freeze, per pipeline) and ansible-playbook --syntax-check.

Jobs, nodesets and roles of other repositories (OpenDev's `base`, zuul-jobs'
`multinode` and roles, devstack's nodesets and roles) are stand-ins under
tests/zuul_stubs/. tests/test_zuul_playbooks.py runs the playbooks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from grenade.config import GrenadeConfig
from grenade.releases import release_name
from grenade.zuul import validate  # needs zuul==14.3.0: pip install -e '.[test]'

STUBS = REPO / "tests" / "zuul_stubs"
STUB_JOBS = STUBS / "external.yaml"
STUB_ROLES = STUBS / "roles"
# Repositories the jobs name (required-projects, roles): the tenant must know them.
KNOWN_PROJECTS = (
    "zuul/zuul-jobs",
    "openstack/devstack",
    "openstack/requirements",
    "openstack/keystone",
    "openstack/placement",
    "openstack/glance",
    "openstack/swift",
)
OURS = f"{validate.HOSTNAME}/{validate.DEFAULT_PROJECT}"


def check(root: Path = REPO) -> validate.Result:
    return validate.validate(root, stubs=STUB_JOBS, known_projects=KNOWN_PROJECTS)


@pytest.fixture(scope="module")
def result() -> validate.Result:
    return check()


def ansible_playbook() -> str:
    """ansible-playbook of this interpreter's ansible-core (a test dependency)."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    assert found, "ansible-core is not installed: pip install -e '.[test]'"
    return found


def ansible_env(tmp: Path) -> dict[str, str]:
    """Our roles and the stand-ins found by name, as Zuul finds them in the
    repositories a job names; facts gathered once per build and cached, as Zuul's
    executor configures Ansible; Ansible's own state under `tmp`, not the home."""
    return {
        **os.environ,
        "ANSIBLE_ROLES_PATH": f"{REPO / 'roles'}:{STUB_ROLES}",
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp / "fact-cache"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }


# -- Zuul's loader ---------------------------------------------------------------------------


def test_every_file_of_zuul_d_parses_links_and_freezes(result):
    assert result.errors == [] and result.warnings == []
    # every file was read and gave the layout something (Zuul reads *.yaml only)
    files = {f"zuul.d/{p.name}" for p in (REPO / "zuul.d").iterdir()}
    layout = result.layout
    objects = [
        *(job for variants in layout.jobs.values() for job in variants),
        *(t for templates in layout.project_templates.values() for t in templates),
        *(pc for configs in layout.project_configs.values() for pc in configs),
    ]
    used = {o.source_context.path for o in objects if o.source_context}
    assert files and all(f.endswith(".yaml") for f in files) and files <= used, (files, used)
    ran = {(j.pipeline, j.name): j.voting for j in result.jobs}
    assert ran == {
        ("check", "grenade-py-lite"): True,
        ("check", "grenade-py-skip-level"): True,
        ("check", "grenade-py-forward"): True,
        ("check", "grenade-py-devstack"): False,
        ("check", "grenade-py-multinode"): False,
        ("gate", "grenade-py-lite"): True,
        ("gate", "grenade-py-skip-level"): True,
        ("gate", "grenade-py-forward"): True,
    }


def test_every_job_of_ours_is_named_grenade_py(result):
    ours = [
        job.name
        for variants in result.layout.jobs.values()
        for job in variants
        if job.source_context and job.source_context.project_canonical_name == OURS
    ]
    assert len(set(ours)) == 6
    assert all(name.startswith("grenade-py-") for name in ours), ours
    base = result.layout.getJob("grenade-py-base")
    assert base.abstract and base.parent == "multinode"
    assert base.timeout == 3600 and base.irrelevant_file_matcher is not None


def test_playbooks_run_in_zuuls_order(result):
    job = result.job("check", "grenade-py-lite")
    assert [(pb.phase, pb.path) for pb in job.playbooks if pb.project == OURS] == [
        ("pre-run", "playbooks/grenade-py/pre.yaml"),
        ("run", "playbooks/grenade-py/run.yaml"),
        ("post-run", "playbooks/grenade-py/post.yaml"),
    ]
    # the parents' pre-runs come first, their post-runs (fetch-output) last
    assert job.playbooks[0].path == "playbooks/base/pre.yaml"
    assert job.playbooks[-1].path == "playbooks/base/post-logs.yaml"
    multinode = result.job("check", "grenade-py-multinode")
    assert [pb.path for pb in multinode.playbooks if pb.project == OURS] == [
        "playbooks/grenade-py/pre.yaml",
        "playbooks/grenade-py/devstack-pre.yaml",
        "playbooks/grenade-py/devstack-run.yaml",  # stacks the base, then imports run.yaml
        "playbooks/grenade-py/post.yaml",
    ]


def test_the_frozen_jobs_say_what_they_upgrade(result):
    single = result.job("gate", "grenade-py-lite")
    assert single.nodes == ("controller",)
    assert single.variables["grenade_py_deployer"] == "lite"
    assert single.required_projects == (OURS,)
    skip = result.job("gate", "grenade-py-skip-level").variables
    forward = result.job("gate", "grenade-py-forward").variables
    releases = ["2025.1", "2025.2", "2026.1"]  # the lite tree's, in order
    base, target = (release_name(skip[k]) for k in ("grenade_from_branch", "grenade_to_branch"))
    assert releases.index(target) - releases.index(base) == 2  # N-2
    assert forward["grenade_from_branch"] == forward["grenade_to_branch"]
    devstack = result.job("check", "grenade-py-devstack")
    assert devstack.variables["grenade_py_deployer"] == "external"
    assert f"{validate.HOSTNAME}/openstack/devstack" in devstack.required_projects
    multinode = result.job("check", "grenade-py-multinode")
    assert multinode.nodes == ("controller", "compute1")
    assert multinode.groups["subnode"] == ("compute1",)
    assert multinode.variables["grenade_py_upgrade_groups"] == ["controller"]
    # the parent's devstack settings reach the multinode job, deep-merged
    assert multinode.variables["grenade_devstack_localrc"]["shared"]["DATABASE_TYPE"] == "mysql"
    sub = multinode.group_variables["subnode"]["grenade_devstack_localrc"]["shared"]
    assert sub["ADMIN_PASSWORD"] == "secretadmin"  # the YAML merge key kept the shared lines
    assert "SERVICE_HOST" in sub


def _node(name: str, address: str) -> dict[str, object]:
    # what Zuul's executor adds to each node (executor/server.py getHostList)
    return {
        "ansible_host": address,
        "ansible_port": 22,
        "ansible_user": "zuul",
        "nodepool": {"private_ipv4": address, "public_ipv4": address},
    }


@pytest.mark.parametrize(
    ("pipeline", "name"), [("gate", "grenade-py-lite"), ("check", "grenade-py-multinode")]
)
def test_a_frozen_jobs_inventory_makes_a_valid_grenade_config(result, tmp_path, pipeline, name):
    """Zuul's own inventory of the frozen job, through grenade.zuul.jobconfig, is a
    config grenade's own loader accepts, with the mapping of doc/zuul-jobs.md."""
    from grenade.zuul.jobconfig import write

    job = result.job(pipeline, name)
    addresses = {"controller": "10.0.0.11", "compute1": "10.0.0.12"}
    inventory = validate.inventory(job, {n: _node(n, addresses[n]) for n in job.nodes})
    everything = inventory["all"]
    hostvars = {n: everything["hosts"][n] for n in job.nodes}
    groups = {g: list(v["hosts"]) for g, v in everything["children"].items()}
    doc = {
        "vars": {**everything["vars"], "grenade_py_projects_dirs": [str(tmp_path)]},
        "node": "controller",
        "hostvars": hostvars,
        "groups": {"all": list(job.nodes), **groups},
        "home": "/home/zuul",
    }
    out = tmp_path / "run.yaml"
    write(doc, out)
    cfg = GrenadeConfig.from_file(out)
    grenade = yaml.safe_load(out.read_text())["grenade"]
    if name == "grenade-py-lite":
        assert cfg.deployer == "lite" and not cfg.trees.prepared
        assert grenade["hosts"] == {"controller": {"host": "local"}}
        assert (cfg.base.branch, cfg.target.branch) == ("stable/2025.2", "stable/2026.1")
    else:
        assert cfg.deployer == "external" and cfg.trees.prepared
        assert grenade["hosts"]["compute1"] == {"host": "10.0.0.12", "user": "stack", "port": 22}
        assert grenade["groups"]["subnode"] == ["compute1"]
        assert grenade["groups"]["controller"] == ["controller"]
        assert grenade["upgrade_groups"] == ["controller"]
        assert grenade["known_hosts"] == "/etc/ssh/ssh_known_hosts"
        assert grenade["plugin_dir"] == "/opt/stack/new"


# Each known-bad file beside the real zuul.d/, and the words of Zuul's own message.
BAD = {
    "unknown key": (
        "- job:\n    name: grenade-py-broken\n    parent: grenade-py-lite\n    runn: x.yaml\n",
        "extra keys not allowed @ data['runn']",
    ),
    "missing parent": (
        "- job:\n    name: grenade-py-orphan\n    parent: grenade-py-nowhere\n",
        "Job grenade-py-nowhere not defined",
    ),
    "group naming a missing node": (
        "- nodeset:\n    name: grenade-py-bad-nodes\n    nodes:\n"
        "      - {name: controller, label: ubuntu-noble}\n"
        "    groups:\n      - {name: subnode, nodes: [compute1]}\n",
        'In the nodeset the group "subnode" contains a node named "compute1" which is not '
        "defined in the nodeset.",
    ),
    "unknown nodeset": (
        "- job:\n    name: grenade-py-nowhere\n    parent: grenade-py-lite\n    nodeset: no-such\n",
        'The nodeset "no-such" was not found.',
    ),
    "timeout above the tenant's": (
        "- job:\n    name: grenade-py-long\n    parent: grenade-py-lite\n    timeout: 99999\n",
        'The job "grenade-py-long" exceeds tenant max-job-timeout 10800.',
    ),
    "abstract job in a pipeline": (
        "- project:\n    check:\n      jobs: [grenade-py-base]\n",
        "check: job grenade-py-base is abstract and may not be directly run",
    ),
    "missing playbook": (
        "- job:\n    name: grenade-py-lost\n    parent: grenade-py-lite\n"
        "    run: playbooks/grenade-py/lost.yaml\n",
        "job grenade-py-lost: playbook playbooks/grenade-py/lost.yaml not found",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_known_bad_files_are_rejected_with_zuuls_message(tmp_path, case):
    text, message = BAD[case]
    root = tmp_path / "repo"
    shutil.copytree(REPO / "zuul.d", root / "zuul.d")
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    (root / "zuul.d" / "zz-bad.yaml").write_text(text)
    errors = check(root).errors
    # Zuul wraps its message's lines: compare the words
    assert errors and any(message in " ".join(e.split()) for e in errors), errors
    # Zuul's message names the file and the stanza, as it would on the change
    if case in ("unknown key", "group naming a missing node"):
        assert any('zuul.d/zz-bad.yaml@master", line 1' in e for e in errors), errors


def test_the_stubs_are_stubs_of_other_repositories_only(result):
    """A stand-in must not hide a job of ours: every stubbed name is foreign."""
    stubbed = [next(iter(item.values()))["name"] for item in yaml.safe_load(STUB_JOBS.read_text())]
    assert not any(name.startswith("grenade-py") for name in stubbed)
    assert all(not (REPO / "roles" / role.name).exists() for role in STUB_ROLES.iterdir())


# -- ansible-playbook --syntax-check ---------------------------------------------------------


def test_every_playbook_passes_ansible_syntax_check(tmp_path):
    playbooks = sorted((REPO / "playbooks").rglob("*.yaml"))
    assert len(playbooks) == 5
    proc = subprocess.run(
        [ansible_playbook(), "--syntax-check", "-i", "controller,", *map(str, playbooks)],
        capture_output=True,
        text=True,
        env=ansible_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("playbook: ") == len(playbooks)


def test_syntax_check_rejects_a_broken_playbook(tmp_path):
    """The check can fail: a misspelled module, and a role nobody provides."""
    for text, message in (
        ("- hosts: all\n  tasks:\n    - ansible.builtin.comand: true\n", "comand"),
        ("- hosts: all\n  roles:\n    - no-such-role\n", "no-such-role"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        proc = subprocess.run(
            [ansible_playbook(), "--syntax-check", "-i", "controller,", str(bad)],
            capture_output=True,
            text=True,
            env=ansible_env(tmp_path),
            timeout=120,
        )
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr
