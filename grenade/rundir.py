"""The run directory: where each part of a run lives, and the per-run GRENADE_DIR.

GRENADE_DIR holds the bash library hooks source (`grenaderc`, `functions`, `inc/*`),
a copy of the embedded devstack function set for trees that have none, and the
effective `localrc` and `pluginrc`, so every hook re-reads the same state.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import LITE_TREE, SHELL_DIR
from .config import GrenadeConfig
from .config_sources import DEFAULTS
from .errors import ConfigError
from .secrets import hook_owner, private_dir, private_write

SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FALLBACK_DEVSTACK = LITE_TREE
FALLBACK_FILES = ("functions", "functions-common", "inc")


@dataclass(frozen=True)
class Paths:
    stack_root: Path
    base_release_dir: Path
    target_release_dir: Path
    grenade_dir: Path
    save_dir: Path
    logs_dir: Path
    plugin_root: Path
    cache_dir: Path

    @classmethod
    def from_config(cls, cfg: GrenadeConfig) -> Paths:
        root = cfg.stack_root
        trees = cfg.trees
        cache = trees.cache_dir or str(root / "cache")
        return cls(
            stack_root=root,
            base_release_dir=root / trees.base_name,
            target_release_dir=root / trees.target_name,
            grenade_dir=root / "grenade",
            save_dir=root / "save",
            logs_dir=root / "logs",
            plugin_root=Path(cfg.plugin_dir) if cfg.plugin_dir else root / "plugins",
            cache_dir=Path(cache),
        )

    def devstack(self, side: str) -> Path:
        """The base or target devstack tree: the one mapping of a side to its place."""
        return self.base_devstack if side == "base" else self.target_devstack

    @property
    def base_devstack(self) -> Path:
        return self.base_release_dir / "devstack"

    @property
    def target_devstack(self) -> Path:
        return self.target_release_dir / "devstack"

    @property
    def state_file(self) -> Path:
        return self.save_dir / "run-state.json"


def localrc_lines(values: Mapping[str, object]) -> list[str]:
    """`K=V` lines, each value quoted for bash (nothing in them is ever evaluated)."""
    lines = []
    for key, value in values.items():
        if not SHELL_NAME.fullmatch(key):
            raise ValueError(f"not a shell variable name: {key!r}")
        text = ("True" if value else "False") if isinstance(value, bool) else str(value)
        lines.append(f"{key}={shlex.quote(text)}")
    return lines


def shell_defaults() -> str:
    """grenaderc's defaults for what is also run configuration, from the one table of
    defaults (grenade.config_sources.DEFAULTS): `X=${X:-value}`, so localrc and the
    environment still win."""
    values = {
        "STACK_ROOT": DEFAULTS["stack_root"],
        "BASE_RELEASE": DEFAULTS["trees"]["base_name"],
        "TARGET_RELEASE": DEFAULTS["trees"]["target_name"],
        "BASE_DEVSTACK_BRANCH": DEFAULTS["base"]["branch"],
        "TARGET_DEVSTACK_BRANCH": DEFAULTS["target"]["branch"],
        "VERIFY_RESOURCES": DEFAULTS["verify_resources"],
        "RUN_SMOKE": DEFAULTS["run_smoke"],
    }
    lines = ["# written by grenade from grenade.config_sources.DEFAULTS; sourced by grenaderc"]
    for line in localrc_lines(values):
        name, value = line.split("=", 1)
        lines.append(f"{name}=${{{name}:-{value}}}")
    return "\n".join(lines) + "\n"


def write_grenade_dir(paths: Paths, cfg: GrenadeConfig, pluginrc: list[str]) -> None:
    """Populate GRENADE_DIR from the package's shell library and the run's config;
    `pluginrc` holds its pluginrc's lines (`pluginrc_line`)."""
    gdir = paths.grenade_dir
    shutil.copytree(
        SHELL_DIR, gdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    # The localrc holds the user's passwords: only the user hooks run as may read it.
    # (After the copy, which gives the directory the package's mode.)
    owner = hook_owner(cfg.stack_user)
    private_dir(gdir, owner)
    private_write(gdir / "defaults", shell_defaults(), owner)
    fallback = gdir / "devstack"
    fallback.mkdir(exist_ok=True)
    for name in FALLBACK_FILES:
        src = FALLBACK_DEVSTACK / name
        if src.is_dir():
            shutil.copytree(src, fallback / name, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, fallback / name)

    # The run's layout is grenade's: written after the user's localrc, as the
    # original's grenaderc fixed SAVE_DIR, DATA_DIR and the release dirs after
    # reading localrc (Zuul's localrc sets SAVE_DIR=$BASE_RELEASE_DIR/save).
    layout = {
        "STACK_ROOT": paths.stack_root,
        "DATA_DIR": paths.stack_root / "data",
        "BASE_RELEASE": paths.base_release_dir.name,
        "TARGET_RELEASE": paths.target_release_dir.name,
        "BASE_RELEASE_DIR": paths.base_release_dir,
        "TARGET_RELEASE_DIR": paths.target_release_dir,
        "BASE_DEVSTACK_DIR": paths.base_devstack,
        "TARGET_DEVSTACK_DIR": paths.target_devstack,
        "BASE_DEVSTACK_BRANCH": cfg.base.branch,
        "TARGET_DEVSTACK_BRANCH": cfg.target.branch,
        "BASE_RELEASE_NAME": cfg.base.release_name,
        "TARGET_RELEASE_NAME": cfg.target.release_name,
        "SAVE_DIR": paths.save_dir,
        "PLUGIN_DIR": paths.plugin_root,
    }
    defaults = {
        "VERIFY_RESOURCES": bool(cfg.verify_resources),
        "GRENADE_USE_EXTERNAL_DEVSTACK": cfg.deployer == "external",
    }
    lines = ["# written by grenade setup; edit the run config instead", *localrc_lines(defaults)]
    if cfg.localrc_file:
        lines += [f"# from {cfg.localrc_file}", _read_text(Path(cfg.localrc_file))]
    if cfg.grenade_localrc:
        lines += ["# from config grenade.grenade_localrc", *localrc_lines(cfg.grenade_localrc)]
    lines += [
        "# the run's layout (grenade's own, whatever the lines above say)",
        *localrc_lines(layout),
    ]
    private_write(gdir / "localrc", "\n".join(lines) + "\n", owner)

    # Not a copy of the user's file: lines written from what setup parsed (relative
    # paths made absolute), so an error names the user's file, never this one.
    header = "# written by grenade setup from the pluginrc and grenade.plugins; edit those"
    private_write(gdir / "pluginrc", "\n".join([header, *pluginrc]) + "\n", owner)


def pluginrc_line(name: str, repo: str, branch: str | None) -> str:
    """One `enable_grenade_plugin` line; the values are quoted, never evaluated."""
    return shlex.join(["enable_grenade_plugin", name, repo, *([branch] if branch else [])])


def _read_text(path: Path) -> str:
    """A user's file, as text; not UTF-8 is an error naming it and where."""
    data = path.read_bytes()
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
