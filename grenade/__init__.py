"""grenade: upgrade testing for OpenStack, a Python re-implementation of Grenade."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
# grenade runs from a checkout, like the original: the in-tree projects and the
# embedded devstack trees live beside the package.
REPO_DIR = PACKAGE_DIR.parent
SHELL_DIR = PACKAGE_DIR / "shell"
