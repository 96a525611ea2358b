"""The lite tree's MariaDB backend (lib/databases/mysql) and keystone's SQLite-lock
explanation (lib/keystone), run by real bash.

The main job on MariaDB is one slow real run (`invoke run --rehearse-rollback` with
``database: mysql``: the rollback rehearsal too;
a few minutes, plus Debian's mariadb-server package installed by the tree's stack.sh
when missing) that serves every assertion: the upgrade's versions and checks, the
save-state dumps made by mysqldump from the private server, and that server stopped
after `clean`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import invoke
from test_main_job import config, listening
from test_rollback import FIXTURE, PROJECTS, rehearsal_checks

from grenade.deployers.lite.tree import TREE_DIR


def tree_bash(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``script`` in bash in the lite tree, with its functions-common sourced."""
    return subprocess.run(
        ["bash", "-c", "source functions-common\n" + script, "bash", *args],
        cwd=TREE_DIR,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
        timeout=120,
    )


def test_mysql_connection_url_names_pymysql_and_the_port():
    proc = tree_bash(
        "source lib/database; database_connection_url keystone",
        DATABASE_TYPE="mysql",
        DATABASE_USER="root",
        DATABASE_PASSWORD="pw",
        DATABASE_HOST="127.0.0.1",
        DATABASE_PORT="33061",
        DATA_DIR="/nonexistent",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "mysql+pymysql://root:pw@127.0.0.1:33061/keystone?charset=utf8\n"


def test_keystone_lock_on_sqlite_is_explained(tmp_path: Path):
    (tmp_path / "keystone.log").write_text(
        "ERROR keystone sqlite3.OperationalError: database is locked\n"
    )
    die = 'source lib/keystone; _lite_ks_die $LINENO "cannot create user demo"'
    proc = tree_bash(die, LITE_LOG_DIR=str(tmp_path), DATABASE_TYPE="sqlite")
    assert proc.returncode != 0
    assert "cannot create user demo: keystone's SQLite database was locked" in proc.stderr
    assert "'database: postgresql'" in proc.stderr
    # The same words from keystone on a server database are not SQLite's: no story.
    proc = tree_bash(die, LITE_LOG_DIR=str(tmp_path), DATABASE_TYPE="postgresql")
    assert proc.returncode != 0
    assert "cannot create user demo" in proc.stderr and "SQLite" not in proc.stderr


@pytest.mark.skipif(
    os.geteuid() != 0
    or "install ok installed"
    not in subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", "mariadb-server"], capture_output=True, text=True
    ).stdout,
    reason="needs root and Debian's mariadb-server installed (apt-get install is then a no-op)",
)
def test_apt_install_leaves_policy_rc_d_as_it_found_it(tmp_path: Path):
    policy = tmp_path / "policy-rc.d"
    install = "source lib/databases/mysql; _mysql_apt_install mariadb-server"
    proc = tree_bash(install, MYSQL_POLICY_RC_D=str(policy))
    assert proc.returncode == 0, proc.stderr
    assert not policy.exists()  # written for the install, removed after
    policy.write_text("#!/bin/sh\nexit 0\n")
    proc = tree_bash(install, MYSQL_POLICY_RC_D=str(policy))
    assert proc.returncode == 0, proc.stderr
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"  # the machine's own: untouched


@pytest.fixture
def stack_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="grenade-mariadb-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path / "stack"
    for side in ("new", "old"):  # never leave services or the server behind
        tree = path / "stack" / side / "devstack"
        if (tree / "unstack.sh").is_file():
            subprocess.run(["bash", "./unstack.sh"], cwd=tree, capture_output=True, timeout=120)
    shutil.rmtree(path, ignore_errors=True)


def database_port(stack_root: Path) -> int:
    for line in (stack_root / "data" / "lite.env").read_text().splitlines():
        name, _, value = line.partition("=")
        if name == "DATABASE_PORT":
            return int(value)
    raise AssertionError(f"no DATABASE_PORT in {stack_root / 'data' / 'lite.env'}")


@pytest.mark.slow
def test_invoke_run_on_mariadb(stack_root: Path):
    # the rollback rehearsal on MariaDB shares this run (tests/test_rollback.py)
    run_yaml = config(stack_root, database="mysql", projects_dirs=[str(FIXTURE), str(PROJECTS)])
    proc = invoke(run_yaml, "run", "--rehearse-rollback", timeout=2400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    rehearsal_checks(stack_root, out)
    assert "keystone      28.1.0 -> 29.1.0" in out
    assert "placement     14.0.0 -> 15.0.0" in out
    assert "swift         2.36.4 -> 2.37.4" in out
    assert "glance        31.1.0 -> 32.0.0" in out
    assert "FAIL" not in out
    checked = {
        (r["project"], r["phase"], r["resource"])
        for r in map(json.loads, (stack_root / "save" / "resource-results.jsonl").open())
    }
    assert ("glance", "verify-noapi", "image") in checked  # the row, read from MariaDB
    assert ("swift", "verify-noapi", "data_file") in checked

    # Every service of both sides with a database ran on the private server.
    confs = [p for p in stack_root.rglob("keystone.conf") if "site-packages" not in p.parts]
    assert confs and all("mysql+pymysql://" in p.read_text() for p in confs), confs
    save = stack_root / "save"
    glance_conf = stack_root / "data" / "etc" / "glance" / "glance-api.conf"
    assert "mysql+pymysql://" in glance_conf.read_text()
    for db in ("keystone", "placement", "glance"):
        for side in ("old", "new"):
            dump = (save / f"{db}.sql.{side}").read_text()
            assert "MariaDB dump" in dump and "CREATE TABLE" in dump, f"{db}.sql.{side}"

    port = database_port(stack_root)
    mysql_dir = stack_root / "data" / "mysql"
    assert listening(port)
    assert invoke(run_yaml, "destroy").returncode == 0
    proc = invoke(run_yaml, "clean")
    assert proc.returncode == 0, proc.stderr
    assert not listening(port)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(mysql_dir) not in ps
