"""grenade.zuul.jobconfig as data: a Zuul job's variables and inventory (as the run
playbook writes them) into the `grenade:` config, checked by grenade's own loader."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from grenade.config import GrenadeConfig
from grenade.errors import ConfigError
from grenade.zuul.jobconfig import (
    JOB_VARIABLES,
    NODE_VARIABLES,
    JobConfigError,
    grenade_config,
    main,
    write,
)


def node(address: str | None, **more: Any) -> dict[str, Any]:
    hv: dict[str, Any] = {"ansible_host": "203.0.113.9", "ansible_port": 22, "ansible_user": "zuul"}
    if address:
        hv["nodepool"] = {"private_ipv4": address, "public_ipv4": "203.0.113.9"}
    return {**hv, **more}


def two_nodes(**variables: Any) -> dict[str, Any]:
    """What the run playbook writes for devstack's two-node nodeset."""
    return {
        "vars": variables,
        "node": "controller",
        "hostvars": {"controller": node("10.0.0.11"), "compute1": node("10.0.0.12")},
        "groups": {
            "all": ["controller", "compute1"],
            "ungrouped": [],
            "zuul_unreachable": [],
            "tempest": ["controller"],
            "compute": ["controller", "compute1"],
            "subnode": ["compute1"],
        },
        "home": "/home/zuul",
    }


def test_each_node_becomes_a_host_and_each_group_a_group():
    grenade = grenade_config(two_nodes())
    assert grenade["hosts"] == {
        "controller": {"host": "local"},  # grenade runs there: no SSH to itself
        "compute1": {"host": "10.0.0.12", "user": "zuul", "port": 22},  # private address
    }
    assert grenade["groups"] == {
        "controller": ["controller"],  # the node named controller
        "tempest": ["controller"],
        "compute": ["controller", "compute1"],
        "subnode": ["compute1"],
    }
    assert grenade["known_hosts"] == "/etc/ssh/ssh_known_hosts"  # multi-node-known-hosts'
    assert grenade["deployer"] == "lite" and grenade["stack_root"] == "/opt/stack"
    assert "upgrade_groups" not in grenade  # grenade's default: every group


def test_address_user_key_and_stack_root_of_a_node():
    doc = two_nodes(grenade_py_ssh_user="stack", grenade_py_ssh_key="/home/zuul/.ssh/id_rsa")
    doc["hostvars"]["compute1"] = node(
        None, ansible_port=2222, grenade_py_stack_root="/srv/stack", ansible_user="ubuntu"
    )
    assert grenade_config(doc)["hosts"]["compute1"] == {
        "host": "203.0.113.9",  # no nodepool.private_ipv4: ansible_host
        "user": "stack",
        "port": 2222,
        "key_filename": "/home/zuul/.ssh/id_rsa",
        "stack_root": "/srv/stack",
    }
    doc = two_nodes()
    doc["hostvars"]["compute1"]["ansible_ssh_private_key_file"] = "/keys/node"
    assert grenade_config(doc)["hosts"]["compute1"]["key_filename"] == "/keys/node"


def test_a_controller_group_of_the_nodeset_is_kept_and_comes_first():
    doc = two_nodes()
    doc["groups"]["controller"] = ["compute1"]  # the nodeset's own, whatever it holds
    assert list(grenade_config(doc)["groups"])[0] == "controller"
    assert grenade_config(doc)["groups"]["controller"] == ["compute1"]


def test_a_node_in_no_group_is_left_out_and_said(tmp_path):
    doc = two_nodes(grenade_py_projects_dirs=[str(tmp_path)])
    doc["hostvars"]["spare"] = node("10.0.0.13")
    doc["groups"]["all"].append("spare")
    assert "spare" not in grenade_config(doc)["hosts"]
    text = write(doc, tmp_path / "run.yaml")
    assert "node spare: in no group of the nodeset, not used by grenade" in text
    assert "host compute1: zuul@10.0.0.12 port 22, groups compute subnode" in text
    assert "host controller: local, groups controller tempest compute" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["hostvars"].pop("controller") and d["groups"].pop("tempest"),
            "the nodeset has no node named 'controller' and no group 'controller'",
        ),
        (
            lambda d: (
                d.update(node="compute1")
                or d["groups"].pop("subnode")
                and d["groups"].pop("compute")
            ),
            "grenade runs on 'compute1', which is in no group of the nodeset",
        ),
        (
            lambda d: d["hostvars"].update(compute1={"ansible_user": "zuul"}),
            "node 'compute1' has neither nodepool.private_ipv4 nor ansible_host",
        ),
        (
            lambda d: d["vars"].update(grenade_plugins=["heat"]),
            "grenade_plugins must map a plugin name to its repository URL",
        ),
    ],
)
def test_an_inventory_grenade_cannot_use_is_refused(change, message):
    doc = two_nodes()
    change(doc)
    with pytest.raises(JobConfigError, match=message.replace("(", r"\(")):
        grenade_config(doc)


def test_the_originals_variables_keep_their_meaning():
    grenade = grenade_config(
        two_nodes(
            grenade_from_branch="stable/2025.1",
            grenade_to_branch="stable/2026.1",
            grenade_localrc={"BASE_RUN_SMOKE": False, "MY_SETTING": "a b"},
            grenade_devstack_localrc={"shared": {"DATABASE_TYPE": "mysql"}, "old": {"X": 1}},
            devstack_bases={"shared": "/srv/st", "old": "/srv/st/base", "new": "/srv/st/target"},
        )
    )
    assert grenade["base"] == {"branch": "stable/2025.1"}
    assert grenade["target"] == {"branch": "stable/2026.1"}
    assert grenade["grenade_localrc"] == {"BASE_RUN_SMOKE": False, "MY_SETTING": "a b"}
    assert grenade["localrc"] == {"DATABASE_TYPE": "mysql"}
    assert grenade["stack_root"] == "/srv/st"
    assert grenade["trees"] == {"base_name": "base", "target_name": "target"}
    # grenade_py_stack_root says it plainly and wins
    assert (
        grenade_config(two_nodes(grenade_py_stack_root="/x", devstack_bases={"shared": "/y"}))[
            "stack_root"
        ]
        == "/x"
    )


