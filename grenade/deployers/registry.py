"""Deployer lookup by the config's `deployer` name."""

from __future__ import annotations

from importlib import import_module

from ..errors import ConfigError
from . import Deployer

_DEPLOYERS = {
    "external": ("grenade.deployers.external", "ExternalDeployer"),
    "devstack": ("grenade.deployers.devstack", "DevstackDeployer"),
    "lite": ("grenade.deployers.lite", "LiteDeployer"),
}


def get_deployer(name: str) -> Deployer:
    try:
        module, cls = _DEPLOYERS[name]
    except KeyError:
        raise ConfigError(
            f"config key 'grenade.deployer': unknown deployer {name!r}; "
            f"one of {', '.join(_DEPLOYERS)}"
        ) from None
    return getattr(import_module(module), cls)()
