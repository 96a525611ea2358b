"""`grenade lint`: check plugin folders before they reach the gate.

A plugin folder is `projects/NN_name/` or `<repo>/devstack/upgrade/`. What is checked,
each finding naming a file and (where there is one) a line:

- names grenade ignores because they are not exact: `resource.sh`, `shutdhown.sh`,
  `settings.sh`, `from_2025.1/`, an `upgrade-<project>` outside a per-release folder;
- `from-<release>/` and `within-<release>/` folders whose release no branch is named
  after, so `upgrade_project` never applies them;
- settings that do not parse or fail when sourced (real bash, the grenade and devstack
  functions loaded, as setup sources them), and registered projects without upgrade.sh;
- hooks that are not bash (another interpreter's shebang, or bash syntax errors from
  `bash -n`): grenade runs every hook through bash.

Nothing a plugin holds is executed except its settings, in the throwaway GRENADE_DIR
of `SettingsSandbox`, which is what setup does with them too.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import LITE_TREE
from .config import GrenadeConfig
from .config_sources import DEFAULTS, merge
from .errors import SettingsError
from .plugins import HOOKS, Settings, load_settings
from .releases import release_problem
from .rundir import Paths, write_grenade_dir

SETTINGS = "settings"
PLUGIN_FILES = (SETTINGS, *HOOKS)
PER_RELEASE = ("from", "within")

_SHEBANG_BASH = re.compile(r"#!\s*(/usr)?/bin/(env\s+)?bash(\s|$)")
_BASH_ERROR = re.compile(r"^(?P<file>.*?): line (?P<line>\d+): (?P<msg>.*)$")
_SETTINGS_ERROR = re.compile(r"settings error: (?P<file>.+):(?P<line>\d+|\?): exit (?P<rc>\d+)")
_NN = re.compile(r"^\d+_")
_CLOSE = 0.8  # difflib ratio: `resource.sh` and `shutdhown.sh` are over it, `lib` is not


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: `file:line: severity: message`, as compilers say it."""

    path: str
    line: int | None
    severity: str  # "error" (lint fails) or "warning"
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


def error(path: Path | str, line: int | None, message: str) -> Finding:
    return Finding(str(path), line, "error", message)


def warning(path: Path | str, line: int | None, message: str) -> Finding:
    return Finding(str(path), line, "warning", message)


def plugin_dirs(path: Path) -> list[Path]:
    """The plugin folders at `path`: `path` itself, its devstack/upgrade, or the
    project folders of a projects dir (any subfolder with settings or a hook)."""
    if (path / "devstack" / "upgrade").is_dir():
        return [path / "devstack" / "upgrade"]
    if any((path / name).exists() for name in PLUGIN_FILES):
        return [path]
    subdirs = sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    projects = [p for p in subdirs if any((p / n).exists() for n in PLUGIN_FILES)]
    return projects or [path]


def project_name(plugin: Path) -> str:
    """The name a plugin folder suggests: `NN_name` -> name, `<repo>/devstack/upgrade` -> repo."""
    if plugin.name == "upgrade" and plugin.parent.name == "devstack":
        return plugin.parent.parent.name
    return _NN.sub("", plugin.name)


# --- names --------------------------------------------------------------------------


def check_names(plugin: Path) -> list[Finding]:
    """Files and folders grenade ignores because their names are not exact."""
    found = []
    for entry in sorted(plugin.iterdir()):
        name = entry.name
        if entry.is_dir():
            found += _check_folder_name(entry)
            continue
        if name in PLUGIN_FILES:
            continue
        if name.startswith("upgrade-") or name.startswith("upgrade_"):
            found.append(
                error(
                    entry,
                    None,
                    "a per-release script outside a from-<release>/ or within-<release>/ "
                    "folder: upgrade_project never reads it",
                )
            )
            continue
        close = difflib.get_close_matches(name, PLUGIN_FILES, n=1, cutoff=_CLOSE)
        if close:
            found.append(
                error(entry, None, f"grenade reads {close[0]}, never {name} (names are exact)")
            )
    return found


def _check_folder_name(folder: Path) -> list[Finding]:
    name = folder.name
    head, sep, release = name.partition("-")
    if sep and head in PER_RELEASE:
        return []
    prefix = re.split(r"[^A-Za-z]", name, maxsplit=1)[0]
    close = difflib.get_close_matches(prefix.lower(), PER_RELEASE, n=1, cutoff=_CLOSE)
    if close and prefix != name:
        rest = name[len(prefix) + 1 :]
        return [
            error(
                folder,
                None,
                f"upgrade_project looks for {close[0]}-{rest}/, never {name}/ (names are exact)",
            )
        ]
    return []


