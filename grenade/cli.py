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

import functools
from collections.abc import Callable
from typing import Any

from invoke import Collection, Context, Exit, Program, Task, task

from grenade import __version__, phases
from grenade.clean import clean as clean_run
from grenade.config import GrenadeConfig
from grenade.config_sources import env_skeleton
from grenade.errors import GrenadeError
from grenade.plan import KIND_HELP, KINDS
from grenade.session import Session
from grenade.summary import status_text


def _guard(body: Callable[..., Any]) -> Callable[..., Any]:
    """Report grenade's errors as a message and an exit code, without a traceback."""

    @functools.wraps(body)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            return body(c, *args, **kwargs)
        except GrenadeError as exc:
            raise Exit(f"grenade: {exc}", code=exc.exit_code) from None

    return wrapper


def _session(c: Context, state_required: bool = True) -> Session:
    return Session(GrenadeConfig.from_invoke(c.config), state_required=state_required)


@task(help={"force": "start a new run even if this stack_root is set up"})
@_guard
def setup(c, force=False):
    """Prepare trees, GRENADE_DIR, plugins and settings; print trees, SHAs and projects."""
    with _session(c, state_required=not force) as session:
        phases.setup(session, force=force)


def _coarse(name: str, doc: str) -> Task:
    @_guard
    def body(c, force=False):
        with _session(c) as session:
            phases.run_kinds(session, phases.coarse_kinds(name), force=force)

    body.__doc__ = doc
    body.__name__ = name
    return Task(body, name=name, help={"force": "re-run steps already done"})


base = _coarse("base", "Stack the base cloud, verify it, create resources and verify them.")
upgrade = _coarse(
    "upgrade",
    "Save state, shut down (reverse order), snapshot, verify with "
    "the APIs down, prepare the target and upgrade every project.",
)
verify = _coarse("verify", "Verify resources after the upgrade, verify the target, save state.")
destroy = _coarse("destroy", "Destroy the resources (reverse project order).")


@task(
    help={
        "from": "first step kind to run (earlier ones are skipped, not checked)",
        "to": "last step kind to run",
        "resume": "continue a failed run at its failed step (checks trees, projects, config)",
        "force": "start a new run from scratch",
    }
)
@_guard
def run(c, from_=None, to=None, resume=False, force=False):
    """Run the whole flow: setup, base, upgrade, verify, destroy."""
    with _session(c, state_required=not force) as session:
        phases.run(session, from_, to, resume_failed=resume, force=force)


@task
@_guard
def plan(c):
    """Print every step (phase, project, host group, argv, per-release script); run none."""
    with _session(c) as session:
        phases.print_plan(session)


@task
@_guard
def status(c):
    """Show the run state of this stack_root: each step, its status and duration."""
    session = _session(c)
    session.read_state()  # no lock: status works while a run is going on
    print(status_text(session))


@task(help={"logs": "remove the logs too", "trees": "remove the base and target trees too"})
@_guard
def clean(c, logs=False, trees=False):
    """Stop what the deployer started and remove the run's state (logs kept unless asked)."""
    with _session(c, state_required=False) as session:
        clean_run(session, logs=logs, trees=trees)


@task(help={"release": "the series whose lock file to regenerate, e.g. 2026.1"})
@_guard
def lock(c, release):
    """Regenerate the lite tree's releases/RELEASE/requirements.lock from PyPI."""
    from grenade.deployers.lite import lock_release, read_lock

    path = lock_release(release)
    print(f"{release}: {path} ({len(read_lock(path))} pins)")


def _phase(kind: str) -> Task:
    @_guard
    def body(c, force=False):
        with _session(c) as session:
            phases.run_kinds(session, [kind], force=force)

    body.__doc__ = KIND_HELP[kind]
    body.__name__ = kind.replace("-", "_")
    return Task(body, name=kind, help={"force": "re-run steps already done"})


phase = Collection("phase", *(_phase(k) for k in KINDS))

ns = Collection(setup, base, upgrade, verify, destroy, run, plan, status, clean, lock, phase)
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
