"""The plugins a run enables: the user's pluginrc and the `plugins` config key.

A pluginrc holds `enable_grenade_plugin name url [branch]` lines (what Zuul's
write-grenade-conf writes). Each line is parsed here, remembering the file and line
it came from, so that every plugin error names the plugin and the user's file and
line, and a relative repository path means the same wherever grenade runs: it is
taken from the pluginrc's directory. GRENADE_DIR's pluginrc, which hooks source, is
written back from what was parsed (grenade.rundir), so bash and Python see the same
plugins.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .config import GrenadeConfig
from .errors import TreeError
from .trees import PLUGIN_NAME, is_url, normalize_repo


@dataclass(frozen=True)
class PluginLine:
    """One enabled plugin and where the user enabled it."""

    name: str
    repo: str  # a URL, or a local path made absolute
    branch: str | None  # None: the target branch
    where: str  # `file:line`, or the config key and its `file:line`
    written: str  # the repository as the user wrote it

    def error(self, why: str) -> TreeError:
        return TreeError(f"{self.where}: plugin {self.name}: {why}")

    def check_repo(self) -> None:
        """A local repository that does not exist is named before git is asked."""
        if not is_url(self.repo) and not Path(self.repo).exists():
            shown = self.written if self.written == self.repo else f"{self.written} ({self.repo})"
            raise self.error(f"no such repository {shown}")


def parse_pluginrc(path: Path) -> list[PluginLine]:
    """The ``enable_grenade_plugin name url [branch]`` lines of a pluginrc, in order.

    Blank lines and comments are skipped; anything else is an error naming the file and
    line. The original sources the file in bash; shell variables (which only bash could
    expand) are refused rather than guessed.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text()
    except OSError as exc:
        raise TreeError(f"{path}: cannot read pluginrc: {exc.strerror}") from exc
    plugins: list[PluginLine] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{lineno}"
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise TreeError(f"{where}: cannot parse {line.strip()!r}: {exc}") from exc
        if not words:
            continue
        if words[0] != "enable_grenade_plugin" or len(words) not in (3, 4):
            raise TreeError(
                f"{where}: expected 'enable_grenade_plugin <name> <url> [branch]', "
                f"got {line.strip()!r}"
            )
        if any("$" in word or "`" in word for word in words):
            raise TreeError(f"{where}: shell expansions are not supported: {line.strip()!r}")
        name, url = words[1], words[2]
        repo = normalize_repo(url, base=path.parent)
        plugins.append(PluginLine(name, repo, words[3] if len(words) == 4 else None, where, url))
    return _checked(plugins)


def configured_plugins(cfg: GrenadeConfig) -> list[PluginLine]:
    """The run's plugins: the pluginrc file's, then the `plugins` config key's."""
    plugins = parse_pluginrc(Path(cfg.pluginrc_file)) if cfg.pluginrc_file else []
    for i, p in enumerate(cfg.plugins):
        where = f"{cfg.where('plugins', str(i))} (config key 'grenade.plugins.{i}')"
        plugins.append(PluginLine(p.name, normalize_repo(p.repo), p.branch, where, p.repo))
    return _checked(plugins)


def _checked(plugins: list[PluginLine]) -> list[PluginLine]:
    seen: dict[str, str] = {}
    for plugin in plugins:
        if not PLUGIN_NAME.fullmatch(plugin.name):
            raise TreeError(
                f"{plugin.where}: plugin name {plugin.name!r} is not a plain directory name"
            )
        if plugin.name in seen:
            raise plugin.error(f"already enabled at {seen[plugin.name]}")
        seen[plugin.name] = plugin.where
    return plugins
