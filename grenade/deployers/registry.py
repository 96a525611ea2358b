"""The deployers by the config's `deployer` name: the one list of their names.

grenade.config validates `grenade.deployer` against `DEPLOYERS`, so this module must
not import the config (nor anything that does): each deployer's module is imported
only when it is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from . import Deployer

# name -> (module, class); in the order config errors list them.
_CLASSES: dict[str, tuple[str, str]] = {
    "lite": ("grenade.deployers.lite.deployer", "LiteDeployer"),
    "devstack": ("grenade.deployers.devstack", "DevstackDeployer"),
    "external": ("grenade.deployers.external", "ExternalDeployer"),
}
DEPLOYERS: tuple[str, ...] = tuple(_CLASSES)


def get_deployer(name: str) -> Deployer:
    try:
        module, cls = _CLASSES[name]
    except KeyError:
        raise ConfigError(
            f"config key 'grenade.deployer': unknown deployer {name!r}; "
            f"one of {', '.join(DEPLOYERS)}"
        ) from None
    deployer: Deployer = getattr(import_module(module), cls)()
    return deployer
