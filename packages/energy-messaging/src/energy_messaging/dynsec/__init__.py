"""Mosquitto 2 dynamic security, driven by one access policy and the device credentials.

Parts: ``_plan`` (pure: policy data → per-client ACLs, ACL diffs), ``_admin``
(:class:`DynamicSecurityClient`: commands over an :class:`~energy_messaging.MQTTManager`
on ``$CONTROL/dynamic-security/v1``, answers matched by correlation data),
``_sync`` (:class:`DynamicSecuritySync`: idempotent create/repair/disable/delete; a
credential listener) and ``_config`` (:func:`bootstrap_config`: the first config file
with an admin client). Takes the policy as plain data; never imports energy_auth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from energy_messaging._lazy import lazy_names

if TYPE_CHECKING:
    from energy_messaging.dynsec._admin import DynamicSecurityClient
    from energy_messaging.dynsec._config import bootstrap_config
    from energy_messaging.dynsec._errors import DynamicSecurityError
    from energy_messaging.dynsec._plan import (
        CONTROL_TOPIC,
        DEFAULT_ACL_ACCESS,
        RESPONSE_TOPIC,
        acl_changes,
        client_role_name,
        fill_pattern,
        role_acls,
    )
    from energy_messaging.dynsec._sync import CredentialChange, DynamicSecuritySync

_LAZY: dict[str, str] = {
    "CONTROL_TOPIC": "energy_messaging.dynsec._plan",
    "CredentialChange": "energy_messaging.dynsec._sync",
    "DEFAULT_ACL_ACCESS": "energy_messaging.dynsec._plan",
    "DynamicSecurityClient": "energy_messaging.dynsec._admin",
    "DynamicSecurityError": "energy_messaging.dynsec._errors",
    "DynamicSecuritySync": "energy_messaging.dynsec._sync",
    "RESPONSE_TOPIC": "energy_messaging.dynsec._plan",
    "acl_changes": "energy_messaging.dynsec._plan",
    "bootstrap_config": "energy_messaging.dynsec._config",
    "client_role_name": "energy_messaging.dynsec._plan",
    "fill_pattern": "energy_messaging.dynsec._plan",
    "role_acls": "energy_messaging.dynsec._plan",
}

__all__ = [
    "CONTROL_TOPIC",
    "DEFAULT_ACL_ACCESS",
    "RESPONSE_TOPIC",
    "CredentialChange",
    "DynamicSecurityClient",
    "DynamicSecurityError",
    "DynamicSecuritySync",
    "acl_changes",
    "bootstrap_config",
    "client_role_name",
    "fill_pattern",
    "role_acls",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
