"""The database server (or SQLite directory) dbsnap.py works on: what every backend does,
and how its client programs are found and run."""

from __future__ import annotations

import abc
import argparse
import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from dbsnap_files import PASSWORD_ENV, SnapError, tail


class Backend(abc.ABC):
    """One database server (or SQLite directory) and the tools that reach it."""

    name = ""
    dump_format = ""

    def __init__(self, args: argparse.Namespace) -> None:
        self.host: str = args.host or ""
        self.port: str = str(args.port) if args.port else ""
        self.timeout: float = args.timeout
        self.password = os.environ.get(PASSWORD_ENV, "")

    def where(self) -> str:
        """The server as messages name it (never the password)."""
        if self.port:
            return f"{self.host or 'localhost'}:{self.port}"
        return self.host or "the default socket"

    def label(self, db: str) -> str:
        return f"{self.name} database {db!r}"

    def run(
        self,
        argv: list[str],
        what: str,
        *,
        env: dict[str, str] | None = None,
        input: str | None = None,
        stdin_path: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        tool = os.path.basename(argv[0])
        try:
            with contextlib.ExitStack() as stack:
                stdin: Any = subprocess.DEVNULL if input is None else None
                if stdin_path is not None:
                    stdin = stack.enter_context(open(stdin_path, "rb"))
                out = subprocess.run(
                    argv,
                    input=input,
                    stdin=stdin,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    env=env,
                    timeout=self.timeout,
                )
        except subprocess.TimeoutExpired:
            raise SnapError(f"{what}: {tool} did not finish within {self.timeout:g}s") from None
        if out.returncode != 0:
            raise SnapError(f"{what}: {tool} failed (exit {out.returncode}): {tail(out.stderr)}")
        return out

    # Each backend implements these.
    @abc.abstractmethod
    def probe(self, db: str) -> tuple[bool, str]:
        """Whether db exists, and the server's version."""
        ...

    @abc.abstractmethod
    def dump(self, db: str, dest: Path) -> dict[str, str]:
        """Write db's dump to dest; return the tool's name and version."""
        ...

    @abc.abstractmethod
    def sql_copy(self, db: str, dump: Path, dest: Path) -> None: ...

    @abc.abstractmethod
    def restore(self, db: str, dump: Path, record: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def tables(self, db: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def values(self, db: str, table: str, columns: list[str]) -> list[list[str]]:
        """Every row of a table the tool knows by name (alembic_version...), as text."""
        ...

    def require(self, db: str) -> str:
        """The server's version; an error naming db when it does not exist."""
        exists, version = self.probe(db)
        if not exists:
            raise SnapError(f"{self.label(db)} does not exist on {self.where()}")
        return version


def program(names: list[str], package: str, dirs: list[str] | None = None) -> str:
    """The first of names found in dirs, else on PATH."""
    for name in names:
        for d in dirs or []:
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
        path = shutil.which(name)
        if path:
            return path
    raise SnapError(f"{names[0]} not found on PATH: install the {package} package", 2)
