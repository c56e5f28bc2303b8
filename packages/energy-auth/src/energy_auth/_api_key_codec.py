"""The flat field form of an :class:`~energy_auth.APIKeyRecord`, shared by the Redis and SQL stores."""

from __future__ import annotations

import json
from typing import Any

from energy_auth._api_keys import APIKeyRecord

__all__ = ["record_fields", "record_from_fields"]


def record_fields(record: APIKeyRecord) -> dict[str, Any]:
    """Column/field values of ``record`` (grants as sorted JSON lists; times as floats or ``None``)."""
    return {
        "key_id": record.key_id,
        "key_hash": record.key_hash,
        "subject": record.subject,
        "kind": record.kind,
        "permissions": json.dumps(sorted(record.permissions)),
        "roles": json.dumps(sorted(record.roles)),
        "expires_at": record.expires_at,
        "created_at": record.created_at,
        "last_used_at": record.last_used_at,
    }


def _time(value: Any) -> float | None:
    if value is None or value in (b"", ""):
        return None
    return float(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def record_from_fields(fields: dict[str, Any]) -> APIKeyRecord:
    """Rebuild a record from :func:`record_fields` values (bytes from Redis or values from SQL).

    Raises:
        KeyError, ValueError: A field is missing or malformed (the stores translate these).
    """
    return APIKeyRecord(
        key_id=_text(fields["key_id"]),
        key_hash=_text(fields["key_hash"]),
        subject=_text(fields["subject"]),
        kind=_text(fields["kind"]),
        permissions=frozenset(json.loads(_text(fields["permissions"]))),
        roles=frozenset(json.loads(_text(fields["roles"]))),
        expires_at=_time(fields.get("expires_at")),
        created_at=_time(fields.get("created_at")),
        last_used_at=_time(fields.get("last_used_at")),
    )
