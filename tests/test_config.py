"""Configuration: defaults, validation errors naming key, file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from grenade.config import GrenadeConfig, TreeSource
from grenade.config_sources import DEFAULTS
from grenade.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_default(tmp_path: Path):
    cfg = GrenadeConfig.load([], cwd=tmp_path)
    assert cfg.deployer == "lite"
    assert cfg.base.branch == "stable/2025.2"
    assert cfg.target.branch == "stable/2026.1"
    assert cfg.timeout == DEFAULTS["timeout"] == 1800


def test_nested_unknown_key_names_file_and_line(tmp_path: Path):
    path = write(
        tmp_path / "run.yaml",
        "grenade:\n  stack_root: /x\n  base:\n    branch: stable/2025.1\n    sha: abc\n",
    )
    with pytest.raises(ConfigError) as err:
        GrenadeConfig.from_file(path)
    assert str(err.value).startswith(f"{path}:5: config key 'grenade.base.sha' is unknown")


def test_wrong_type_in_plugin_entry(tmp_path: Path):
    path = write(tmp_path / "run.yaml", "grenade:\n  plugins:\n    - {name: heat, repo: 3}\n")
    with pytest.raises(ConfigError, match=r"'grenade.plugins.0.repo' must be str, got int"):
        GrenadeConfig.from_file(path)


def test_bool_is_not_a_timeout(tmp_path: Path):
    path = write(tmp_path / "run.yaml", "grenade:\n  timeout: true\n")
    with pytest.raises(ConfigError, match="'grenade.timeout' must be int or float, got bool"):
        GrenadeConfig.from_file(path)


def test_layers_merge_later_wins(tmp_path: Path):
    cfg = GrenadeConfig.load(
        [
            ("a.yaml", {"base": {"branch": "stable/2025.1"}}),
            ("b.yaml", {"base": {"ref": "v1"}, "timeout": 5}),
        ],
        cwd=tmp_path,
    )
    assert cfg.base == TreeSource(repo=None, branch="stable/2025.1", ref="v1", release=None)
    assert cfg.timeout == 5


def test_rc_files_found_in_current_directory(tmp_path: Path):
    write(tmp_path / "localrc", "BASE_RUN_SMOKE=False\n")
    write(tmp_path / "pluginrc", "enable_grenade_plugin heat https://x/heat\n")
    cfg = GrenadeConfig.load([], cwd=tmp_path)
    assert cfg.localrc_file == str(tmp_path / "localrc")
    assert cfg.pluginrc_file == str(tmp_path / "pluginrc")


def test_missing_rc_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="grenade.pluginrc_file': no such file"):
        GrenadeConfig.load([("x.yaml", {"pluginrc_file": str(tmp_path / "nope")})], cwd=tmp_path)


def test_digest_changes_with_config_and_rc_file(tmp_path: Path):
    rc = write(tmp_path / "localrc", "A=1\n")
    a = GrenadeConfig.load([("x", {"localrc_file": str(rc)})], cwd=tmp_path).digest()
    write(rc, "A=2\n")
    b = GrenadeConfig.load([("x", {"localrc_file": str(rc)})], cwd=tmp_path).digest()
    assert a != b


def test_zuul_localrc_branches_apply_unless_config_sets_them(tmp_path: Path):
    rc = write(
        tmp_path / "localrc",
        "BASE_RELEASE=old\nBASE_DEVSTACK_BRANCH=stable/2025.1\n"
        "TARGET_DEVSTACK_BRANCH=master\nSAVE_DIR=$BASE_RELEASE/save\n",
    )
    cfg = GrenadeConfig.load([], cwd=tmp_path)
    assert cfg.localrc_file == str(rc)
    assert (cfg.base.branch, cfg.target.branch) == ("stable/2025.1", "master")
    cfg = GrenadeConfig.load([("run.yaml", {"target": {"branch": "stable/2026.1"}})], cwd=tmp_path)
    assert cfg.target.branch == "stable/2026.1"
    assert cfg.base.branch == "stable/2025.1"


@pytest.mark.parametrize(
    "text,message",
    [
        ("base: null", "'grenade.base' must be a mapping, got null"),
        ("plugins: [{}]", "'grenade.plugins.0' needs name and repo"),
        ("projects_dirs: [1]", "'grenade.projects_dirs' must be a list of strings"),
        ("smoke_command: [1, 2]", "'grenade.smoke_command' must be a list of strings"),
        ("grenade_localrc: {A-B: 1}", "has 'A-B', which is not a shell variable name"),
        ("localrc: {A: [1]}", "A must be a string, number or bool, got list"),
        # were the deployer's checks (test_devstack_deployer.py): the config owns the rule
        ("localrc: {NOT-A-NAME: x}", "has 'NOT-A-NAME', which is not a shell variable name"),
        ("localrc: {X: [a]}", "X must be a string, number or bool, got list"),
        ("localrc: X=1", "config key 'grenade.localrc' must be dict, got str"),
        ("timeout: 0", "'grenade.timeout' must be more than 0 seconds"),
        ("timeout: -5", "'grenade.timeout' must be more than 0 seconds"),
        ("stack_root: ''", "'grenade.stack_root' must not be empty"),
        ("stack_root: /", "must not be / or contain the grenade checkout"),
        ("trees: {base_name: ../../etc}", "'grenade.trees.base_name' must be a single directory"),
        ("deployer: lxc", "'grenade.deployer' must be one of lite, devstack, external"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "run.yaml", f"grenade:\n  {text}\n")
    with pytest.raises(ConfigError) as err:
        GrenadeConfig.from_file(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)


def test_an_empty_localrc_value_is_allowed(tmp_path: Path):
    path = write(tmp_path / "run.yaml", "grenade:\n  localrc: {EMPTY: , SWITCH: true}\n")
    assert GrenadeConfig.from_file(path).localrc == {"EMPTY": None, "SWITCH": True}


def test_environment_strings_are_cast_strictly():
    from grenade.config_sources import cast_env

    layer = cast_env(
        {
            "verify_resources": "False",
            "timeout": "90",
            "trees": {"prepared": "yes"},
            "projects_dirs": "/a:/b",
            "stack_root": "/s",
        }
    )
    assert layer == {
        "verify_resources": False,
        "timeout": 90,
        "trees": {"prepared": True},
        "projects_dirs": ["/a", "/b"],
        "stack_root": "/s",
    }
    with pytest.raises(ConfigError, match="INVOKE_GRENADE_TIMEOUT='abc' must be a number"):
        cast_env({"timeout": "abc"})
    with pytest.raises(ConfigError, match="INVOKE_GRENADE_VERBOSE='maybe' must be true or false"):
        cast_env({"verbose": "maybe"})
