"""The lite deployer: the embedded default, a real upgrade on one ordinary machine.

The lite devstack tree (``grenade/devstack_trees/lite/``) deploys REAL keystone and placement
from PyPI into one virtualenv per release, runs them as supervised processes on a
private PostgreSQL cluster, and provides the devstack files and functions grenade
plugins source. This package turns that tree into something grenade can check out,
and drives it:

* ``tree``: where the tree is, the branch -> release table, the download cache;
* ``repo``: ``build_repo(dest)``, the bare repository with one branch per release;
* ``locks``: ``lock_release`` and ``read_lock``, each release's ``requirements.lock``;
* ``prereqs``: ``check_prerequisites``, what the machine needs before stacking;
* ``versions``: the services a tree deploys, the version each venv holds, and the
  command reading the version each running service runs;
* ``deployer``: ``LiteDeployer`` and its ``local.conf`` layout;
* ``cli``: the maintainer commands (``python -m grenade.deployers.lite lock|build-repo``).

Run directory (see the tree's README): ``<stack_root>/old|new/devstack`` (trees),
``old|new/venv`` (release venvs), ``old|new/logs`` (service logs), ``data/`` (shared:
``etc/``, ``postgres/``, ``lite.env`` with the ports stack.sh chose).

The names below are the package's interface (``tasks.py``, the tree's README and the
tests import them from here).
"""

from __future__ import annotations

from .deployer import LiteDeployer
from .locks import lock_release, read_lock
from .prereqs import check_prerequisites
from .repo import build_repo
from .tree import BRANCHES, TREE_DIR
from .versions import tree_processes, tree_services

__all__ = [
    "BRANCHES",
    "TREE_DIR",
    "LiteDeployer",
    "build_repo",
    "check_prerequisites",
    "lock_release",
    "read_lock",
    "tree_processes",
    "tree_services",
]
