"""The fault matrix, secrets: hooks that print passwords, and who may read the run's files.

A fixture project (`fixtures/secret_projects/10_leaky`) runs its hooks with
`set -o xtrace` and echoes the passwords and tokens of a 0600 localrc, a key its
settings export and a variable the config lists under `secret_names`. Every run is
a real `python3 -m invoke` process; each test checks the exit code, that no secret
reaches the console, grenade.log, the step logs or any other file grenade writes
(the generated localrc, where they must live, excepted), and that ``******`` shows
where they were.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, invoke
from faults import fault

from grenade.logs import LogSink
from grenade.secrets import MASK, Masker

ADMIN = "adm1n-Pa55word"
TOKEN = "svc-token-5e1f0a"
LISTED = "custom-2718-value"
PLAIN = "plain-visible-1618"
SETTINGS_KEY = "leaky-settings-key-3141"  # exported by the fixture's settings
LOCALRC = f"""\
ADMIN_PASSWORD={ADMIN}
SERVICE_PASSWORD=$ADMIN_PASSWORD
SERVICE_TOKEN={TOKEN}
LEAKY_CUSTOM={LISTED}
LEAKY_PLAIN={PLAIN}
"""
# The settings' exports are part of the setup record: a later task (another
# process) hands them to its hooks, so the run state keeps them (0600, in save/).
STATE_FILES = {"save/run-state.json", "save/run-state.json.prev"}


def _leaky_run(
    run_yaml, tmp_path: Path, env: dict[str, str] | None = None, **grenade: object
) -> tuple[subprocess.CompletedProcess[str], Path]:
    localrc = tmp_path / "localrc"
    localrc.write_text(LOCALRC)
    localrc.chmod(0o600)
    config = run_yaml(
        projects_dirs=[str(FIXTURES / "secret_projects")],
        enabled_services="leaky",
        localrc_file=str(localrc),
        **grenade,
    )
    return invoke(config, "run", env=env), config.parent / "stack"


def _files_with(stack: Path, needle: str) -> set[str]:
    """Every file under the stack_root holding `needle`, relative to it."""
    found = set()
    for path in stack.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.add(str(path.relative_to(stack)))
    return found


def _step_log(stack: Path, step: str) -> str:
    """A step log, its masks shown as MASK: a step log is masked in place, each value
    by as many `*` as it has bytes (the file keeps its length; see grenade.logs)."""
    (path,) = (stack / "logs" / "steps").glob(f"[0-9][0-9][0-9]-{step}@*.log")
    return _as_mask(path.read_text())


def _as_mask(text: str) -> str:
    return re.sub(r"\*{4,}", MASK, text)


@fault(
    "9.5",
    "a hook with `set -o xtrace` prints ADMIN_PASSWORD, SERVICE_TOKEN (localrc) and a key "
    "its settings export",
    0,
    "the values are `******` on the console (verbose too), in grenade.log and in every step "
    "log; only the generated localrc (and the run state, for the settings' exports) keep them",
)
def test_xtrace_secrets_are_masked_everywhere(run_yaml, tmp_path):
    proc, stack = _leaky_run(run_yaml, tmp_path, verbose=True)
    assert proc.returncode == 0, proc.stderr
    console = proc.stdout + proc.stderr
    for secret in (ADMIN, TOKEN, SETTINGS_KEY):
        assert secret not in console
    assert f"admin password {MASK}, service password {MASK}" in console  # verbose hook lines
    assert _files_with(stack, ADMIN) == {"grenade/localrc"}
    assert _files_with(stack, TOKEN) == {"grenade/localrc"}
    assert _files_with(stack, SETTINGS_KEY) <= STATE_FILES
    upgrade = _step_log(stack, "upgrade_leaky")
    assert f"+ echo 'admin password {MASK}, service password {MASK}'" in upgrade  # xtrace
    assert f"token {MASK}, settings key {MASK}" in upgrade
    assert f"created with {MASK}" in _step_log(stack, "create_leaky")
    assert f"stopping with {MASK}" in _step_log(stack, "shutdown_leaky")
    assert f"admin password {MASK}" in (stack / "logs" / "grenade.log").read_text()


@fault(
    "9.5b",
    "the generated localrc was 0644 with a 0600 source; save/, grenade/ and logs/ readable by all",
    0,
    "save/, grenade/, logs/ (and logs/steps/) are 0700, every file grenade writes there "
    "0600 (localrc, run-state.json, grenade_db.ini, step logs, grenade.log), owned by "
    "stack_user when grenade runs as root",
)
def test_run_files_are_private_to_the_hook_user(run_yaml, tmp_path):
    as_root = os.geteuid() == 0
    proc, stack = _leaky_run(run_yaml, tmp_path, **({"stack_user": "nobody"} if as_root else {}))
    assert proc.returncode == 0, proc.stderr
    owner = (65534, 65534) if as_root else (os.geteuid(), os.getegid())
    for name in ("save", "grenade", "logs", "logs/steps"):
        st = (stack / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o700, name
        assert (st.st_uid, st.st_gid) == owner, name
    for name in ("grenade/localrc", "grenade/defaults", "logs/grenade.log"):
        st = (stack / name).stat()
        assert (st.st_uid, st.st_gid) == owner, name
    for name in ("save/run-state.json", "save/grenade_db.ini", "save/resource-results.jsonl"):
        assert (stack / name).is_file(), name
    for path in [
        stack / "grenade/localrc",
        *(stack / "save").rglob("*"),
        *(stack / "logs").rglob("*"),
    ]:
        if path.is_file() and not path.is_symlink():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    steps = list((stack / "logs" / "steps").iterdir())
    assert steps and all((p.stat().st_uid, p.stat().st_gid) == owner for p in steps)


@fault(
    "9.5c",
    "a secret whose name follows no devstack convention, listed under `secret_names`",
    0,
    "masked like the devstack ones; a variable nobody called secret stays readable",
)
def test_config_listed_secret_name_is_masked(run_yaml, tmp_path):
    proc, stack = _leaky_run(run_yaml, tmp_path, secret_names=["LEAKY_CUSTOM"])
    assert proc.returncode == 0, proc.stderr
    assert _files_with(stack, LISTED) == {"grenade/localrc"}
    upgrade = _step_log(stack, "upgrade_leaky")
    assert f"listed {MASK} plain {PLAIN}" in upgrade
    assert LISTED not in proc.stdout + proc.stderr


@fault(
    "9.5d",
    "a failing hook prints ADMIN_PASSWORD in the lines the failure message quotes",
    "the hook's code",
    "the failure block on stderr quotes the step log's tail masked (`******`)",
)
def test_failure_tail_is_masked(run_yaml, tmp_path):
    proc, stack = _leaky_run(run_yaml, tmp_path, env={"LEAKY_FAIL": "upgrade"})
    assert proc.returncode == 9, proc.stderr
    assert "FAILED step upgrade/leaky" in proc.stderr
    assert f"| cannot log in as admin with {MASK}" in _as_mask(proc.stderr)
    assert ADMIN not in proc.stdout + proc.stderr
    assert _files_with(stack, ADMIN) == {"grenade/localrc"}


@fault(
    "9.5e",
    "a hook leaves a child writing into its step log when the step ends (and the log is "
    "rewritten masked)",
    0,
    "the log is masked in place, on the same inode: the child's later lines follow it, "
    "none lost or garbled (they are not masked: the step is over)",
)
def test_masked_rewrite_keeps_a_background_writer(tmp_path):
    path = tmp_path / "step.log"
    masker = Masker()
    masker.add_env({"ADMIN_PASSWORD": ADMIN})
    lines: list[str] = []
    # thousands of secret lines to rewrite while a child left behind appends its own,
    # starting as the hook ends: the rewrite must lose none of them
    script = (
        f"for i in $(seq 3000); do echo {ADMIN} $i; done; "
        "( for i in $(seq 400); do echo child $i; done ) &"
    )
    with LogSink(path, lines.append, masker=masker) as sink:
        inode = os.fstat(sink.fileno()).st_ino
        proc = subprocess.Popen(
            ["bash", "-c", script], stdout=sink.fileno(), stderr=subprocess.STDOUT
        )
        proc.wait()
    assert ADMIN not in "\n".join(lines)
    assert path.stat().st_ino == inode
    deadline = time.monotonic() + 10
    while "child 400\n" not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = path.read_text()
    assert ADMIN not in text.split("child 1\n")[0]  # all the hook wrote is masked
    assert [ln for ln in text.splitlines() if ln.startswith("child")] == [
        f"child {i}" for i in range(1, 401)
    ]
    assert "\0" not in text and _as_mask(text).count(f"{MASK} ") == 3000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("value", ["abc", "True"])
@fault(
    "9.5f",
    "a secret variable holding a value too short or too common to be a secret (`abc`, `True`)",
    0,
    "left as it is: masking it would turn every log into asterisks",
)
def test_short_and_boolean_values_are_not_masked(value):
    masker = Masker()
    masker.add_env({"SHORT_KEY": value, "ADMIN_PASSWORD": ADMIN})
    assert masker.mask(f"{value} {ADMIN}") == f"{value} {MASK}"
    assert masker.mask_bytes(f"{value} {ADMIN}".encode()) == f"{value} {MASK}".encode()
