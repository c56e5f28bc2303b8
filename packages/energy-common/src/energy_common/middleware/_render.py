"""Turn an ``ErrorResponse`` into bytes on the wire (envelope or RFC 9457 problem)."""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.types import Scope, Send

from energy_common.responses import PROBLEM_JSON, ErrorResponse

__all__ = ["error_body", "error_response", "send_error"]

_NO_BODY = frozenset({204, 304})


def error_body(error: ErrorResponse, *, problem_json: bool = False, path: str | None = None) -> tuple[bytes, str]:
    """Return the encoded body and its media type."""
    if problem_json:
        body = json.dumps(error.to_problem(instance=path), separators=(",", ":"), default=str)
        return body.encode("utf-8"), PROBLEM_JSON
    return error.model_dump_json(by_alias=True).encode("utf-8"), "application/json"


def error_response(error: ErrorResponse, *, problem_json: bool = False, path: str | None = None) -> Response:
    """Build a Starlette response for ``error`` with its status and extra headers.

    Example:
        >>> from energy_common.responses import ErrorResponse
        >>> error_response(ErrorResponse.not_found("User", 1)).status_code
        404
    """
    if error.status_code in _NO_BODY:
        return Response(status_code=error.status_code, headers=error.headers)
    body, media_type = error_body(error, problem_json=problem_json, path=path)
    return Response(body, status_code=error.status_code, headers=error.headers, media_type=media_type)


async def send_error(scope: Scope, send: Send, error: ErrorResponse, *, problem_json: bool = False) -> None:
    """Send ``error`` as a complete HTTP response through a raw ASGI ``send``."""
    body, media_type = error_body(error, problem_json=problem_json, path=scope.get("path"))
    headers = [
        (b"content-type", media_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    headers.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in error.headers.items())
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
