"""Installed, not editable: `pip install <checkout>` into a virtualenv gives a `grenade`
command that works from any directory, with the bash library, the in-tree projects
and the lite tree shipped inside the package.

Slow (a package build, ~10 s). The venv sees the test interpreter's packages (a
`.pth`), so only grenade itself is installed (`--no-deps`). The
build runs offline (`--no-build-isolation`) when this interpreter can build a wheel;
otherwise pip fetches the build backend, as `pip install .` does. No real upgrade here:
tests/test_main_job.py runs one; `setup` and `plan` prove the shipped files are found.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

DATA_DIRS = ("shell", "projects", "devstack_trees")


def _can_build_offline() -> bool:
    """setuptools' wheel builder needs the `wheel` package before setuptools 70.1."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from setuptools import __version__ as version

    major, minor = (int(p) for p in version.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("install")
    # A copy of the source, as a clone would be: no build/ left by an earlier build,
    # no egg-info, no bytecode.
    src = root / "src"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"
        ),
    )
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    # pip, the build backend and grenade's dependencies: this interpreter's packages
    # (also when it runs in a virtualenv itself, which --system-site-packages would skip)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    (site / "test-interpreter.pth").write_text(
        "".join(f"{p}\n" for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    )
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    if _can_build_offline():
        pip.append("--no-build-isolation")
    proc = subprocess.run([*pip, str(src)], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield env_dir


def grenade(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "grenade"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def installed_package(venv: Path, cwd: Path) -> Path:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import grenade; print(grenade.PACKAGE_DIR)"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(proc.stdout.strip())


def data_files(package: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file of the data directories: content and whether it is executable."""
    files = {}
    for name in DATA_DIRS:
        for path in sorted((package / name).rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            executable = bool(os.stat(path).st_mode & stat.S_IXUSR)
            files[path.relative_to(package).as_posix()] = (path.read_bytes(), executable)
    return files


def test_installed_package_ships_every_data_file(venv: Path, tmp_path: Path):
    package = installed_package(venv, tmp_path)
    assert package.is_relative_to(venv), package  # not the checkout, not an editable install
    source, installed = data_files(REPO / "grenade"), data_files(package)
    assert sorted(installed) == sorted(source)
    # hidden files, files without an extension, per-release data, the tree's tools
    for name in (
        "devstack_trees/lite/.gitignore",
        "devstack_trees/lite/stackrc",
        "devstack_trees/lite/inc/python",
        "devstack_trees/lite/lib/databases/postgresql",
        "devstack_trees/lite/releases/2026.1/requirements.lock",
        "devstack_trees/lite/tools/oshttp.py",
        "projects/10_keystone/settings",
        "shell/grenaderc",
    ):
        assert name in installed
    # same bytes and modes: the lite tree's branches get the same SHAs as from a checkout
    assert installed == source


@pytest.fixture
def stack() -> Iterator[Path]:
    """A stack_root the postgres user can enter (the lite deployer checks it at setup)."""
    path = Path(tempfile.mkdtemp(prefix="grenade-install-", dir="/var/tmp"))
    os.chmod(path, 0o755)
    yield path / "stack"
    shutil.rmtree(path, ignore_errors=True)


def test_grenade_command_from_a_plugin_repository(venv: Path, stack: Path, tmp_path: Path):
    plugin = tmp_path / "plugin"  # a plugin's repository with its own invoke tasks
    (plugin / "devstack" / "upgrade").mkdir(parents=True)
    (plugin / "tasks.py").write_text("from invoke import task\n\n@task\ndef hello(c):\n    pass\n")

    proc = grenade(venv, "--list", cwd=plugin)
    assert proc.returncode == 0, proc.stderr
    for name in ("run", "setup", "plan", "status", "clean", "phase.stack-base"):
        assert f"  {name} " in proc.stdout
    assert "hello" not in proc.stdout
    assert grenade(venv, "--version", cwd=plugin).stdout.strip().startswith("grenade ")

    # setup with the defaults (the lite deployer, the in-tree projects) finds the lite
    # tree and the projects inside the installed package
    run_yaml = plugin / "run.yaml"
    run_yaml.write_text(f"grenade:\n  stack_root: {stack}\n")
    proc = grenade(venv, "-f", "run.yaml", "setup", cwd=plugin)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    package = installed_package(venv, tmp_path)
    assert f"project keystone: {package / 'projects' / '10_keystone'}" in proc.stdout
    assert f"project placement: {package / 'projects' / '15_placement'}" in proc.stdout
    assert "stable/2025.2" in proc.stdout and "release 2026.1" in proc.stdout
    assert (stack / "old" / "devstack" / "stack.sh").is_file()
    assert (stack / "grenade" / "devstack" / "functions-common").is_file()
    proc = grenade(venv, "-f", str(run_yaml), "plan", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "stack-base" in proc.stdout
    assert f"{package / 'projects' / '15_placement' / 'upgrade.sh'}" in proc.stdout


def test_grenade_command_reads_invoke_config(venv: Path, tmp_path: Path):
    stack = tmp_path / "stack"
    # INVOKE_GRENADE_* (invoke's env prefix, as with `python3 -m invoke`)
    proc = grenade(venv, "status", cwd=tmp_path, INVOKE_GRENADE_STACK_ROOT=str(stack))
    assert proc.returncode == 0, proc.stderr
    assert f"{stack}: no run set up" in proc.stdout
    # a -f file with a top-level key that is not grenade's is refused, naming the line
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"grenad:\n  stack_root: {stack}\n")
    proc = grenade(venv, "-f", str(bad), "plan", cwd=tmp_path)
    assert proc.returncode != 0
    assert f"{bad}:1: top-level key 'grenad' is unknown" in proc.stderr
    # a stack_root holding the installed package is refused (clean removes under it)
    proc = grenade(venv, "status", cwd=tmp_path, INVOKE_GRENADE_STACK_ROOT=str(venv))
    assert proc.returncode != 0
    assert "must not be / or contain the grenade checkout or package" in proc.stderr
