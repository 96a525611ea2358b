"""Where the configuration comes from, and the rules each source is checked by.

The schema and the defaults (the one place they live), the check of one source
that names key, file and line, invoke's sources and the `INVOKE_GRENADE_*`
environment read strictly, and the variables a grenade-style ``localrc`` sets.
`grenade.config` builds the typed configuration from what passes here.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from . import PACKAGE_DIR, PROJECTS_DIR
from .config_hosts import HOST_CHECKS
from .config_origin import ENV_SOURCE, yaml_key_line
from .deployers.registry import DEPLOYERS
from .errors import ConfigError

DATABASES = ("postgresql", "mysql", "sqlite")

# A schema entry is a type (or tuple of types) for a leaf, or a dict for a section.
# `None` in a tuple means the key may be null.
TREE_SCHEMA: dict[str, Any] = {
    "repo": (str, type(None)),
    "branch": str,
    "ref": (str, type(None)),
    "release": (str, type(None)),
}

SCHEMA: dict[str, Any] = {
    "stack_root": str,
    "deployer": str,
    "base": TREE_SCHEMA,
    "target": TREE_SCHEMA,
    "trees": {
        "prepared": bool,
        "force": bool,
        "base_name": str,
        "target_name": str,
        "cache_dir": (str, type(None)),
    },
    "projects_dirs": list,
    "plugins": list,
    "plugin_dir": (str, type(None)),
    "enabled_services": (str, list),
    "timeout": (int, float),
    "verify_resources": bool,
    "localrc_file": (str, type(None)),
    "pluginrc_file": (str, type(None)),
    "grenade_localrc": dict,
    "localrc": dict,
    "smoke_command": (str, list, type(None)),
    "run_smoke": bool,
    "stack_user": (str, type(None)),
    "database": str,
    "verbose": bool,
    "secret_names": list,
    # {side: {service: {repo, ref, version}}}: a service from git instead of PyPI
    "services_from_git": {"base": dict, "target": dict},
    "hosts": dict,  # multinode: nodes, groups, host keys (grenade.config_hosts)
    "groups": dict,
    "upgrade_groups": (list, type(None)),
    "known_hosts": str,
    "accept_new_host_keys": bool,
}

PLUGIN_SCHEMA: dict[str, Any] = {"name": str, "repo": str, "branch": (str, type(None))}

DEFAULTS: dict[str, Any] = {
    "stack_root": "/opt/stack",
    "deployer": "lite",
    "base": {"repo": None, "branch": "stable/2025.2", "ref": None, "release": None},
    "target": {"repo": None, "branch": "stable/2026.1", "ref": None, "release": None},
    "trees": {
        "prepared": False,
        "force": False,
        "base_name": "old",
        "target_name": "new",
        "cache_dir": None,
    },
    "projects_dirs": [str(PROJECTS_DIR)],
    "plugins": [],
    "plugin_dir": None,
    "enabled_services": "key,placement-api,g-api,s-proxy,s-account,s-container,s-object",
    "timeout": 1800,
    "verify_resources": True,
    "localrc_file": None,
    "pluginrc_file": None,
    "grenade_localrc": {},
    "localrc": {},
    "smoke_command": None,
    "run_smoke": True,
    "stack_user": None,
    "database": "postgresql",
    "verbose": False,
    "secret_names": [],
    "services_from_git": {"base": {}, "target": {}},
    "hosts": {},  # none: everything runs on this machine, the controller
    "groups": {},
    "upgrade_groups": None,  # None: every group (a full upgrade)
    "known_hosts": "~/.ssh/known_hosts",
    "accept_new_host_keys": False,
}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _list_of_str(value: Any) -> str | None:
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    return None


def _shell_vars(value: dict[str, Any]) -> str | None:
    for key, val in value.items():
        if not (isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)):
            return f"has {key!r}, which is not a shell variable name"
        if val is not None and not isinstance(val, str | int | float | bool):
            return f"{key} must be a string, number or bool, got {_type_name(val)}"
    return None


def _shell_names(value: list[Any]) -> str | None:
    for name in value:
        if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)):
            return f"has {name!r}, which is not a shell variable name"
    return None


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def _dir_name(value: str) -> str | None:
    if not value or "/" in value or value in (".", ".."):
        return f"must be a single directory name, got {value!r}"
    return None


def _stack_root(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    root = Path(value).expanduser().absolute()
    # clean removes what it made under stack_root: never let that reach grenade itself
    # (the installed package, or the checkout holding it) or a system directory.
    if root == Path("/") or root == PACKAGE_DIR or root in PACKAGE_DIR.parents:
        return (
            f"must not be / or contain the grenade checkout or package ({PACKAGE_DIR}), "
            f"got {value!r}"
        )
    return None


GIT_SOURCE_KEYS = ("repo", "ref", "version")


def _git_sources(value: dict[str, Any]) -> str | None:
    """``{service: {repo, ref, version}}``: what the tree's ``<SERVICE>_REPO``,
    ``<SERVICE>_BRANCH`` and ``<SERVICE>_PBR_VERSION`` become (git and uv get them
    as arguments: none may pass for an option)."""
    for service, source in value.items():
        if not (isinstance(service, str) and re.fullmatch(r"[a-z0-9_]+", service)):
            return f"has {service!r}, which is not a lite service name (lib/<name>)"
        if not isinstance(source, dict):
            return f"{service} must be a mapping (repo, ref, version), got {_type_name(source)}"
        unknown = sorted(set(source) - set(GIT_SOURCE_KEYS))
        if unknown:
            return f"{service} has unknown key {unknown[0]!r} (known: {', '.join(GIT_SOURCE_KEYS)})"
        for key in GIT_SOURCE_KEYS:
            val = source.get(key)
            if val is None and key != "repo":
                continue
            if not isinstance(val, str) or not val.strip():
                return f"{service}.{key} must be a non-empty string, got {_type_name(val)}"
            if val.startswith("-"):
                return f"{service}.{key} must not start with '-', got {val!r}"
        repo = source["repo"]
        # a relative path would mean a different repository in each tree's directory
        if "://" not in repo and ":" not in repo and not os.path.isabs(repo):
            return f"{service}.repo must be a URL or an absolute path, got {repo!r}"
    return None


VALUE_CHECKS: dict[tuple[str, ...], Any] = {
    ("stack_root",): _stack_root,
    ("deployer",): _one_of(DEPLOYERS),
    ("database",): _one_of(DATABASES),
    ("timeout",): lambda v: None if v > 0 else f"must be more than 0 seconds, got {v}",
    ("projects_dirs",): _list_of_str,
    ("enabled_services",): _list_of_str,
    ("smoke_command",): _list_of_str,
    ("grenade_localrc",): _shell_vars,
    ("localrc",): _shell_vars,
    ("secret_names",): _shell_names,
    ("trees", "base_name"): _dir_name,
    ("trees", "target_name"): _dir_name,
    ("services_from_git", "base"): _git_sources,
    ("services_from_git", "target"): _git_sources,
    **HOST_CHECKS,  # these name the entry at fault: (keys under the checked one, why)
}


def _type_names(expected: Any) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def key_sources(
    layers: list[tuple[str, dict[str, Any]]], schema: dict[str, Any] = SCHEMA
) -> dict[str, str]:
    """Which source set each leaf key last (`base.branch` -> a file), for messages."""
    sources: dict[str, str] = {}

    def walk(layer: dict[str, Any], schema: dict[str, Any], prefix: str, source: str) -> None:
        for key, value in layer.items():
            dotted = f"{prefix}{key}"
            if isinstance(schema.get(key), dict) and isinstance(value, dict):
                walk(value, schema[key], dotted + ".", source)
            else:
                sources[dotted] = source

    for source, layer in layers:
        walk(layer, schema, "", source)
    return sources


def validate_layer(
    data: Any, source: str, schema: dict[str, Any] = SCHEMA, prefix: tuple[str, ...] = ("grenade",)
) -> None:
    """Check one config source against the schema; the error names key, file and line."""

    def fail(keys: tuple[str, ...], why: str) -> None:
        where = source
        if os.path.isfile(source):
            line = yaml_key_line(source, list(keys))
            if line:
                where = f"{source}:{line}"
        raise ConfigError(f"{where}: config key '{'.'.join(keys)}' {why}")

    if not isinstance(data, dict):
        fail(prefix, f"must be a mapping, got {_type_name(data)}")
    for key, value in data.items():
        keys = (*prefix, str(key))
        if key not in schema:
            known = ", ".join(sorted(schema))
            fail(keys, f"is unknown (known keys: {known})")
        expected = schema[key]
        if isinstance(expected, dict):
            validate_layer(value, source, expected, keys)
            continue
        # bool is an int subclass; a timeout of `true` is still a mistake.
        if isinstance(value, bool) and bool not in (
            expected if isinstance(expected, tuple) else (expected,)
        ):
            fail(keys, f"must be {_type_names(expected)}, got bool")
        if not isinstance(value, expected):
            fail(keys, f"must be {_type_names(expected)}, got {type(value).__name__}")
        if keys == ("grenade", "plugins"):
            for i, item in enumerate(value):
                validate_layer(item, source, PLUGIN_SCHEMA, (*keys, str(i)))
                missing = [k for k in ("name", "repo") if k not in item]
                if missing:
                    fail((*keys, str(i)), f"needs {' and '.join(missing)}")
        check = VALUE_CHECKS.get(keys[1:])
        problem = check(value) if check else None
        if problem:
            sub, why = problem if isinstance(problem, tuple) else ((), problem)
            fail((*keys, *sub), why)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# how the run is carried out, not what it is: changing them does not block --resume
RUNTIME_KEYS = ("timeout", "verbose", "secret_names")


def env_skeleton(tree: dict[str, Any] = DEFAULTS) -> dict[str, Any]:
    """The config tree with every leaf None, for invoke's `ns.configure`.

    invoke maps INVOKE_GRENADE_* onto keys that exist and casts them by the type
    of the value it finds: `bool("False")` would be True and `int("abc")` a
    traceback. With None leaves it passes the raw strings, which `cast_env` reads
    strictly, naming the variable on error.
    """
    return {k: env_skeleton(v) if isinstance(v, dict) else None for k, v in tree.items()}


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def cast_env(
    layer: dict[str, Any], schema: dict[str, Any] = SCHEMA, prefix: tuple[str, ...] = ("grenade",)
) -> dict[str, Any]:
    """Typed values from the environment's raw strings (see `env_skeleton`)."""
    out: dict[str, Any] = {}
    for key, value in layer.items():
        expected = schema.get(key)
        keys = (*prefix, key)
        var = "INVOKE_" + "_".join(keys).upper()
        if value is None:
            continue
        if isinstance(expected, dict) and isinstance(value, dict):
            out[key] = cast_env(value, expected, keys)
            continue
        types = expected if isinstance(expected, tuple) else (expected,)
        if not isinstance(value, str) or str in types:
            out[key] = value
        elif bool in types:
            if value.lower() not in _TRUE + _FALSE:
                raise ConfigError(f"{ENV_SOURCE}: {var}={value!r} must be true or false")
            out[key] = value.lower() in _TRUE
        elif int in types or float in types:
            try:
                out[key] = float(value) if "." in value else int(value)
            except ValueError:
                raise ConfigError(f"{ENV_SOURCE}: {var}={value!r} must be a number") from None
        elif key == "projects_dirs":
            out[key] = [p for p in value.split(os.pathsep) if p]
        else:
            raise ConfigError(
                f"{ENV_SOURCE}: {var} cannot be set from the environment; use a config file"
            )
    return out


