"""The setup record: what setup made of the configuration, frozen, kept in the run state.

Every later task of the run (in this process or another) reads the trees, plugins,
settings and plan inputs from here instead of preparing them again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .plugins import Settings


@dataclass(frozen=True)
class TreeRecord:
    """A base or target devstack tree as prepared (or found, when Zuul prepared it)."""

    path: str = ""
    repo: str | None = None
    branch: str = ""
    ref: str | None = None
    sha: str | None = None
    release: str = ""


@dataclass(frozen=True)
class PluginRecord:
    """An external plugin checked out from the pluginrc."""

    name: str
    path: str
    sha: str | None
    branch: str


@dataclass(frozen=True)
class SetupRecord:
    """Trees, plugins, settings and what the plan is built from."""

    base: TreeRecord = TreeRecord()
    target: TreeRecord = TreeRecord()
    plugins: tuple[PluginRecord, ...] = ()
    enabled_services: str = ""
    settings: Settings = field(default_factory=Settings)
    stack: tuple[str, ...] | None = None  # the deployer's stack command
    stack_cwd: str | None = None
    stack_env: tuple[tuple[str, str], ...] = ()
    stack_user: str | None = None
    smoke: tuple[str, ...] | None = None

    def tree(self, side: str) -> TreeRecord:
        return self.base if side == "base" else self.target

    @property
    def base_release(self) -> str:
        return self.base.release

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": asdict(self.base),
            "target": asdict(self.target),
            "plugins": [asdict(p) for p in self.plugins],
            "enabled_services": self.enabled_services,
            "settings": self.settings.to_dict(),
            "stack": list(self.stack) if self.stack is not None else None,
            "stack_cwd": self.stack_cwd,
            "stack_env": [list(kv) for kv in self.stack_env],
            "stack_user": self.stack_user,
            "smoke": list(self.smoke) if self.smoke is not None else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SetupRecord:
        return cls(
            base=TreeRecord(**raw["base"]),
            target=TreeRecord(**raw["target"]),
            plugins=tuple(PluginRecord(**p) for p in raw.get("plugins", [])),
            enabled_services=raw.get("enabled_services", ""),
            settings=Settings.from_dict(raw.get("settings", {})),
            stack=tuple(raw["stack"]) if raw.get("stack") is not None else None,
            stack_cwd=raw.get("stack_cwd"),
            stack_env=tuple((k, v) for k, v in raw.get("stack_env", [])),
            stack_user=raw.get("stack_user"),
            smoke=tuple(raw["smoke"]) if raw.get("smoke") is not None else None,
        )
