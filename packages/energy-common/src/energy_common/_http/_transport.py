"""One attempt of a call: send, follow redirects safely, read the body under a size limit."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from energy_common._http._redirect import redirect_method, same_origin, strip_credentials
from energy_common.exceptions import ExternalServiceError
from energy_common.health._redact import redact

__all__ = ["Answer", "TransportFailure", "send_following_redirects"]

_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "idempotency-key")


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer: status, headers and the (decoded) body bytes."""

    status: int
    headers: httpx.Headers
    body: bytes


class TransportFailure(Exception):  # noqa: N818 - internal signal, never leaves the package
    """The peer could not be reached or the connection broke (wraps the httpx error)."""


async def send_following_redirects(
    http: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    headers: dict[str, str],
    content: bytes | None,
    max_redirects: int,
    max_bytes: int,
    service: str,
) -> Answer:
    """Send a request and follow up to ``max_redirects`` redirects by hand.

    Credentials (``Authorization``, cookies, custom auth headers) are dropped as soon as
    a hop leaves the original origin, and stay dropped for the following hops.

    Raises:
        TransportFailure: Connection, protocol or timeout error from httpx.
        ExternalServiceError: Too many redirects, a bad ``Location`` or a body over ``max_bytes``.
    """
    origin = url
    for _ in range(max_redirects + 1):
        request = http.build_request(method, url, headers=headers, content=content)
        try:
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise TransportFailure(redact(str(exc) or type(exc).__name__)) from exc
        try:
            if not response.has_redirect_location:
                return Answer(response.status_code, response.headers, await _read(response, max_bytes, service))
            try:
                next_url = response.url.join(response.headers["location"])
            except httpx.InvalidURL as exc:
                raise ExternalServiceError(
                    f"{service} redirected to an invalid Location.", {"service": service}
                ) from exc
            if next_url.scheme not in {"http", "https"}:
                raise ExternalServiceError(f"{service} redirected to a non-HTTP URL.", {"service": service})
            if not same_origin(origin, next_url):
                headers = strip_credentials(headers)
            new_method = redirect_method(response.status_code, method)
            if new_method != method:
                content = None
                headers = {k: v for k, v in headers.items() if k not in _BODY_HEADERS}
            method, url = new_method, next_url
        except httpx.TransportError as exc:
            raise TransportFailure(redact(str(exc) or type(exc).__name__)) from exc
        finally:
            await response.aclose()
    raise ExternalServiceError(
        f"{service} redirected more than {max_redirects} times; check its URL.", {"service": service}
    )


async def _read(response: httpx.Response, max_bytes: int, service: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(service, max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(service, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(service: str, max_bytes: int) -> ExternalServiceError:
    return ExternalServiceError(
        f"{service} answered with more than {max_bytes} bytes; raise max_response_bytes if that is expected.",
        {"service": service, "max_response_bytes": max_bytes},
    )
