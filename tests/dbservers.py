"""Private, real database servers for the tests: a PostgreSQL cluster and a MariaDB server,
each in its own temporary directory, on its own socket and a free loopback port.

Started once per test session (``pytest_plugins = ["dbservers"]`` in a test module shares
them across modules) and stopped at its end. A test that needs one is skipped, with the
package to install, when the server binaries are missing. They start the way the lite tree's
lib/databases/{postgresql,mysql} start them: PostgreSQL as the ``postgres`` user when we are
root (it refuses to run as root), MariaDB as whoever we are. Clients log in over TCP with a
password, as services and dbsnap.py do: PostgreSQL asks for SCRAM on TCP, MariaDB has a user
with a password.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sshd import free_port

START_TIMEOUT = 30.0
PASSWORD = "s3cret-dbsnap-pw"  # tests assert it never shows up in output


@dataclass
class DbServer:
    backend: str  # dbsnap's --backend: postgresql | mysql
    port: int
    user: str
    password: str
    dir: Path
    admin: list[str] = field(repr=False)  # argv of a client logged in as the superuser
    host: str = "127.0.0.1"

    def conn_args(self) -> list[str]:
        """dbsnap.py's connection options for this server."""
        return [
            "--backend",
            self.backend,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--user",
            self.user,
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBSNAP_PASSWORD": self.password}

    def sql(self, db: str, sql: str) -> str:
        """Run SQL statements in db as the superuser; their output, tab-separated."""
        argv = [*self.admin, "-d" if self.backend == "postgresql" else "-D", db]
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.backend} {db}: {proc.stderr.strip()}\n{sql}")
        return proc.stdout

    def create_db(self, db: str) -> None:
        maintenance = "postgres" if self.backend == "postgresql" else "mysql"
        quoted = f'"{db}"' if self.backend == "postgresql" else f"`{db}`"
        self.sql(maintenance, f"DROP DATABASE IF EXISTS {quoted};\n")
        self.sql(maintenance, f"CREATE DATABASE {quoted};\n")


def _wait(ready: Callable[[], bool], alive: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start:\n{log.read_text() if log.exists() else ''}")


def _pg_bin_dir() -> Path | None:
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[-2].split(".")],
    )
    for d in reversed(dirs):
        if os.access(Path(d) / "initdb", os.X_OK):
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _open_tmp(prefix: str) -> Path:
    """A directory other users can enter: pytest's tmp dirs are 0700, under /tmp/pytest-of-root."""
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DbServer]:
    bindir = _pg_bin_dir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    for tool in ("psql", "pg_dump", "pg_restore"):
        if not (bindir / tool).exists() and not shutil.which(tool):
            pytest.skip(f"{tool} not found: apt-get install postgresql-client")
    as_owner: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root needs the 'postgres' user (postgresql package) to run it")
        as_owner = ["runuser", "-u", "postgres", "--"]
    root = _open_tmp("grenade-pg-")
    data, sock, log = root / "data", root / "run", root / "postgresql.log"
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    sock.mkdir()
    if as_owner:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        shutil.chown(pwfile, "postgres")
    port = free_port()
    subprocess.run(
        [
            *as_owner,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pg_ctl = [*as_owner, str(bindir / "pg_ctl"), "-D", str(data)]
    options = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    started = subprocess.run(
        [*pg_ctl, "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    try:
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log.read_text()}")
        psql = shutil.which("psql") or str(bindir / "psql")
        admin = [
            psql,
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(sock),
            "-p",
            str(port),
            "-U",
            "postgres",
        ]
        yield DbServer("postgresql", port, "postgres", PASSWORD, root, admin)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DbServer]:
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install_db = shutil.which("mariadb-install-db")
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not (server and install_db and client):
        pytest.skip(
            "MariaDB (mariadbd, mariadb-install-db, mariadb) not found: "
            "apt-get install mariadb-server mariadb-client"
        )
    for tool in ("mysqldump", "mysql"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not found: apt-get install mariadb-client")
    root = _open_tmp("grenade-mariadb-")
    data, sock, log = root / "data", root / "mysqld.sock", root / "mysqld.log"
    user = pwd.getpwuid(os.geteuid()).pw_name
    subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--user={user}",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--pid-file={root / 'mysqld.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--log-error={log}",
            "--character-set-server=utf8mb4",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=8M",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    admin = [
        client,
        "--no-defaults",
        "-u",
        "root",
        f"--socket={sock}",
        "--batch",
        "--skip-column-names",
    ]
    try:

        def ready() -> bool:
            probe = subprocess.run([*admin, "-e", "SELECT 1"], capture_output=True, timeout=10)
            return probe.returncode == 0

        _wait(ready, lambda: proc.poll() is None, "MariaDB", log)
        db = DbServer("mysql", port, "grenade", PASSWORD, root, admin)
        db.sql(
            "mysql",
            f"CREATE USER 'grenade'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'grenade'@'127.0.0.1';\n",
        )
        yield db
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class SqliteDir:
    """DATABASE_SQLITE_DIR with the DbServer interface the tests use: <db>.db files."""

    dir: Path
    backend: str = "sqlite"
    password: str = ""

    def conn_args(self) -> list[str]:
        return ["--backend", "sqlite", "--sqlite-dir", str(self.dir)]

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def sql(self, db: str, sql: str) -> str:
        with contextlib.closing(sqlite3.connect(self.dir / f"{db}.db")) as conn, conn:
            rows = [row for stmt in sql.split(";") if stmt.strip() for row in conn.execute(stmt)]
        return "".join("\t".join(str(c) for c in row) + "\n" for row in rows)

    def create_db(self, db: str) -> None:
        (self.dir / f"{db}.db").unlink(missing_ok=True)
        sqlite3.connect(self.dir / f"{db}.db").close()


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> SqliteDir:
    (tmp_path / "sqlite").mkdir()
    return SqliteDir(tmp_path / "sqlite")


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def database(request: pytest.FixtureRequest) -> DbServer | SqliteDir:
    """Each backend in turn: the private servers, and an SQLite directory."""
    names = {"postgresql": "postgres_server", "mysql": "mariadb_server", "sqlite": "sqlite_dir"}
    return request.getfixturevalue(names[request.param])
