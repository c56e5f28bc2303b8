"""The verb shortcuts of :class:`~energy_common.http_client.ServiceClient` and their per-call options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, Unpack

__all__ = ["CallOptions", "Params", "VerbsMixin"]

#: Query parameters: a value may repeat as a list.
Params = Mapping[str, str | int | float | bool | list[str] | None]


class CallOptions(TypedDict, total=False):
    """Per-call overrides accepted by every verb of ``ServiceClient``.

    Attributes:
        deadline: Overall seconds for this call, retries and body included.
        retries: Extra attempts for this call.
        unwrap_envelope: Return the envelope's ``data`` (True) or the whole body.
        idempotency_key: Sent as ``Idempotency-Key``; makes POST/PATCH retryable.
    """

    deadline: float
    retries: int
    unwrap_envelope: bool
    idempotency_key: str


class VerbsMixin:
    """``get``/``post``/``put``/``patch``/``delete`` on top of ``request``."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> Any:
        """Send one call; implemented by the client."""
        raise NotImplementedError

    async def get(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> Any:
        """GET ``path`` and return the decoded JSON (see :meth:`request`)."""
        return await self.request("GET", path, params=params, headers=headers, **options)

    async def post(
        self,
        path: str,
        json: Any = None,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> Any:
        """POST ``json`` to ``path``; retried only with an ``idempotency_key``."""
        return await self.request("POST", path, json=json, params=params, headers=headers, **options)

    async def put(
        self,
        path: str,
        json: Any = None,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> Any:
        """PUT ``json`` to ``path`` (idempotent: retried)."""
        return await self.request("PUT", path, json=json, params=params, headers=headers, **options)

    async def patch(
        self,
        path: str,
        json: Any = None,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> Any:
        """PATCH ``json`` to ``path``; retried only with an ``idempotency_key``."""
        return await self.request("PATCH", path, json=json, params=params, headers=headers, **options)

    async def delete(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> Any:
        """DELETE ``path`` (idempotent: retried)."""
        return await self.request("DELETE", path, params=params, headers=headers, **options)