def layers_from_invoke(config: Any) -> list[tuple[str, dict[str, Any]]]:
    """The `grenade:` part of each invoke config source, with the file it came from."""
    layers: list[tuple[str, dict[str, Any]]] = []
    for prefix in ("system", "user", "project", "env", "runtime"):
        data = getattr(config, f"_{prefix}", None) or {}
        if "grenade" not in data:
            continue
        layer = data["grenade"]
        if prefix == "env":
            layers.append((ENV_SOURCE, cast_env(layer)))
            continue
        source = getattr(config, f"_{prefix}_path", None) or prefix
        layers.append((str(source), layer))
    overrides = getattr(config, "_overrides", None) or {}
    if "grenade" in overrides:
        layers.append(("command line", overrides["grenade"]))
    return layers


# grenade localrc variables that are also config keys (section, key).
LOCALRC_KEYS: dict[str, tuple[str, ...]] = {
    "BASE_DEVSTACK_BRANCH": ("base", "branch"),
    "TARGET_DEVSTACK_BRANCH": ("target", "branch"),
    "PLUGIN_DIR": ("plugin_dir",),  # Zuul: $TARGET_RELEASE_DIR, where it checked plugins out
}


def has_path(data: dict[str, Any], path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def read_localrc(path: Path) -> dict[str, str]:
    """The variables a grenade-style localrc sets, as bash sees them.

    It is bash (`K=V`, sometimes with `$OTHER` references), so bash evaluates it;
    its values are read back NUL-separated, never evaluated here.
    """
    names = " ".join(LOCALRC_KEYS)
    script = (
        f'source "$1" >/dev/null 2>&1 </dev/null; for n in {names}; do '
        'printf "%s\\0%s\\0" "$n" "${!n-__unset__}"; done'
    )
    proc = subprocess.run(
        ["bash", "-c", script, "localrc", str(path)],
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "")},
        timeout=30,
    )
    parts = proc.stdout.decode(errors="replace").split("\0")
    return {
        parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2) if parts[i + 1] != "__unset__"
    }
