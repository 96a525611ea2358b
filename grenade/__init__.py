"""grenade: upgrade testing for OpenStack, a Python re-implementation of Grenade."""

from pathlib import Path

__version__ = "0.1.0"

# Everything grenade runs ships inside the package (package data), so a checkout, an
# editable install and `pip install .` find it the same way, from any directory.
PACKAGE_DIR = Path(__file__).resolve().parent
SHELL_DIR = PACKAGE_DIR / "shell"  # the bash library plugins source
PROJECTS_DIR = PACKAGE_DIR / "projects"  # the in-tree projects (the default projects_dirs)
TREES_DIR = PACKAGE_DIR / "devstack_trees"  # the embedded devstack trees
LITE_TREE = TREES_DIR / "lite"  # the lite deployer's tree (the embedded default)