def check_release_dirs(plugin: Path, projects: Sequence[str]) -> list[Finding]:
    """from-/within- folders: a known release, and `upgrade-<project>` inside."""
    found = []
    for folder in sorted(p for p in plugin.iterdir() if p.is_dir()):
        head, sep, release = folder.name.partition("-")
        if not (sep and head in PER_RELEASE):
            continue
        problem = release_problem(release)
        if problem:
            found.append(Finding(str(folder), None, *problem))
        scripts = sorted(p for p in folder.iterdir() if p.is_file())
        if not scripts:
            found.append(warning(folder, None, "empty: nothing to apply"))
        wanted = [f"upgrade-{p}" for p in projects]
        for script in scripts:
            if script.name in wanted:
                found += check_per_release_script(script, script.name[len("upgrade-") :])
                continue
            close = difflib.get_close_matches(script.name, wanted, n=1, cutoff=_CLOSE)
            if close:
                found.append(
                    error(script, None, f"upgrade_project reads {close[0]}, never {script.name}")
                )
            elif script.name.startswith("upgrade-") and projects:
                found.append(
                    warning(
                        script,
                        None,
                        f"no project {script.name[len('upgrade-') :]} is registered by this "
                        f"plugin's settings ({', '.join(projects)})",
                    )
                )
    return found


def check_per_release_script(script: Path, project: str) -> list[Finding]:
    """Sourced by upgrade_project, which then calls configure_<project>_upgrade."""
    found = bash_syntax(script)
    func = re.compile(rf"^\s*(function\s+)?configure_{re.escape(project)}_upgrade\b", re.M)
    if not found and not func.search(script.read_text(errors="replace")):
        found.append(
            error(
                script,
                None,
                f"defines no configure_{project}_upgrade: upgrade_project dies without it",
            )
        )
    return found


# --- hooks --------------------------------------------------------------------------


