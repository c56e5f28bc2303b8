"""The broker auth HTTP endpoints (extra ``web``): EMQX and mosquitto-go-auth contracts.

::

    authenticator = BrokerAuthenticator(policy, credentials, tokens=mqtt_tokens, rate_limiter=RateLimitCache(redis))
    app.include_router(broker_auth_router(authenticator), prefix="/mqtt")

| route                   | broker setting                                   | allow              | deny                  |
|-------------------------|--------------------------------------------------|--------------------|-----------------------|
| ``POST /emqx/authn``    | EMQX ``authentication`` HTTP, body template below | 200 ``{"result": "allow", "is_superuser": false}`` | 200 ``{"result": "deny"}`` |
| ``POST /emqx/authz``    | EMQX ``authorization`` HTTP                      | 200 ``{"result": "allow"}`` | 200 ``{"result": "deny"}`` |
| ``POST /go-auth/user``  | ``auth_opt_http_getuser_uri``                    | 200 ``{"ok": true, "error": ""}`` | 403 ``{"ok": false, "error": "denied"}`` |
| ``POST /go-auth/superuser`` | ``auth_opt_http_superuser_uri`` (optional)   | never              | 403                   |
| ``POST /go-auth/acl``   | ``auth_opt_http_aclcheck_uri``                   | 200                | 403                   |

EMQX treats any status but 200/204 as "ignore" (the next source decides; for authz,
``no_match`` may then allow), so its routes answer every refusal — malformed or
oversized requests, an unavailable store — with 200 and an explicit ``deny``. go-auth
treats any non-2xx as a refusal, so its routes refuse with 403. The go-auth success body
suits ``auth_opt_http_response_mode`` ``status`` and ``json``; pass
``go_auth_response="text"`` for ``text`` mode (body ``ok``).
"""

from __future__ import annotations

from typing import Any, Literal

from energy_common._extras import missing_extra

try:
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, Response
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "web", exc) from exc

from energy_auth.broker._authenticator import BrokerAuthenticator
from energy_auth.broker._contracts import access_of, parse_fields

__all__ = ["DEFAULT_MAX_BODY_BYTES", "broker_auth_router"]

DEFAULT_MAX_BODY_BYTES = 16 * 1024
_METHODS = ["GET", "POST", "PUT"]


async def _fields(request: Request, max_body: int) -> dict[str, Any] | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            return None  # refuse without reading the rest into memory
        chunks.append(chunk)
    return parse_fields(
        request.headers.get("content-type", ""), b"".join(chunks), request.scope.get("query_string", b"")
    )


def broker_auth_router(
    authenticator: BrokerAuthenticator,
    *,
    go_auth_response: Literal["json", "text"] = "json",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> APIRouter:
    """Build the router of the broker auth endpoints (see the module docstring for the contracts).

    Args:
        authenticator: Decides every request.
        go_auth_response: Body of a go-auth success: ``"json"`` (``{"ok": true}``, also
            right for go-auth's ``status`` mode) or ``"text"`` (``ok``).
        max_body_bytes: Larger requests are refused without being read whole.

    The routes are for the broker only: serve them on an internal listener (they receive
    plaintext passwords), never through the public API gateway.
    """
    router = APIRouter(tags=["broker-auth"])

    def emqx(allowed: bool, extra: dict[str, Any] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"result": "allow" if allowed else "deny"}
        if allowed and extra:
            body.update(extra)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def go_auth(allowed: bool) -> Response:
        if go_auth_response == "text":
            return PlainTextResponse("ok" if allowed else "denied", status_code=200 if allowed else 403)
        return JSONResponse({"ok": allowed, "error": "" if allowed else "denied"}, status_code=200 if allowed else 403)

    @router.api_route("/emqx/authn", methods=_METHODS, include_in_schema=False)
    async def emqx_authn(request: Request) -> Response:
        fields = await _fields(request, max_body_bytes)
        if fields is None:
            return emqx(False)
        decision = await authenticator.authenticate(
            fields.get("username"), fields.get("password"), fields.get("clientid")
        )
        extra: dict[str, Any] = {"is_superuser": False}
        if decision.identity is not None and decision.identity.expires_at is not None:
            extra["expire_at"] = int(decision.identity.expires_at)  # EMQX >= 5.8 disconnects then
        return emqx(decision.allowed, extra)

    @router.api_route("/emqx/authz", methods=_METHODS, include_in_schema=False)
    async def emqx_authz(request: Request) -> Response:
        fields = await _fields(request, max_body_bytes)
        action = None if fields is None else fields.get("action")
        if fields is None or action not in ("publish", "subscribe"):
            return emqx(False)
        allowed = await authenticator.authorize(
            fields.get("username"), fields.get("clientid"), action, fields.get("topic")
        )
        return emqx(allowed)

    @router.api_route("/go-auth/user", methods=_METHODS, include_in_schema=False)
    async def go_auth_user(request: Request) -> Response:
        fields = await _fields(request, max_body_bytes)
        if fields is None:
            return go_auth(False)
        decision = await authenticator.authenticate(
            fields.get("username"), fields.get("password"), fields.get("clientid")
        )
        return go_auth(decision.allowed)

    @router.api_route("/go-auth/superuser", methods=_METHODS, include_in_schema=False)
    async def go_auth_superuser() -> Response:
        return go_auth(False)  # the policy has no superusers: every client goes through the ACL

    @router.api_route("/go-auth/acl", methods=_METHODS, include_in_schema=False)
    async def go_auth_acl(request: Request) -> Response:
        fields = await _fields(request, max_body_bytes)
        actions = None if fields is None else access_of(fields.get("acc"))
        if fields is None or actions is None:
            return go_auth(False)
        username, client_id, topic = fields.get("username"), fields.get("clientid"), fields.get("topic")
        if not actions:  # unsubscribe: harmless, but only for a client we know
            allowed = authenticator.knows(username)
        else:
            allowed = True
            for action in actions:
                allowed = allowed and await authenticator.authorize(username, client_id, action, topic)
        return go_auth(allowed)

    return router
