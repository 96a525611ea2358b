"""The fault matrix for setup (issue 9): a database client save-state would miss,
setup interrupted by a signal, and where the hooks' exit trap says a command failed.

Real processes throughout: `invoke` in its own process on the fixture projects,
real bash, real git; programs are hidden by giving the run a PATH without them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest
from conftest import FIXTURES, REPO, invoke, trace, typed_config
from faults import fault
from fixtures.shell import grenade_env as genv
from test_phases import _alive

from grenade import LITE_TREE
from grenade.dbcheck import check_db_clients
from grenade.plugins import Settings
from grenade.record import SetupRecord
from grenade.session import Session
from grenade.setup import make_grenade_dir

ALPHA_SETTINGS = FIXTURES / "projects" / "10_alpha" / "settings"
SLOW = FIXTURES / "faults_setup" / "slow"
ERREXIT = FIXTURES / "faults_setup" / "errexit"


def path_without(bindir: Path, hidden: set[str]) -> str:
    """A PATH of one directory: links to every program on ours but `hidden`."""
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            link = bindir / entry.name
            if entry.name in hidden or os.path.lexists(link):
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return str(bindir)


def fake_programs(bindir: Path, *names: str) -> Path:
    bindir.mkdir()
    for name in names:
        (bindir / name).write_text("#!/bin/sh\nexit 0\n")
        (bindir / name).chmod(0o755)
    return bindir


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().split(")")[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > end:
            out, err = proc.communicate()
            raise AssertionError(f"{path} never appeared (exit {proc.returncode}):\n{err}")
        time.sleep(0.05)


def _not_set_up(stack: Path) -> bool:
    state = stack / "save" / "run-state.json"
    return not state.exists() or json.loads(state.read_text()).get("setup") is None


def _start(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "-f", str(config), "run"],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


# --- 9.4: a database client save-state would miss ---------------------------------------


@fault(
    "9.4",
    "a registered database whose client is missing (DATABASE_TYPE mysql, no mysql on PATH)",
    1,
    "setup fails before any step, naming DATABASES_TO_SAVE, the database and the settings "
    "file that registered it, DATABASE_TYPE and its stackrc, the missing programs and the PATH",
)
def test_missing_database_client_fails_at_setup(run_yaml, tmp_path):
    config = run_yaml()
    stack = config.parent / "stack"
    stackrc = stack / "old" / "devstack" / "stackrc"
    stackrc.parent.mkdir(parents=True)
    stackrc.write_text("DATABASE_TYPE=${DATABASE_TYPE:-mysql}\n")
    path = path_without(tmp_path / "bin", {"mysql", "mysqldump"})
    proc = invoke(config, "run", env={"PATH": path})
    assert proc.returncode == 1, proc.stderr
    assert (
        f"setup: DATABASES_TO_SAVE has alpha (registered by project alpha's settings, "
        f"{ALPHA_SETTINGS}) and DATABASE_TYPE is mysql (from {stackrc}): save-state needs "
        f"mysql, mysqldump; not found on PATH ({path})"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert trace(stack) == []  # no hook ran
    assert not list((stack / "logs").glob("steps/*"))
    assert _not_set_up(stack)
    # The clients on the PATH the hooks get (a package installed, a deployer's PATH): fine.
    clients = fake_programs(tmp_path / "clients", "mysql", "mysqldump")
    proc = invoke(config, "setup", env={"PATH": f"{clients}:{path}"})
    assert proc.returncode == 0, proc.stderr


def _db_session(tmp_path: Path, deployer: str, stackrc: str | None) -> Session:
    """A session of `deployer` whose GRENADE_DIR is written and whose base tree has
    `stackrc` (a link to a whole tree when it is a directory)."""
    stack = tmp_path / "stack"
    base = stack / "old" / "devstack"
    base.parent.mkdir(parents=True)
    if stackrc is not None and Path(stackrc).is_dir():
        base.symlink_to(stackrc)
    elif stackrc is not None:
        base.mkdir()
        (base / "stackrc").write_text(stackrc)
    config = typed_config(stack_root=str(stack), deployer=deployer, projects_dirs=[])
    session = Session(config, console=io.StringIO())
    make_grenade_dir(SetupRecord(), session)
    return session


ALPHA_RECORD = SetupRecord(
    settings=Settings(databases=["alpha"], database_sources={"alpha": str(ALPHA_SETTINGS)})
)


def test_missing_client_is_a_warning_when_the_deployer_stacks(tmp_path, monkeypatch):
    # devstack installs the database and its clients when it stacks: not yet there is fine
    path = path_without(tmp_path / "bin", {"mysql", "mysqldump"})
    # Before the session: it takes the hooks' PATH from the environment it starts in.
    monkeypatch.setenv("PATH", path)
    session = _db_session(tmp_path, "devstack", "DATABASE_TYPE=mysql\n")
    assert check_db_clients(ALPHA_RECORD, session) is ALPHA_RECORD
    said = session.console.getvalue()
    assert "setup: warning: DATABASES_TO_SAVE has alpha" in said
    assert "save-state needs mysql, mysqldump; not found on PATH" in said
    assert "the devstack deployer's stack.sh must install them" in said


def test_lite_tree_needs_postgresql_clients(tmp_path, monkeypatch):
    # The lite tree's own stackrc (PostgreSQL by default): save-state looks psql and
    # pg_dump up on the hooks' PATH (lite's bin dirs only join PATH inside stackrc's
    # subshell); where the machine has them, as the lite runs here, nothing is said.
    session = _db_session(tmp_path, "lite", str(LITE_TREE))
    if all(shutil.which(p) for p in ("psql", "pg_dump", "pg_restore")):
        check_db_clients(ALPHA_RECORD, session)
        assert session.console.getvalue() == ""
    path = path_without(tmp_path / "bin", {"psql", "pg_dump"})
    monkeypatch.setenv("PATH", path)
    # a host's environment is the one grenade started with: a new session, a new host
    session = _db_session(tmp_path / "again", "lite", str(LITE_TREE))
    check_db_clients(ALPHA_RECORD, session)
    said = session.console.getvalue()
    assert f"DATABASE_TYPE is postgresql (from {session.paths.base_devstack}/stackrc)" in said
    assert "save-state needs psql, pg_dump; not found on PATH" in said
    assert "the lite deployer's stack.sh must install them" in said  # it does, as root


def test_sqlite_and_unknown_types_need_nothing(tmp_path, monkeypatch):
    path = path_without(tmp_path / "bin", {"mysql", "mysqldump", "psql", "pg_dump"})
    monkeypatch.setenv("PATH", path)
    for n, stackrc in enumerate(("DATABASE_TYPE=sqlite\n", "DATABASE_TYPE=oracle\n", None)):
        session = _db_session(tmp_path / str(n), "external", stackrc)
        assert check_db_clients(ALPHA_RECORD, session) is ALPHA_RECORD
        assert session.console.getvalue() == ""


# --- 9.6: setup interrupted --------------------------------------------------------------


def _interrupt_settings(run_yaml, tmp_path: Path, sig: int) -> Path:
    config = run_yaml(projects_dirs=[str(FIXTURES / "projects"), str(SLOW)])
    stack = config.parent / "stack"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    pidfile = tmp_path / "sleepy.pid"
    proc = _start(config, {"SLEEPY_PIDFILE": str(pidfile), "TMPDIR": str(tmpdir)})
    _wait_for(pidfile, proc)
    bash, child = map(int, pidfile.read_text().split())
    started = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 128 + sig, err
    assert f"setup interrupted by signal {sig}" in out + err
    assert "Traceback" not in err
    # the settings bash, its background child and anything else of its group: gone
    assert not _alive(bash) and not _alive(child)
    assert _group_members(bash) == []
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("grenade-")] == []
    assert list((stack / "grenade").glob(".settings-*")) == []
    assert _not_set_up(stack)
    assert trace(stack) == []
    return config


@fault(
    "9.6",
    "SIGINT (Ctrl-C) while the settings are sourced at setup",
    130,
    "the settings bash's process group is killed, its scratch files removed, "
    "'setup interrupted by signal 2'; nothing recorded; the next run sets up and passes",
)
def test_sigint_during_settings(run_yaml, tmp_path):
    config = _interrupt_settings(run_yaml, tmp_path, signal.SIGINT)
    proc = invoke(config, "run")
    assert proc.returncode == 0, proc.stderr
    assert "destroyed" in trace(config.parent / "stack")


@fault(
    "9.6",
    "SIGTERM while the settings are sourced at setup",
    143,
    "as for SIGINT: process group killed, nothing left in TMPDIR, nothing recorded",
)
def test_sigterm_during_settings(run_yaml, tmp_path):
    _interrupt_settings(run_yaml, tmp_path, signal.SIGTERM)


@fault(
    "9.6",
    "SIGHUP (the terminal or SSH session gone) while the settings are sourced at setup",
    129,
    "as for SIGTERM",
)
def test_sighup_during_settings(run_yaml, tmp_path):
    _interrupt_settings(run_yaml, tmp_path, signal.SIGHUP)


@fault(
    "9.6b",
    "SIGTERM while setup fetches a tree with git",
    143,
    "git and its children are stopped (SIGTERM, then SIGKILL), the half-made checkout "
    "removed; nothing recorded; the next run prepares the trees and passes",
)
def test_sigterm_during_git_fetch(run_yaml, tmp_path):
    src = tmp_path / "devstack-src"
    src.mkdir()
    (src / "README").write_text("tree\n")
    repo = git.Repo.init(src, initial_branch="master")
    repo.index.add(["README"])
    repo.index.commit("one")
    repo.create_head("stable/2025.2")
    repo.create_head("stable/2026.1")
    # A git on PATH whose first fetch hangs, in a child, until the test's signal.
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    pidfile = tmp_path / "git.pid"
    (wrap / "git").write_text(
        "#!/bin/bash\n"
        'if [[ " $* " == *" fetch "* && -n ${SLOW_GIT_PIDFILE:-} && ! -e $SLOW_GIT_PIDFILE ]]; '
        "then\n"
        '    sleep 30 &\n    echo "$$ $!" >"$SLOW_GIT_PIDFILE"\n    wait\nfi\n'
        f'exec {shutil.which("git")} "$@"\n'
    )
    (wrap / "git").chmod(0o755)
    config = run_yaml(
        base={"repo": str(src), "branch": "stable/2025.2"},
        target={"repo": str(src), "branch": "stable/2026.1"},
    )
    stack = config.parent / "stack"
    path = f"{wrap}:{os.environ['PATH']}"
    proc = _start(config, {"PATH": path, "SLOW_GIT_PIDFILE": str(pidfile)})
    _wait_for(pidfile, proc)
    wrapper, child = map(int, pidfile.read_text().split())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "setup interrupted by signal 15" in out + err
    assert not _alive(wrapper) and not _alive(child)
    assert not (stack / "old" / "devstack" / ".git").exists()
    assert _not_set_up(stack)
    proc = invoke(config, "run", env={"PATH": path})
    assert proc.returncode == 0, proc.stderr
    assert "destroyed" in trace(stack)


# --- 9.12c: the exit trap names the failing line ------------------------------------------


@fault(
    "9.12c",
    "a hook fails under errexit inside a function",
    1,
    "the step log says 'Failed at FILE:LINE (in FUNCTION)' and the call stack with real "
    "line numbers (not 'line 1'); the exit code is the command's",
)
def test_exit_trap_names_the_failing_line(run_yaml):
    config = run_yaml(projects_dirs=[str(ERREXIT)])
    proc = invoke(config, "run")
    assert proc.returncode == 1, proc.stderr
    hook = ERREXIT / "10_failing" / "upgrade.sh"
    assert "FAILED step upgrade/failing" in proc.stderr
    (log,) = (config.parent / "stack" / "logs" / "steps").glob("*upgrade*failing*")
    text = log.read_text()
    assert f"Failed at {hook}:9 (in migrate_failing), exit code 1" in text
    assert f"9 migrate_failing {hook}\n13 main {hook}\n" in text
    assert "Exit code: 1" in text
    assert "not reached" not in text


@pytest.mark.parametrize(
    ("body", "stack"),
    [
        # an explicit exit: the line bash no longer knows is "?", the callers' are real
        ("function leave { exit 4; }\nleave\n", ["? leave {s}", "3 main {s}"]),
        # a failure ignored by || and a function tested by if leave no stale location
        ("set -o errexit\nf() { false; }\nf || true\nif f; then :; fi\nexit 1\n", ["? main {s}"]),
    ],
)
def test_exit_trap_without_a_failing_command(tmp_path, body, stack):
    env = genv.make_grenade_dir(tmp_path)
    script = tmp_path / "hook.sh"
    script.write_text(genv.PRELUDE + "\n" + body)
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    lines = proc.stderr.splitlines()
    assert "Failed at" not in proc.stderr
    start = lines.index("Call stack (line function file):") + 1
    assert lines[start : start + len(stack)] == [s.format(s=script) for s in stack]
