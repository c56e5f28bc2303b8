"""A first dynamic-security configuration file: one admin client, everything else denied.

Mosquitto's plugin reads its state from ``plugin_opt_config_file``; before the sync can
talk to ``$CONTROL/dynamic-security/v1`` it needs an admin client in that file. This
is what ``mosquitto_ctrl dynsec init <file> <admin>`` writes, without needing the
tool: the password is stored as Mosquitto stores it (PBKDF2-HMAC-SHA512, 12-byte
salt, base64), never in plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from energy_messaging.dynsec._plan import CONTROL_TOPIC, DEFAULT_ACL_ACCESS

__all__ = ["bootstrap_config"]

_SALT_BYTES = 12  # Mosquitto's SALT_LEN
_ADMIN_ROLE = "energy:dynsec-admin"


def bootstrap_config(admin_username: str, admin_password: str, *, iterations: int = 101) -> dict[str, Any]:
    """Return the JSON content of a dynamic-security config file with one admin client.

    The admin may publish commands to ``$CONTROL/dynamic-security/v1`` and read its
    response topic, nothing else; default ACL access denies everything but unsubscribe.

    Args:
        admin_username: The admin's MQTT username (non-empty, no ``:``-free rule needed).
        admin_password: Its password (at least 16 characters).
        iterations: PBKDF2 iterations (Mosquitto's default is 101).

    Raises:
        ValueError: If the username is empty or the password shorter than 16 characters.
    """
    if not admin_username:
        raise ValueError("The dynamic-security admin needs a non-empty username.")
    if len(admin_password) < 16:
        raise ValueError("The dynamic-security admin password must have at least 16 characters.")
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", admin_password.encode(), salt, iterations)
    topics = f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"
    acls = [
        {"acltype": kind, "topic": topics, "priority": 0, "allow": True}
        for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    return {
        "defaultACLAccess": {acl["acltype"]: acl["allow"] for acl in DEFAULT_ACL_ACCESS},
        "clients": [
            {
                "username": admin_username,
                "textname": "energy-messaging dynamic-security admin",
                "roles": [{"rolename": _ADMIN_ROLE}],
                "password": base64.b64encode(digest).decode(),
                "salt": base64.b64encode(salt).decode(),
                "iterations": iterations,
            }
        ],
        "groups": [],
        "roles": [{"rolename": _ADMIN_ROLE, "acls": acls}],
    }
