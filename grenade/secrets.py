"""Secrets: which variables hold them, masking their values, keeping the run's files private.

A hook with ``set -o xtrace`` prints every password it expands. grenade cannot stop
that, but it knows the values: devstack's secret variables (``*_PASSWORD``,
``*_TOKEN``, ``*_KEY``, ``*_SECRET``, ``SWIFT_HASH``) and the names the config lists
under ``secret_names``, as the localrc, the trees' ``stackrc`` (with their
``local.conf``), the settings' exports, the deployer's hook environment and each
step's environment set them. A `Masker` replaces those values with ``******`` in
everything grenade writes or shows (grenade.logs).

The run's own directories under stack_root (``save/``, ``grenade/``, ``logs/``) are
made private to the user hooks run as: 0700 directories, 0600 files, owned by the
``stack_user`` when grenade runs as root.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import GrenadeConfig

MASK = "******"
# devstack's conventions for secrets (ADMIN_PASSWORD, SERVICE_TOKEN, RABBIT_PASSWORD,
# OS_PASSWORD, ...), in any case: over-masking a path is better than a leaked password.
SECRET_NAME = re.compile(r"(?:^|_)(?:PASSWORD|PASSWD|TOKEN|KEY|SECRET)$", re.IGNORECASE)
# devstack's secrets that follow no naming convention.
DEVSTACK_SECRETS = frozenset({"SWIFT_HASH"})
# Shorter values are not masked: a 1-3 character "secret" (or a flag such as "1")
# would turn every log into asterisks while hiding nothing worth hiding; nor are
# the booleans some *_KEY variables hold.
MIN_SECRET_LEN = 4
NOT_SECRETS = frozenset({"True", "False", "true", "false", "None", "null", "/dev/null"})

# Sources one bash file (its own output thrown away; errexit is off inside the
# `||`, and an `exit` in it only ends the sourcing) and prints every variable it
# left as NUL-separated name and value. The file is $1: nothing of it is pasted here.
DUMP_VARS = (
    'cd "${1%/*}" 2>/dev/null || exit 0; '
    "function exit { return 0; }; "
    '{ source "$1" || true; } >/dev/null 2>&1 </dev/null; '
    "unset -f exit; "
    'while IFS= read -r n; do printf "%s\\0%s\\0" "$n" "${!n-}"; done < <(compgen -v)'
)

Owner = tuple[int, int]  # uid, gid


def is_secret_name(name: str, listed: Iterable[str] = ()) -> bool:
    """Whether a variable of this name holds a secret (devstack's names, or `listed`)."""
    return bool(SECRET_NAME.search(name)) or name in DEVSTACK_SECRETS or name in listed


def shell_file_vars(path: Path, timeout: float = 30) -> dict[str, str]:
    """The variables a bash file (a localrc, a tree's stackrc) sets, as bash sees them.

    Sourced from its own directory with TOP_DIR set to it, as devstack's stackrc is.
    """
    try:
        proc = subprocess.run(
            ["bash", "-c", DUMP_VARS, "grenade-secrets", str(path)],
            capture_output=True,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": os.environ.get("HOME", "/"),
                "TOP_DIR": str(path.parent),
            },
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    parts = proc.stdout.decode(errors="surrogateescape").split("\0")
    return {parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def _forms(value: str) -> set[str]:
    """The ways a value shows up in a log: as is, as bash's xtrace quotes a value with
    a single quote in it, JSON-escaped, and line by line when it has several."""
    forms = {value, value.replace("'", "'\\''"), json.dumps(value)[1:-1]}
    if "\n" in value:
        forms.update(line.strip() for line in value.splitlines())
    return {f for f in forms if len(f) >= MIN_SECRET_LEN and f not in NOT_SECRETS}


class Masker:
    """Replaces known secret values with ``******``, in text and in bytes.

    Values are only ever added (a value once secret stays masked). One compiled
    pattern per type, rebuilt only when the set changes, longest value first so a
    secret containing another is masked whole. Safe to call from several threads:
    a rebuild swaps the patterns in one assignment.
    """

    def __init__(self, listed: Iterable[str] = (), files: Iterable[Path] = ()) -> None:
        self.listed = frozenset(listed)  # secret names the config lists
        self.files = tuple(files)  # bash files whose secret variables count
        self._values: frozenset[str] = frozenset()
        self._patterns: tuple[re.Pattern[str], re.Pattern[bytes]] | None = None
        self._seen: dict[Path, tuple[tuple[int, int, int], ...]] = {}

    def __bool__(self) -> bool:
        return self._patterns is not None

    def add(self, values: Iterable[str]) -> None:
        """Mask these values from now on."""
        new = {form for value in values for form in _forms(value)}
        if new <= self._values:
            return
        values_now = self._values | new
        ordered = sorted(values_now, key=lambda v: (-len(v), v))
        text = re.compile("|".join(map(re.escape, ordered)))
        data = re.compile(b"|".join(re.escape(v.encode(errors="surrogateescape")) for v in ordered))
        self._values, self._patterns = values_now, (text, data)

    def add_env(self, env: Mapping[str, object]) -> None:
        """Mask the values of the secret variables of an environment or localrc mapping."""
        self.add(
            str(value)
            for name, value in env.items()
            if value is not None and not isinstance(value, bool) and self.is_secret(name)
        )

    def is_secret(self, name: str) -> bool:
        return is_secret_name(name, self.listed)

    def refresh(self) -> None:
        """Read the secret variables of the files that appeared or changed since the
        last look (a stat each; bash only for a changed file)."""
        for path in self.files:
            key = _stat_key(path)
            if self._seen.get(path) == key:
                continue
            self._seen[path] = key
            if key[0] != (0, 0, 0):
                self.add_env(shell_file_vars(path))

    def mask(self, text: str) -> str:
        patterns = self._patterns
        return patterns[0].sub(MASK, text) if patterns else text

    def mask_bytes(self, data: bytes, same_length: bool = False) -> bytes:
        """`data` masked; with `same_length`, each value by as many `*` as it has
        bytes: a file rewritten in place then keeps its length (nothing to
        truncate, nothing a writer appends meanwhile lost, no room needed)."""
        patterns = self._patterns
        if not patterns:
            return data
        if same_length:
            return patterns[1].sub(lambda m: b"*" * len(m[0]), data)
        return patterns[1].sub(MASK.encode(), data)


def _stat_key(path: Path) -> tuple[tuple[int, int, int], ...]:
    """What tells a changed file: its and its companions' inode, size and mtime
    (a tree's stackrc reads its .localrc.auto, local.conf and .localrc.password)."""
    companions = [path]
    if path.name == "stackrc":
        companions += [path.parent / n for n in (".localrc.auto", "localrc", ".localrc.password")]
    keys = []
    for p in companions:
        try:
            st = p.stat()
            keys.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            keys.append((0, 0, 0))
    return tuple(keys)


def masker_for(cfg: GrenadeConfig, grenade_dir: Path, trees: Sequence[Path]) -> Masker:
    """The run's masker: the config's values, the environment grenade started in
    (hooks inherit it), the localrc files and the trees' stackrc."""
    files = [Path(cfg.localrc_file)] if cfg.localrc_file else []
    files += [grenade_dir / "localrc", *(tree / "stackrc" for tree in trees)]
    masker = Masker(cfg.secret_names, files)
    for values in (cfg.localrc, cfg.grenade_localrc, os.environ):
        masker.add_env(values)
    masker.refresh()
    return masker


# --- private files ------------------------------------------------------------------


def hook_owner(stack_user: str | None) -> Owner | None:
    """Whom the run's private files belong to besides grenade: the stack_user, when
    grenade runs as root (otherwise grenade's own user, who owns them anyway)."""
    if not stack_user or os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(stack_user)
    except KeyError:
        return None  # not created yet (devstack's own tools make it): root keeps them
    return account.pw_uid, account.pw_gid


def private_dir(path: Path, owner: Owner | None = None) -> Path:
    """`path` made (with its parents) and private: 0700, and `owner`'s when given.

    Only the directory itself: what others made inside it keeps its mode.
    """
    path.mkdir(parents=True, exist_ok=True)
    _private(path, 0o700, owner)
    return path


def private_fd(fd: int, owner: Owner | None = None) -> None:
    """An open file made private: 0600, and `owner`'s when given."""
    st = os.fstat(fd)
    with suppress(PermissionError):  # someone else's file: leave it as it is
        if st.st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
        if owner is not None and (st.st_uid, st.st_gid) != owner:
            os.fchown(fd, *owner)


def private_file(path: Path, owner: Owner | None = None) -> None:
    """`path` made private (0600, `owner`'s), created empty if missing, never truncated."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        private_fd(fd, owner)
    finally:
        os.close(fd)


def private_write(path: Path, text: str, owner: Owner | None = None) -> None:
    """Write a file that is private before it holds anything (0600, `owner`'s)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        private_fd(fd, owner)
        data = text.encode()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def _private(path: Path, mode: int, owner: Owner | None) -> None:
    st = path.stat()
    with suppress(PermissionError):
        if st.st_mode & 0o777 != mode:
            os.chmod(path, mode)
        if owner is not None and (st.st_uid, st.st_gid) != owner:
            os.chown(path, *owner)