def test_external_uses_the_trees_and_plugins_zuul_prepared():
    grenade = grenade_config(
        two_nodes(grenade_py_deployer="external", devstack_bases={"shared": "/opt/stack"})
    )
    assert grenade["trees"] == {"prepared": True}
    assert grenade["plugin_dir"] == "/opt/stack/new"  # the original's PLUGIN_DIR


def test_a_plugin_zuul_checked_out_is_used_from_its_checkout():
    doc = two_nodes(
        grenade_plugins={
            "myplugin": "https://opendev.org/x/myplugin",
            "heat": {"repo": "https://opendev.org/openstack/heat.git", "branch": "stable/2026.1"},
            "other": "https://example.org/other.git",
        }
    )
    doc["zuul_projects"] = {
        "opendev.org/x/myplugin": {"src_dir": "src/opendev.org/x/myplugin", "checkout": "master"},
        "opendev.org/openstack/heat": {
            "src_dir": "src/opendev.org/openstack/heat",
            "checkout": "stable/2026.1",
        },
    }
    assert grenade_config(doc)["plugins"] == [
        {"name": "myplugin", "repo": "/home/zuul/src/opendev.org/x/myplugin", "branch": "master"},
        {
            "name": "heat",
            "repo": "/home/zuul/src/opendev.org/openstack/heat",
            "branch": "stable/2026.1",
        },
        {"name": "other", "repo": "https://example.org/other.git"},
    ]
    # devstack_plugins, as the original's pluginrc, when grenade_plugins is unset
    doc = two_nodes(devstack_plugins={"p": "https://example.org/p"})
    assert grenade_config(doc)["plugins"] == [{"name": "p", "repo": "https://example.org/p"}]


def test_grenade_py_config_sets_any_key_last():
    grenade = grenade_config(
        two_nodes(
            grenade_py_upgrade_groups=["controller"],
            grenade_py_config={
                "timeout": 600,
                "trees": {"cache_dir": "/c"},
                "upgrade_groups": None,
            },
            grenade_py_deployer="external",
        )
    )
    assert grenade["timeout"] == 600
    assert grenade["trees"] == {"prepared": True, "cache_dir": "/c"}  # merged, not replaced
    assert grenade["upgrade_groups"] is None


def test_the_written_config_is_private_and_grenades_loader_accepts_it(tmp_path):
    doc = two_nodes(
        grenade_py_projects_dirs=[str(tmp_path)], grenade_py_upgrade_groups=["controller"]
    )
    out = tmp_path / "run.yaml"
    write(doc, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    cfg = GrenadeConfig.from_file(out)
    assert cfg.upgrade_groups == ("controller",)
    assert yaml.safe_load(out.read_text())["grenade"]["groups"]["subnode"] == ["compute1"]


def test_a_config_grenade_refuses_fails_with_grenades_message(tmp_path, capsys):
    doc = two_nodes(grenade_py_projects_dirs=[str(tmp_path)], grenade_py_upgrade_groups=["storage"])
    with pytest.raises(ConfigError, match="storage"):
        write(doc, tmp_path / "run.yaml")
    job = tmp_path / "zuul-job.json"
    job.write_text(json.dumps(doc))
    assert main([str(job), str(tmp_path / "run.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("grenade.zuul.jobconfig: ") and "upgrade_groups" in err
    assert main([str(job)]) == 2


def test_the_playbook_passes_every_variable_the_mapping_reads():
    """roles/grenade-py/vars/main.yaml lists what the run playbook writes; the
    mapping reads those and no others."""
    listed = yaml.safe_load(
        (Path(__file__).parent.parent / "roles" / "grenade-py" / "vars" / "main.yaml").read_text()
    )
    assert listed["grenade_py_job_variables"] == list(JOB_VARIABLES)
    assert listed["grenade_py_node_variables"] == list(NODE_VARIABLES)
    # a variable it does not list is not read, whatever the document holds
    assert grenade_config(two_nodes(grenade_py_nonsense="x")) == grenade_config(two_nodes())


def test_the_docs_example_is_what_the_mapping_does(tmp_path):
    """doc/zuul-jobs.md's inventory, config and console example, run."""
    text = (Path(__file__).parent.parent / "doc" / "zuul-jobs.md").read_text()
    section = text.split("## The inventory mapping", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("\n", 1)[1] for b in section.split("```")[1::2]]
    inventory, config, console = (
        yaml.safe_load(blocks[0])["all"],
        yaml.safe_load(blocks[1]),
        blocks[2],
    )
    inventory["vars"] = {
        "grenade_py_deployer": "external",
        "grenade_py_upgrade_groups": ["controller"],
        "grenade_py_ssh_user": "stack",
    }
    doc = {
        "vars": inventory["vars"],
        "node": "controller",
        "hostvars": inventory["hosts"],
        "groups": {g: list(v["hosts"]) for g, v in inventory["children"].items()},
    }
    assert grenade_config(doc) == config["grenade"]
    doc["vars"]["grenade_py_projects_dirs"] = [str(tmp_path)]
    assert write(doc, tmp_path / "run.yaml") == console.strip()
