"""grenade's tasks and the `grenade` command: `grenade run` (or `grenade setup base
upgrade verify destroy`) runs an upgrade test.

Tasks are thin: they map arguments onto `grenade.phases`, each on a `Session`. The
installed `grenade` command is invoke's `Program` over `ns`, so it works from any
directory; in a checkout, the root `tasks.py` exposes the same `ns` to `python3 -m
invoke`. Configuration comes from invoke's config under a `grenade:` key (`-f
run.yaml`, `INVOKE_GRENADE_*`, `/etc/invoke.yaml` and `~/.invoke.yaml`, and, for
`python3 -m invoke` only, the project `invoke.yaml` beside `tasks.py`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from typing import Any

from invoke import Collection, Config, Context, Exit, Program, Task, task
from invoke.util import yaml as invoke_yaml  # invoke's own (vendored) PyYAML

from grenade import __version__, phases
from grenade.clean import clean as clean_run
from grenade.cleanup import force_destroy as force_destroy_run
from grenade.cli_plugins import lint, new_plugin
from grenade.config import GrenadeConfig
from grenade.config_origin import yaml_error_text
from grenade.config_sources import env_skeleton
from grenade.errors import GrenadeError, Interrupted, hint_config
from grenade.plan import KIND_HELP, KINDS, format_plan
from grenade.runner import SignalGuard
from grenade.session import Session
from grenade.summary import status_text


def _guard(body: Callable[..., Any]) -> Callable[..., Any]:
    """Report grenade's errors as a message and an exit code, without a traceback."""

    @functools.wraps(body)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            with interruptible():
                return body(c, *args, **kwargs)
        except KeyboardInterrupt:
            exc = Interrupted(signal.SIGINT)
            raise Exit(f"grenade: {exc}", code=exc.exit_code) from None
        except GrenadeError as exc:
            raise Exit(f"grenade: {exc}", code=exc.exit_code) from None
        except OSError as exc:
            # the machine's, not grenade's: a full disk, a file made unreadable
            raise Exit(f"grenade: {body.__name__}: {os_error_text(exc)}", code=1) from None

    return wrapper


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP end a task as Ctrl-C does (an `Interrupted`, 128 + the
    signal, said in one line), wherever it is: the step runner and setup handle them
    their own way while they run, and restore this after."""

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    old = {
        sig: signal.signal(sig, interrupt) for sig in SignalGuard.handled() if sig != signal.SIGINT
    }
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def os_error_text(exc: OSError) -> str:
    """An OSError in one line, naming the file (shutil's copy errors name each)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        errors = exc.args[0]
        src, dst, why = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"cannot copy {src} to {dst}: {why}{more}"
    if exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


_invoke_load_yaml = Config._load_yaml


def _load_yaml(config: Config, path: os.PathLike[str]) -> Any:
    """invoke's loader of a YAML config file, its errors said in one line, exit 1.

    `Program.run` reports an `Exit` raised while it loads the config files (`-f`,
    the project's, the user's) as a message and an exit code; a YAMLError would
    end in a 40-line traceback.
    """
    try:
        data = _invoke_load_yaml(config, path)
    except invoke_yaml.YAMLError as exc:
        raise Exit(yaml_error_text(path, exc), code=1) from None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise  # invoke skips a config file that is not there
        raise Exit(f"{path}: cannot read config file: {exc.strerror}", code=1) from None
    if data is not None and not isinstance(data, dict):
        raise Exit(f"{path}: top level must be a mapping, not {type(data).__name__}", code=1)
    return data


# `python3 -m invoke` makes its own Program and Config before it imports tasks.py:
# the class is all both entry points share. It reads /etc and ~ invoke.yaml before
# that import, so a YAML error there is invoke's traceback; `grenade` covers them.
for _name in ("_load_yaml", "_load_yml"):
    setattr(Config, _name, _load_yaml)

RESUME_HELP = "continue a failed run at its failed step (checks trees, projects, config)"


def _session(c: Context, task: str, state_required: bool = True) -> Session:
    cfg = GrenadeConfig.from_invoke(c.config)
    hint_config(getattr(c.config, "_runtime_path", None))
    return Session(cfg, state_required=state_required, task=task)


@task(help={"force": "start a new run even if this stack_root is set up"})
@_guard
def setup(c, force=False):
    """Prepare trees, GRENADE_DIR, plugins and settings; print trees, SHAs and projects."""
    with _session(c, "setup", state_required=not force) as session:
        phases.setup(session, force=force)


def _steps_task(name: str, kinds: tuple[str, ...], doc: str) -> Task:
    """A task running the steps of `kinds` (a coarse phase, or one kind as `phase.X`)."""

    @_guard
    def body(c, force=False, resume=False):
        with _session(c, name) as session:
            # phase.rollback, phase.verify-rollback: the rollback's steps are planned
            session.rollback_requested = bool(set(kinds) & set(phases.coarse_kinds("rollback")))
            phases.run_kinds(session, kinds, force=force, resume_failed=resume)

    body.__doc__ = doc
    body.__name__ = name.rpartition(".")[2].replace("-", "_")
    return Task(
        body,
        name=name.rpartition(".")[2],
        help={"force": "re-run steps already done", "resume": RESUME_HELP},
    )


def _coarse(name: str, doc: str) -> Task:
    return _steps_task(name, phases.coarse_kinds(name), doc)


GROUPS_HELP = (
    "a later upgrade leg: these groups (comma-separated) instead of upgrade_groups, "
    "e.g. the subnode a partial upgrade left on the base release"
)


def _leg_task(name: str, kinds: tuple[str, ...], doc: str) -> Task:
    """A coarse task that can also run a later upgrade leg (`--groups`)."""

    @_guard
    def body(c, force=False, resume=False, groups=None):
        with _session(c, name) as session:
            leg_kinds = kinds
            if not groups and resume:
                session.leg_groups = phases.resumed_leg(session)  # the leg that failed
            if groups or session.leg_groups:
                if groups:
                    session.leg_groups = phases.leg_groups(session, groups, resume or force)
                if name == "upgrade":  # a leg is upgraded, then verified again
                    leg_kinds = kinds + phases.coarse_kinds("verify")
            phases.run_kinds(session, leg_kinds, force=force, resume_failed=resume)

    body.__doc__ = doc
    body.__name__ = name
    return Task(
        body,
        name=name,
        help={"force": "re-run steps already done", "resume": RESUME_HELP, "groups": GROUPS_HELP},
    )


base = _coarse("base", "Stack the base cloud, verify it, create resources and verify them.")
upgrade = _leg_task(
    "upgrade",
    phases.coarse_kinds("upgrade"),
    "Save state, shut down (reverse order), snapshot, verify with "
    "the APIs down, prepare the target and upgrade every project.\n\n"
    "With --groups G: complete a partial upgrade, group by group: shut down, "
    "upgrade and converge the hosts of G (steps with ids of their own, `+G`), then "
    "verify everything again (doc/multinode.md).",
)
verify = _leg_task(
    "verify",
    phases.coarse_kinds("verify"),
    "Verify resources after the upgrade, verify the target, save state.",
)
destroy = _coarse("destroy", "Destroy the resources (reverse project order).")


@task(
    help={
        "from": "first step kind to run (earlier ones are skipped, not checked)",
        "to": "last step kind to run",
        "resume": RESUME_HELP,
        "force": "start a new run from scratch",
        "rehearse-rollback": "upgrade, verify, roll back, verify the rollback, upgrade "
        "and verify again (lite deployer)",
    }
)
@_guard
def run(c, from_=None, to=None, resume=False, force=False, rehearse_rollback=False):
    """Run the whole flow: setup, base, upgrade, verify, destroy."""
    with _session(c, "run", state_required=not force) as session:
        session.rehearse = rehearse_rollback
        phases.run(session, from_, to, resume_failed=resume, force=force)


@task(help={"resume": RESUME_HELP, "force": "re-run rollback steps already done"})
@_guard
def rollback(c, resume=False, force=False):
    """Roll the cloud back to the base release from the snapshot taken after shutdown.

    Checks every snapshot file first (a missing one, or one whose sha256 differs, is
    named and nothing is touched), describes the databases as they are (what the
    rollback loses), stops the target's services, restores databases, configuration,
    keys and data together (each database's migration version checked against the
    snapshot's), starts the base release's services from the base tree, then runs
    `resources.sh verify rollback` per project. Works after a failed upgrade too.
    Lite deployer only (the others cannot start one release's services yet)."""
    with _session(c, "rollback") as session:
        session.rollback_requested = True
        phases.rollback(session, force=force, resume_failed=resume)


@task
@_guard
def plan(c):
    """Print every step (phase, project, group and its hosts, argv, per-release script); run none.

    With `hosts` configured: stack-base once per host (controller first), shutdown and
    upgrade on the project's groups in `upgrade_groups`, resources.sh once on the
    project's first host, verify_noapi on all its hosts (doc/multinode.md).
    While another run holds the stack_root, its plan is read without the lock."""
    session = _session(c, "plan")
    with session.reading() as locked:
        if locked:
            phases.print_plan(session)  # sets the stack_root up first if it is not
        else:
            session.console.write(format_plan(session.plan(), session.inventory) + "\n")


@task
@_guard
def status(c):
    """Show the run state of this stack_root: each step, its status and duration."""
    session = _session(c, "status")
    session.read_state()  # no lock: status works while a run is going on
    print(status_text(session))


@task(help={"logs": "remove the logs too", "trees": "remove the base and target trees too"})
@_guard
def clean(c, logs=False, trees=False):
    """Stop what the deployer started and remove the run's state (logs kept unless asked)."""
    with _session(c, "clean", state_required=False) as session:
        clean_run(session, logs=logs, trees=trees)


@task(name="force-destroy")
@_guard
def force_destroy(c):
    """After a failed run: resources.sh force_destroy, then destroy, for every project.

    Both in reverse project order. A failing step does not stop the others; the
    failures are listed at the end (project, phase, host, log) and the exit code is 1.
    """
    with _session(c, "force-destroy") as session:
        force_destroy_run(session)


@task(help={"release": "the series whose lock file to regenerate, e.g. 2026.1"})
@_guard
def lock(c, release):
    """Regenerate the lite tree's releases/RELEASE/requirements.lock from PyPI."""
    from grenade.deployers.lite import lock_release, read_lock

    path = lock_release(release)
    print(f"{release}: {path} ({len(read_lock(path))} pins)")


phase = Collection("phase", *(_steps_task(f"phase.{k}", (k,), KIND_HELP[k]) for k in KINDS))

ns = Collection(
    setup,
    base,
    upgrade,
    verify,
    destroy,
    force_destroy,
    run,
    rollback,
    plan,
    status,
    clean,
    lock,
    lint,
    new_plugin,
    phase,
)
ns.configure({"grenade": env_skeleton()})


def main(argv: list[str] | None = None) -> None:
    """The `grenade` console script: the same tasks, found without a `tasks.py`.

    invoke's default `Config`, so the `INVOKE_GRENADE_*` variables, `-f run.yaml`
    (or `INVOKE_RUNTIME_CONFIG`) and the system and user `invoke.yaml` files apply
    as with `python3 -m invoke`; with a bundled namespace there is no project file.
    """
    program = Program(
        namespace=ns,
        name="grenade",
        binary="grenade",
        binary_names=["grenade"],
        version=__version__,
    )
    program.run(argv)
