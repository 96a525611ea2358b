"""Exceptions that carry what the user needs to act: file, line, project, phase."""

from __future__ import annotations

import os
import shlex


class GrenadeError(Exception):
    """Base of every error grenade reports to the user (printed without a traceback)."""

    exit_code = 1


class ConfigError(GrenadeError):
    """Bad configuration; the message names the key and the file it came from."""


class SettingsError(GrenadeError):
    """A plugin's settings file failed while being sourced."""


class TreeError(GrenadeError):
    """A devstack tree or plugin repository could not be prepared."""


class HostsUnreachable(GrenadeError):
    """Configured hosts cannot be reached over SSH; names each host, address, port, reason."""


class StateError(GrenadeError):
    """The run state forbids what was asked (a second run, a changed fingerprint...)."""


class StateWriteError(StateError):
    """The run state could not be written (a full disk): the run stops before its next hook."""


class DeployError(GrenadeError):
    """The deployer could not stack or unstack the cloud."""


class StepFailed(GrenadeError):
    """A hook exited non-zero or timed out."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code or 1


class Interrupted(GrenadeError):
    """SIGINT/SIGTERM stopped the run; exit code 130 or 143."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum


_HINT_OPTIONS: list[str] = []  # the program options every hint repeats (`-f run.yaml`)


def hint_config(runtime_file: str | None) -> None:
    """The config file the user passed with -f: every hint names it, so that the
    command it prints acts on the same run (without it, the defaults' stack_root)."""
    _HINT_OPTIONS[:] = ["-f", os.path.abspath(runtime_file)] if runtime_file else []


def command_hint(task: str, *args: str) -> str:
    """A command for the user to run next, as they would type it: `grenade [-f FILE]
    TASK ARGS`.

    `task` is the task's name as the command line takes it (`base`, `phase.create`),
    so a hint after a failure names the task the user ran, with options it accepts.
    The config file is quoted for the shell; the other words are grenade's own (task
    names, options, step kinds).
    """
    return "`" + shlex.join(["grenade", *_HINT_OPTIONS, task, *args]) + "`"
