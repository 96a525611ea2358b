"""Where a configuration value comes from, said as a person looks for it: the file and
line of a YAML key, the `INVOKE_GRENADE_*` variable, or a YAML syntax error in one
line (`file:line:col: message`)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

ENV_SOURCE = "environment (INVOKE_GRENADE_*)"


def yaml_key_line(path: str | os.PathLike[str], keys: list[str]) -> int | None:
    """Line (1-based) of a nested key in a YAML file, for error messages."""
    try:
        node = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
            continue
        if not isinstance(node, yaml.MappingNode):
            return None
        for knode, vnode in node.value:
            if knode.value == key:
                node = vnode
                line = knode.start_mark.line + 1
                break
        else:
            return None
    return line


def yaml_error_text(path: str | os.PathLike[str], exc: Exception) -> str:
    """One line for a YAML syntax error (PyYAML's, or the copy invoke vendors):
    `file:line:col: message`, as compilers print."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")


def describe_origin(source: str, keys: tuple[str, ...]) -> str:
    """Where the config key `keys` of a source was set: `file:line`, the environment
    variable, or the source's name (the command line)."""
    if source == ENV_SOURCE:
        return "environment variable INVOKE_" + "_".join(k for k in keys if not k.isdigit()).upper()
    if os.path.isfile(source):
        line = yaml_key_line(source, list(keys))
        return f"{source}:{line}" if line else source
    return source
