"""The run configuration: invoke's config under a ``grenade:`` key, typed and frozen.

Sources, lowest to highest precedence, are invoke's own: defaults, system and user
files, the project ``invoke.yaml``, ``INVOKE_GRENADE_*`` environment variables and
the runtime file (``invoke -f run.yaml``). Each source is checked on its own
(grenade.config_sources) so that an unknown key or a wrong type names the file
and line it came from; what passes becomes a `GrenadeConfig`.

Grenade-style ``localrc`` and ``pluginrc`` files (what Zuul's ``write-grenade-conf``
writes) are accepted too: paths in config, or files of those names in the current
directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config_hosts import HostConfig, check_topology, group_members, hosts_from_data, upgrade_groups
from .config_origin import describe_origin, yaml_error_text, yaml_key_line
from .config_sources import (
    DEFAULTS,
    LOCALRC_KEYS,
    RUNTIME_KEYS,
    SCHEMA,
    has_path,
    key_sources,
    layers_from_invoke,
    merge,
    read_localrc,
    validate_layer,
)
from .errors import ConfigError
from .releases import release_name

SIDES = ("base", "target")
DEFAULT_ORIGIN = "grenade's default"  # where a key no source sets comes from


@dataclass(frozen=True)
class TreeSource:
    """Where the base or the target devstack tree comes from."""

    repo: str | None
    branch: str
    ref: str | None = None
    release: str | None = None  # overrides the release the branch names

    @property
    def release_name(self) -> str:
        return release_name(self.branch, self.release)


@dataclass(frozen=True)
class TreesConfig:
    prepared: bool  # someone else (Zuul) prepared the trees: use them as they are
    force: bool
    base_name: str  # the release directories under stack_root
    target_name: str
    cache_dir: str | None

    def dir_name(self, side: str) -> str:
        return self.base_name if side == "base" else self.target_name


@dataclass(frozen=True)
class PluginSource:
    name: str
    repo: str
    branch: str | None = None


@dataclass(frozen=True)
class GitServiceSource:
    """A service installed from a git repository at a ref instead of its PyPI release
    (devstack's ``<SERVICE>_REPO`` / ``<SERVICE>_BRANCH``); ``version`` is the
    ``PBR_VERSION`` to build it with when the repository has no tag to derive one."""

    repo: str
    ref: str | None = None  # None: the repository's default branch
    version: str | None = None


@dataclass(frozen=True)
class GrenadeConfig:
    """The validated configuration of one run."""

    stack_root: Path
    deployer: str
    base: TreeSource
    target: TreeSource
    trees: TreesConfig
    projects_dirs: tuple[str, ...]
    plugins: tuple[PluginSource, ...]
    plugin_dir: str | None
    enabled_services: str
    timeout: float
    verify_resources: bool
    localrc_file: str | None
    pluginrc_file: str | None
    grenade_localrc: Mapping[str, object]
    localrc: Mapping[str, object]
    smoke_command: tuple[str, ...] | None
    run_smoke: bool
    stack_user: str | None
    database: str
    verbose: bool
    secret_names: tuple[str, ...]  # masked besides devstack's *_PASSWORD, *_TOKEN...
    # {side: {service: source}}: services installed from git on that side
    services_from_git: Mapping[str, Mapping[str, GitServiceSource]] = field(default_factory=dict)
    # multinode (grenade.config_hosts, grenade.nodes): none configured, one local controller
    hosts: Mapping[str, HostConfig] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> host names
    upgrade_groups: tuple[str, ...] = ("controller",)  # the groups shutdown and upgrade touch
    known_hosts: str = ""  # "": ~/.ssh/known_hosts
    accept_new_host_keys: bool = False  # add unknown keys to known_hosts (throwaway nodes)
    # the merged, validated source: what the resume fingerprint hashes
    data: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    # which source set each key (`key_sources`): errors about a value name its file
    sources: Mapping[str, str] = field(repr=False, compare=False, default_factory=dict)

    def tree(self, side: str) -> TreeSource:
        """The base or target tree's source: the one mapping of a side to its config."""
        return self.base if side == "base" else self.target

    @classmethod
    def from_data(
        cls, data: dict[str, Any], sources: Mapping[str, str] | None = None
    ) -> GrenadeConfig:
        """The typed view of a merged, validated `grenade:` mapping."""
        services = data["enabled_services"]
        smoke = data["smoke_command"]
        return cls(
            stack_root=Path(data["stack_root"]),
            deployer=data["deployer"],
            base=TreeSource(**data["base"]),
            target=TreeSource(**data["target"]),
            trees=TreesConfig(**data["trees"]),
            projects_dirs=tuple(data["projects_dirs"]),
            plugins=tuple(PluginSource(**p) for p in data["plugins"]),
            plugin_dir=data["plugin_dir"],
            enabled_services=",".join(services) if isinstance(services, list) else services,
            timeout=float(data["timeout"]),
            verify_resources=data["verify_resources"],
            localrc_file=data["localrc_file"],
            pluginrc_file=data["pluginrc_file"],
            grenade_localrc=data["grenade_localrc"],
            localrc=data["localrc"],
            smoke_command=tuple(shlex.split(smoke) if isinstance(smoke, str) else smoke)
            if smoke
            else None,
            run_smoke=data["run_smoke"],
            stack_user=data["stack_user"],
            database=data["database"],
            verbose=data["verbose"],
            secret_names=tuple(data["secret_names"]),
            services_from_git={
                side: {
                    name: GitServiceSource(**source)
                    for name, source in data["services_from_git"][side].items()
                }
                for side in SIDES
            },
            hosts=hosts_from_data(data),
            groups={g: tuple(names) for g, names in group_members(data).items()},
            upgrade_groups=upgrade_groups(data),
            known_hosts=os.path.expanduser(data["known_hosts"]),
            accept_new_host_keys=data["accept_new_host_keys"],
            data=data,
            sources=dict(sources or {}),
        )

    @classmethod
    def load(
        cls, layers: list[tuple[str, dict[str, Any]]], cwd: Path | None = None
    ) -> GrenadeConfig:
        merged = copy.deepcopy(DEFAULTS)
        for source, layer in layers:
            validate_layer(layer, source)
            merged = merge(merged, layer)
        sources = key_sources(layers)
        _find_rc_files(merged, cwd or Path.cwd())
        _check_paths(merged)
        _check_projects_dirs(merged, sources)
        check_topology(merged, layers)
        _apply_localrc(merged, layers)
        return cls.from_data(merged, sources)

    @classmethod
    def from_invoke(cls, config: Any) -> GrenadeConfig:
        runtime = getattr(config, "_runtime_path", None)
        if runtime and not os.path.isfile(runtime):
            # invoke skips a missing -f file silently; running with defaults instead
            # would deploy into /opt/stack.
            raise ConfigError(f"{runtime}: no such config file (invoke -f)")
        if runtime:
            # a typo at the top (`grenad:`) would otherwise run the defaults into /opt/stack
            known = set(config.global_defaults()) | {"grenade"}
            for key in getattr(config, "_runtime", None) or {}:
                if key not in known:
                    line = yaml_key_line(runtime, [key])
                    raise ConfigError(
                        f"{runtime}{f':{line}' if line else ''}: top-level key "
                        f"'{key}' is unknown (grenade's settings go under "
                        "'grenade:')"
                    )
        return cls.load(layers_from_invoke(config))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> GrenadeConfig:
        """Load a run.yaml (`grenade:` at top level) without invoke, for tests and tools."""
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_error_text(path, exc)) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        layers = [(str(path), raw["grenade"])] if "grenade" in raw else []
        return cls.load(layers, cwd=Path(path).resolve().parent)

    def where(self, *keys: str) -> str:
        """Where config key `grenade.<keys>` was set: `file:line`, the environment
        variable or the command line; DEFAULT_ORIGIN when nowhere."""
        for n in range(len(keys), 0, -1):  # a list is set whole: its source holds items
            source = self.sources.get(".".join(keys[:n]))
            if source is not None:
                return describe_origin(source, ("grenade", *keys))
        return DEFAULT_ORIGIN

    def digests(self) -> dict[str, str]:
        """A digest per config key (`grenade.base.branch`) and per localrc/pluginrc
        file, for the resume fingerprint: a refused resume names what changed, and no
        value (a password in `localrc`) is stored. Runtime keys are left out, as in
        `digest`."""
        out: dict[str, str] = {}

        def walk(data: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
            for key, value in data.items():
                if prefix == "grenade." and key in RUNTIME_KEYS:
                    continue
                if isinstance(schema.get(key), dict) and isinstance(value, dict):
                    walk(value, schema[key], f"{prefix}{key}.")
                else:
                    blob = json.dumps(value, sort_keys=True, default=str).encode()
                    out[prefix + key] = hashlib.sha256(blob).hexdigest()[:16]

        walk(self.data, SCHEMA, "grenade.")
        for key in ("localrc_file", "pluginrc_file"):
            path = getattr(self, key)
            if path:
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
                out[f"{key.removesuffix('_file')} file {path}"] = digest
        return out

    def digest(self) -> str:
        """Hash of the effective configuration, the resume fingerprint of runs set up
        before `digests` (their state files keep one hash; they are compared as before).

        Keys that only change how the run is carried out (a longer timeout after a
        step timed out, verbosity) are left out: changing them must not block --resume.
        """
        kept = {k: v for k, v in self.data.items() if k not in RUNTIME_KEYS}
        blob = json.dumps(kept, sort_keys=True, default=str).encode()
        for path in (self.localrc_file, self.pluginrc_file):
            if path:
                blob += Path(path).read_bytes()
        return hashlib.sha256(blob).hexdigest()[:16]


def _find_rc_files(data: dict[str, Any], cwd: Path) -> None:
    # Zuul writes `localrc`/`pluginrc` next to where grenade runs.
    for key, name in (("localrc_file", "localrc"), ("pluginrc_file", "pluginrc")):
        if data[key] is None and (cwd / name).is_file():
            data[key] = str(cwd / name)


def _check_paths(data: dict[str, Any]) -> None:
    for key in ("localrc_file", "pluginrc_file"):
        path = data[key]
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"config key 'grenade.{key}': no such file {path}")
    if not os.path.isabs(data["stack_root"]):
        data["stack_root"] = os.path.abspath(data["stack_root"])


def _check_projects_dirs(data: dict[str, Any], sources: Mapping[str, str]) -> None:
    """A projects dir that does not exist would silently drop its projects from the run."""
    for i, entry in enumerate(data["projects_dirs"]):
        if Path(entry).is_dir():
            continue
        source = sources.get("projects_dirs")
        keys = ("grenade", "projects_dirs", str(i))
        where = describe_origin(source, keys) if source else DEFAULT_ORIGIN
        relative = "" if os.path.isabs(entry) else f" (relative to {os.getcwd()})"
        raise ConfigError(
            f"{where}: config key '{'.'.join(keys)}': no such directory {entry}{relative}"
        )


def _apply_localrc(data: dict[str, Any], layers: list[tuple[str, dict[str, Any]]]) -> None:
    """Take the branches and PLUGIN_DIR Zuul's localrc names, unless the config sets them."""
    if not data["localrc_file"]:
        return
    values = read_localrc(Path(data["localrc_file"]))
    for var, path in LOCALRC_KEYS.items():
        explicit = any(has_path(layer, path) for _, layer in layers)
        if var in values and not explicit:
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = values[var]
