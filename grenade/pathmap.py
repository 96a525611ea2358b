"""Controller paths rewritten to a node's: what a remote host's step is given.

Steps are built with the controller's paths (its stack_root, GRENADE_DIR, trees,
project directories). A node has its copies elsewhere (grenade.ship): a `PathMap`
rewrites every controller path prefix, wherever it appears in an argv word, an
environment value, the cwd or a shell file's text, to the node's location. A prefix
counts only as a whole path: at the start of the text or after a separator (blank,
``=``, ``:``, a quote, ``,``, ``(``), and followed by ``/``, the end or a
separator, so ``/opt/stack`` never rewrites ``/opt/stacked``. The longest prefix
wins (a project directory under the stack_root is mapped by its own pair).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

SEPARATORS = "\\s=:'\",("


def _norm(path: str | Path) -> str:
    text = str(PurePosixPath(path))
    return text.rstrip("/") or "/"


@dataclass(frozen=True)
class PathMap:
    """Ordered ``controller prefix -> node prefix`` pairs (absolute paths)."""

    pairs: tuple[tuple[str, str], ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        useful = {_norm(a): _norm(b) for a, b in self.pairs if _norm(a) != _norm(b)}
        for prefix in useful:
            if prefix == "/" or not prefix.startswith("/"):
                raise ValueError(f"not a path prefix to map: {prefix!r}")
        ordered = tuple(sorted(useful.items(), key=lambda kv: (-len(kv[0]), kv[0])))
        object.__setattr__(self, "pairs", ordered)
        if ordered:
            alternatives = "|".join(re.escape(a) for a, _ in ordered)
            pattern = rf"(?<![^{SEPARATORS}])(?:{alternatives})(?=/|$|[{SEPARATORS};)])"
            object.__setattr__(self, "_pattern", re.compile(pattern))

    @classmethod
    def of(cls, pairs: Iterable[tuple[str | Path, str | Path]]) -> PathMap:
        return cls(tuple((str(a), str(b)) for a, b in pairs))

    @property
    def identity(self) -> bool:
        return self._pattern is None

    def text(self, value: str) -> str:
        """`value` with every controller path prefix in it rewritten."""
        if self._pattern is None or "/" not in value:
            return value
        table = dict(self.pairs)
        return self._pattern.sub(lambda m: table[m.group(0)], value)

    def path(self, value: Path | str | None) -> str | None:
        return None if value is None else self.text(str(value))

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [self.text(a) for a in argv]

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {k: self.text(v) for k, v in env.items()}

    def is_mapped(self, path: str | Path) -> bool:
        """Whether `path` lies under one of the controller prefixes."""
        text = _norm(path)
        return any(text == a or text.startswith(a + "/") for a, _ in self.pairs)