def bash_syntax(path: Path) -> list[Finding]:
    """`bash -n`: what bash would refuse to run, at bash's own line numbers."""
    proc = subprocess.run(
        ["bash", "-n", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode == 0:
        return []
    for text in proc.stderr.splitlines():
        match = _BASH_ERROR.match(text)
        if match:
            msg = match.group("msg")
            return [error(path, int(match.group("line")), f"bash cannot parse it: {msg}")]
    return [error(path, None, f"bash -n failed: {proc.stderr.strip() or proc.returncode}")]


def check_hook(hook: Path) -> list[Finding]:
    """A hook runs through bash: a shebang naming another interpreter means it is
    not bash (and the original grenade, which execs it, runs it differently)."""
    text = hook.read_text(errors="replace")
    if not text.strip():
        return [warning(hook, None, "empty: runs and does nothing")]
    first = text.splitlines()[0]
    if first.startswith("#!") and not _SHEBANG_BASH.match(first):
        interpreter = first[2:].strip()
        return [
            error(
                hook,
                1,
                f"not a bash script ({interpreter}): grenade runs hooks through bash; "
                "use #!/usr/bin/env bash",
            )
        ]
    return bash_syntax(hook)


# --- settings -----------------------------------------------------------------------


class SettingsSandbox:
    """A throwaway GRENADE_DIR (setup's own writer, defaults config) in which settings
    are sourced the way setup sources them; the target tree is the embedded default."""

    def __init__(self, root: Path) -> None:
        cfg = GrenadeConfig.from_data(merge(DEFAULTS, {"stack_root": str(root)}))
        self.paths = Paths.from_config(cfg)
        write_grenade_dir(self.paths, cfg, [])
        self.paths.target_release_dir.mkdir(parents=True)
        (self.paths.target_release_dir / "devstack").symlink_to(LITE_TREE)

    def load(self, settings: Path, services: str) -> Settings:
        env = {
            **os.environ,
            "GRENADE_DIR": str(self.paths.grenade_dir),
            "SAVE_DIR": str(self.paths.save_dir),
            "STACK_ROOT": str(self.paths.stack_root),
            "LOGDIR": str(self.paths.logs_dir),
            "TOP_DIR": str(self.paths.target_devstack),
            "ENABLED_SERVICES": services,
        }
        return load_settings(self.paths.grenade_dir, [settings.resolve()], env, timeout=120)


@contextmanager
def settings_sandbox() -> Iterator[SettingsSandbox]:
    root = Path(tempfile.mkdtemp(prefix="grenade-lint-"))
    try:
        yield SettingsSandbox(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _register_line(settings: Path, project: str) -> int | None:
    call = re.compile(rf"\bregister_project_for_upgrade\s+['\"]?{re.escape(project)}\b")
    for number, text in enumerate(settings.read_text(errors="replace").splitlines(), 1):
        if call.search(text):
            return number
    return None


def settings_failure(settings: Path, exc: SettingsError, top_dir: Path | None = None) -> Finding:
    """The finding for settings that failed, at the line bash or dump-settings names.

    bash's own `FILE: line N: ...` wins: for a `source` of a missing file
    dump-settings names line 1.
    """
    text = str(exc)
    real = str(settings.resolve())
    said = [ln.strip() for ln in text.splitlines()[1:] if ln.strip() and not ln.startswith("+")]
    line: int | None = None
    detail = ""
    for ln in said:
        bash_said = _BASH_ERROR.match(ln)
        if bash_said and bash_said.group("file") == real:
            line, detail = int(bash_said.group("line")), bash_said.group("msg")
            break
    match = _SETTINGS_ERROR.search(text)
    rc = match.group("rc") if match else "?"
    if line is None and match and match.group("file") == real and match.group("line") != "?":
        line = int(match.group("line"))
    if not detail:
        others = [ln for ln in said if "settings error:" not in ln]
        detail = others[-1] if others else ""
    if top_dir is not None:
        detail = detail.replace(str(top_dir), "$TOP_DIR")
    return error(
        settings,
        line,
        f"settings fail when sourced (exit {rc})" + (f": {detail}" if detail else ""),
    )


def check_settings(
    plugin: Path, sandbox: SettingsSandbox, services: str
) -> tuple[list[Finding], list[str]]:
    """(findings, the projects the settings registered from this folder)."""
    settings = plugin / SETTINGS
    if not settings.is_file():
        return [error(settings, None, "missing: grenade never registers this plugin")], []
    syntax = bash_syntax(settings)
    if syntax:
        return syntax, []
    try:
        loaded = sandbox.load(settings, services)
    except SettingsError as exc:
        return [settings_failure(settings, exc, sandbox.paths.target_devstack)], []
    found = []
    projects = []
    for project in loaded.projects:
        projects.append(project.name)
        if project.hook("upgrade.sh") is None:
            where = "its folder" if Path(project.dir) == plugin.resolve() else project.dir
            found.append(
                error(
                    settings,
                    _register_line(settings, project.name),
                    f"registers {project.name}, but {where} has no upgrade.sh "
                    "(setup refuses the run)",
                )
            )
    if not projects:
        found.append(
            warning(
                settings,
                None,
                f"registers no project with ENABLED_SERVICES={services} "
                "(lint --services names the services to enable)",
            )
        )
    return found, projects


# --- the whole lint -----------------------------------------------------------------


def lint_plugin(plugin: Path, sandbox: SettingsSandbox, services: str = "") -> list[Finding]:
    if not plugin.is_dir():
        return [error(plugin, None, "not a plugin folder (no such directory)")]
    enabled = ",".join(
        s for s in (DEFAULTS["enabled_services"], project_name(plugin), services) if s
    )
    found, projects = check_settings(plugin, sandbox, enabled)
    found += check_names(plugin)
    if (plugin / SETTINGS).is_file() and not (plugin / "upgrade.sh").exists() and not projects:
        found.append(error(plugin / "upgrade.sh", None, "missing: every plugin needs one"))
    for hook in HOOKS:
        if (plugin / hook).is_file():
            found += check_hook(plugin / hook)
    found += check_release_dirs(plugin, projects)
    return found


def lint_paths(paths: Sequence[Path], services: str = "") -> list[Finding]:
    """Every finding for every plugin folder at `paths`, in file order."""
    found: list[Finding] = []
    with settings_sandbox() as sandbox:
        for path in paths:
            for plugin in plugin_dirs(path):
                found += lint_plugin(plugin, sandbox, services)
    return sorted(set(found), key=lambda f: (f.path, f.line or 0, f.message))


def has_errors(found: Sequence[Finding]) -> bool:
    return any(f.severity == "error" for f in found)
