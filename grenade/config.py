"""The run configuration: invoke's config under a ``grenade:`` key, validated.

Sources, lowest to highest precedence, are invoke's own: defaults (below), system
and user files, the project ``invoke.yaml``, ``INVOKE_GRENADE_*`` environment
variables and the runtime file (``invoke -f run.yaml``). Each source is checked on
its own so that an unknown key or a wrong type names the file it came from.

Grenade-style ``localrc`` and ``pluginrc`` files (what Zuul's ``write-grenade-conf``
writes) are accepted too: paths in config, or files of those names in the current
directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import REPO_DIR
from .errors import ConfigError

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
    "projects_dirs": [str(REPO_DIR / "projects")],
    "plugins": [],
    "plugin_dir": None,
    "enabled_services": "key,placement-api",
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
}

DEPLOYERS = ("lite", "devstack", "external")
DATABASES = ("postgresql", "mysql", "sqlite")


def _type_names(expected: Any) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def yaml_key_line(path: str | os.PathLike[str], keys: list[str]) -> int | None:
    """Line (1-based) of a nested key in a YAML file, for error messages."""
    try:
        node = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        for knode, vnode in node.value:
            if knode.value == key:
                node = vnode
                line = knode.start_mark.line + 1
                break
        else:
            return None
    return line


def validate_layer(data: Any, source: str, schema: dict[str, Any] = SCHEMA,
                   prefix: tuple[str, ...] = ("grenade",)) -> None:
    """Check one config source against the schema; the error names key, file and line."""

    def fail(keys: tuple[str, ...], why: str) -> None:
        where = source
        if os.path.isfile(source):
            line = yaml_key_line(source, list(keys))
            if line:
                where = f"{source}:{line}"
        raise ConfigError(f"{where}: config key '{'.'.join(keys)}' {why}")

    if not isinstance(data, dict):
        fail(prefix, f"must be a mapping, got {type(data).__name__}")
    for key, value in data.items():
        keys = (*prefix, str(key))
        if key not in schema:
            known = ", ".join(sorted(schema))
            fail(keys, f"is unknown (known keys: {known})")
        expected = schema[key]
        if isinstance(expected, dict):
            if value is None:
                continue
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
        if keys == ("grenade", "deployer") and value not in DEPLOYERS:
            fail(keys, f"must be one of {', '.join(DEPLOYERS)}, got {value!r}")
        if keys == ("grenade", "database") and value not in DATABASES:
            fail(keys, f"must be one of {', '.join(DATABASES)}, got {value!r}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def layers_from_invoke(config: Any) -> list[tuple[str, dict[str, Any]]]:
    """The `grenade:` part of each invoke config source, with the file it came from."""
    layers: list[tuple[str, dict[str, Any]]] = []
    for prefix in ("system", "user", "project", "env", "runtime"):
        data = getattr(config, f"_{prefix}", None) or {}
        if "grenade" not in data:
            continue
        source = getattr(config, f"_{prefix}_path", None) or {
            "env": "environment (INVOKE_GRENADE_*)"
        }.get(prefix, prefix)
        layers.append((str(source), data["grenade"]))
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


def _has_path(data: dict[str, Any], path: tuple[str, ...]) -> bool:
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
    script = f'source "$1" >/dev/null 2>&1 </dev/null; for n in {names}; do ' \
             'printf "%s\\0%s\\0" "$n" "${!n-__unset__}"; done'
    proc = subprocess.run(["bash", "-c", script, "localrc", str(path)],
                          capture_output=True, env={"PATH": os.environ.get("PATH", "")},
                          timeout=30)
    parts = proc.stdout.decode(errors="replace").split("\0")
    return {parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2)
            if parts[i + 1] != "__unset__"}


@dataclass
class GrenadeConfig:
    """The validated configuration of one run (a plain dict underneath)."""

    data: dict[str, Any]

    @classmethod
    def load(cls, layers: list[tuple[str, dict[str, Any]]],
             cwd: Path | None = None) -> GrenadeConfig:
        merged = copy.deepcopy(DEFAULTS)
        for source, layer in layers:
            validate_layer(layer, source)
            merged = _merge(merged, layer)
        cfg = cls(merged)
        cfg._find_rc_files(cwd or Path.cwd())
        cfg._check_paths()
        cfg._apply_localrc(layers)
        return cfg

    @classmethod
    def from_invoke(cls, config: Any) -> GrenadeConfig:
        runtime = getattr(config, "_runtime_path", None)
        if runtime and not os.path.isfile(runtime):
            # invoke skips a missing -f file silently; running with defaults instead
            # would deploy into /opt/stack.
            raise ConfigError(f"{runtime}: no such config file (invoke -f)")
        return cls.load(layers_from_invoke(config))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> GrenadeConfig:
        """Load a run.yaml (`grenade:` at top level) without invoke, for tests and tools."""
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        layers = [(str(path), raw["grenade"])] if "grenade" in raw else []
        return cls.load(layers, cwd=Path(path).resolve().parent)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def _find_rc_files(self, cwd: Path) -> None:
        # Zuul writes `localrc`/`pluginrc` next to where grenade runs.
        for key, name in (("localrc_file", "localrc"), ("pluginrc_file", "pluginrc")):
            if self.data[key] is None and (cwd / name).is_file():
                self.data[key] = str(cwd / name)

    def _apply_localrc(self, layers: list[tuple[str, dict[str, Any]]]) -> None:
        """Take the branches and PLUGIN_DIR Zuul's localrc names, unless the config sets them."""
        if not self.data["localrc_file"]:
            return
        values = read_localrc(Path(self.data["localrc_file"]))
        for var, path in LOCALRC_KEYS.items():
            explicit = any(_has_path(layer, path) for _, layer in layers)
            if var in values and not explicit:
                target = self.data
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = values[var]

    def _check_paths(self) -> None:
        for key in ("localrc_file", "pluginrc_file"):
            path = self.data[key]
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"config key 'grenade.{key}': no such file {path}")
        if not os.path.isabs(self.data["stack_root"]):
            self.data["stack_root"] = os.path.abspath(self.data["stack_root"])

    @property
    def stack_root(self) -> Path:
        return Path(self.data["stack_root"])

    @property
    def enabled_services(self) -> str:
        value = self.data["enabled_services"]
        return ",".join(value) if isinstance(value, list) else value

    def digest(self) -> str:
        """Hash of the effective configuration, part of the resume fingerprint."""
        blob = json.dumps(self.data, sort_keys=True, default=str).encode()
        for key in ("localrc_file", "pluginrc_file"):
            if self.data[key]:
                blob += Path(self.data[key]).read_bytes()
        return hashlib.sha256(blob).hexdigest()[:16]
