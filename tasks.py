"""The checkout's invoke entry point: `python3 -m invoke TASK` runs grenade's tasks.

The tasks live in `grenade.cli`; the installed `grenade` command runs the same `ns`.
"""

from grenade.cli import ns

__all__ = ["ns"]
