"""ServiceClient: the resilient service-to-service HTTP client."""

from __future__ import annotations

import asyncio
import inspect
import json as jsonlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from energy_common._http._breaker import CircuitBreaker
from energy_common._http._errors import error_for_status
from energy_common._http._retry import IDEMPOTENT_METHODS, RETRY_STATUSES, RetryPolicy, parse_retry_after
from energy_common._http._transport import Answer, TransportFailure, send_following_redirects
from energy_common._http._verbs import CallOptions, Params, VerbsMixin
from energy_common.exceptions import (
    ConfigurationError,
    EnergyError,
    ExternalServiceError,
    ServiceUnavailableError,
    ValidationError,
)
from energy_common.health._redact import redact_url
from energy_common.propagation import inject_context

__all__ = ["ServiceClient", "TokenProvider"]

logger = logging.getLogger("energy_common.http_client")

# Parsed URLs kept per client for repeated paths (parsing is a large share of a call's CPU).
_TARGET_CACHE_SIZE = 256

#: Returns the bearer token for the next call (sync or async); cache and refresh it yourself.
TokenProvider = Callable[[], Awaitable[str] | str]


def _positive(label: str, value: float) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{label} must be a positive number of seconds, got {value!r}.")
    return float(value)


class ServiceClient(VerbsMixin):
    """Call another platform service over HTTP: timeouts, retries, a circuit breaker.

    Every call propagates the correlation id and W3C trace context, runs under an
    overall ``deadline`` (connect, retries and the whole body included, so a peer that
    drips bytes still times out), retries idempotent calls on connection failures and
    on 429/502/503/504 with exponential backoff and full jitter (honouring
    ``Retry-After``), fails fast while the circuit is open, follows redirects itself
    without forwarding credentials to another origin, and refuses bodies above
    ``max_response_bytes``. One connection pool per client; safe to share across tasks.

    Errors: 400/422 → ValidationError, 401 → AuthenticationError, 403 →
    AuthorizationError, 404 → ResourceNotFoundError, 409 → ConflictError, 429 →
    RateLimitExceededError (``retry_after``), other statuses ≥ 400 →
    ExternalServiceError, timeouts, connection failures and an open circuit →
    ServiceUnavailableError. ``details`` names the ``service`` and the
    ``remote_error_code``.

    Args:
        base_url: The peer's root, e.g. ``"http://auth-service:8005"``; call paths are relative to it.
        service_name: Name in errors and logs (default: the host).
        timeout: Seconds allowed between bytes of the answer (and to write the request).
        connect_timeout: Seconds allowed to open a connection.
        deadline: Overall seconds per call, all attempts included.
        retries: Extra attempts for retryable calls (0 disables).
        retry: A full :class:`RetryPolicy` (overrides ``retries``).
        breaker: A :class:`CircuitBreaker` to use (share one between clients of a host);
            by default each client has its own.
        failure_threshold: Failures that open the default breaker.
        failure_window: Seconds over which the default breaker counts failures.
        recovery_time: Seconds the default breaker stays open before a trial call.
        unwrap_envelope: Return ``data`` when the peer answers with the platform envelope
            (``{"success": ..., "data": ...}``); False returns the body as sent.
        token_provider: Gives the bearer token sent as ``Authorization`` to this peer.
        max_response_bytes: Largest (decoded) answer accepted.
        headers: Headers sent with every call (only to the peer's own origin if sensitive).
        max_redirects: Redirect hops followed per attempt.
        max_connections: Size of the connection pool.
        transport: A custom httpx transport (TLS settings, tests).

    Raises:
        ConfigurationError: ``base_url`` is not an absolute http(s) URL or an option is invalid.

    Example:
        >>> async with ServiceClient("http://auth-service:8005") as client:  # doctest: +SKIP
        ...     user_data = await client.get("/users/123")
        ...     result = await client.post("/users", {"name": "John", "email": "john@example.com"})
    """

    def __init__(
        self,
        base_url: str,
        *,
        service_name: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        deadline: float = 30.0,
        retries: int = 2,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        failure_threshold: int = 5,
        failure_window: float = 30.0,
        recovery_time: float = 15.0,
        unwrap_envelope: bool = True,
        token_provider: TokenProvider | None = None,
        max_response_bytes: int = 10 * 1024 * 1024,
        headers: Mapping[str, str] | None = None,
        max_redirects: int = 5,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ConfigurationError(f"base_url {redact_url(str(base_url))!r} is not a valid URL.") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise ConfigurationError(f"base_url must be an absolute http(s) URL, got {redact_url(base_url)!r}.")
        if url.userinfo:
            raise ConfigurationError("base_url must not carry credentials; use token_provider or headers instead.")
        if max_response_bytes < 1 or max_redirects < 0 or max_connections < 1:
            raise ConfigurationError("max_response_bytes and max_connections must be >= 1, max_redirects >= 0.")
        self.base_url = url
        self.service_name = service_name or url.host
        self.deadline = _positive("deadline", deadline)
        self.retry = retry if retry is not None else RetryPolicy(retries=retries)
        self.breaker = breaker or CircuitBreaker(
            self.service_name,
            failure_threshold=failure_threshold,
            failure_window=failure_window,
            recovery_time=recovery_time,
        )
        self.unwrap_envelope = unwrap_envelope
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self._token_provider = token_provider
        self._headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        self._targets: dict[str, httpx.URL] = {}
        read = _positive("timeout", timeout)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=min(max_connections, 20))
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(read, connect=_positive("connect_timeout", connect_timeout)),
            limits=limits,
            follow_redirects=False,
            trust_env=False,
            # Service calls carry no cookies: a jar that accepts none cannot leak one.
            cookies=httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))),
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        """Return the client (the pool opens connections lazily)."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the connection pool."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        await self._http.aclose()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._http.is_closed

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
        """Send one call (with retries) and return the decoded JSON answer.

        Args:
            method: HTTP method.
            path: Path relative to ``base_url`` (absolute URLs are refused).
            json: Body to send as JSON (None sends no body).
            params: Query parameters.
            headers: Extra headers for this call.
            **options: :class:`CallOptions` (deadline, retries, unwrap_envelope, idempotency_key).

        Returns:
            The decoded JSON (the envelope's ``data`` when unwrapping), None for an empty body.

        Raises:
            EnergyError: The mapped error (see the class docstring).
            ConfigurationError: ``path`` is absolute or the client is closed.
            ValidationError: ``json`` cannot be encoded as strict JSON.

        Errors raised by ``token_provider`` propagate unchanged.
        """
        method = method.upper()
        if "://" in path or path.startswith("//"):
            raise ConfigurationError(f"ServiceClient paths are relative to base_url; got {redact_url(path)!r}.")
        if self._http.is_closed:
            raise ConfigurationError(f"The ServiceClient for {self.service_name} is closed; create a new one.")
        deadline = _positive("deadline", options.get("deadline", self.deadline))
        call_headers = dict(self._headers)
        call_headers.update({str(k).lower(): str(v) for k, v in (headers or {}).items()})
        if "idempotency_key" in options:
            call_headers["idempotency-key"] = str(options["idempotency_key"])
        inject_context(call_headers)
        content = None
        if json is not None:
            try:
                content = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"The body for {method} {path} to {self.service_name} cannot be sent as JSON: {exc}.",
                    {"service": self.service_name, "method": method},
                ) from exc
            call_headers.setdefault("content-type", "application/json")
        retryable = method in IDEMPOTENT_METHODS or "idempotency-key" in call_headers
        retries = options.get("retries", self.retry.retries) if retryable else 0
        target = self._target(path, params)
        ctx = {"service": self.service_name, "method": method, "path": target.path}
        scope = asyncio.timeout(deadline)
        sent = False
        try:
            async with scope:
                if self._token_provider is not None and "authorization" not in call_headers:
                    token = self._token_provider()  # inside the deadline: a stuck provider cannot hang the call
                    call_headers["authorization"] = f"Bearer {await token if inspect.isawaitable(token) else token}"
                sent = True
                answer = await self._attempts(
                    method, target, headers=call_headers, content=content, retries=retries, deadline=deadline, ctx=ctx
                )
        except TimeoutError as exc:
            if not scope.expired():
                raise
            if sent:  # only the peer's slowness counts against its circuit
                self.breaker.record_failure()
            raise ServiceUnavailableError(
                f"{self.service_name} did not answer {method} {target.path} within the {deadline:g} s deadline; "
                "retry later or check that service's health.",
                {**ctx, "deadline": deadline},
            ) from exc
        return self._decode(answer, method, ctx, options.get("unwrap_envelope", self.unwrap_envelope))

    def _target(self, path: str, params: Params | None) -> httpx.URL:
        """Resolve ``path`` against base_url (parsed URLs of param-less paths are cached)."""
        if not params and (cached := self._targets.get(path)) is not None:
            return cached
        relative = httpx.URL(path, params=params) if params else httpx.URL(path)
        base = self._http.base_url
        target = base.copy_with(raw_path=base.raw_path + relative.raw_path.lstrip(b"/"))
        if not params:
            if len(self._targets) >= _TARGET_CACHE_SIZE:
                self._targets.clear()  # ids in paths make the set unbounded: start over
            self._targets[path] = target
        return target

    async def _attempts(
        self,
        method: str,
        target: httpx.URL,
        *,
        headers: dict[str, str],
        content: bytes | None,
        retries: int,
        deadline: float,
        ctx: dict[str, Any],
    ) -> Answer:
        loop = asyncio.get_running_loop()
        start = loop.time()
        attempt = 0
        while True:
            if not self.breaker.allow():
                wait = self.breaker.retry_after()
                error = ServiceUnavailableError(
                    f"The circuit to {self.service_name} is open after repeated failures; retry in {wait:.1f} s.",
                    {**ctx, "circuit": self.breaker.state.value, "retry_after": round(wait, 3)},
                )
                error.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                raise error
            try:
                answer = await send_following_redirects(
                    self._http,
                    method,
                    target,
                    headers=headers,
                    content=content,
                    max_redirects=self.max_redirects,
                    max_bytes=self.max_response_bytes,
                    service=self.service_name,
                )
            except asyncio.CancelledError:
                self.breaker.release()
                raise
            except TransportFailure as exc:
                self.breaker.record_failure()
                delay = self.retry.backoff(attempt)
                if attempt >= retries or loop.time() - start + delay >= deadline:
                    raise ServiceUnavailableError(
                        f"Cannot reach {self.service_name} for {method} {target.path}: {exc}. Retry later.",
                        {**ctx, "attempts": attempt + 1, "reason": type(exc.__cause__).__name__},
                    ) from exc
            except EnergyError:
                self.breaker.record_success()  # the peer answered; the answer was unusable
                raise
            else:
                if answer.status >= 500:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                if answer.status not in RETRY_STATUSES or attempt >= retries:
                    return answer
                retry_after = parse_retry_after(answer.headers.get("retry-after"))
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    return answer
                delay = retry_after if retry_after is not None else self.retry.backoff(attempt)
                if loop.time() - start + delay >= deadline:
                    return answer
            logger.info(
                "retrying %s %s to %s (attempt %d of %d) in %.3f s",
                method,
                target.path,
                self.service_name,
                attempt + 2,
                retries + 1,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1

    def _decode(self, answer: Answer, method: str, ctx: dict[str, Any], unwrap: bool) -> Any:
        body: Any = None
        if answer.body and method != "HEAD":
            try:
                body = jsonlib.loads(answer.body)
            except ValueError as exc:
                if answer.status < 400:
                    raise ExternalServiceError(
                        f"{self.service_name} answered {method} {ctx['path']} with a body that is not JSON.",
                        {**ctx, "status_code": answer.status},
                    ) from exc
        if answer.status >= 400:
            raise error_for_status(
                answer.status,
                body,
                service=self.service_name,
                method=method,
                path=ctx["path"],
                retry_after=parse_retry_after(answer.headers.get("retry-after")),
            )
        if unwrap and isinstance(body, dict) and isinstance(body.get("success"), bool) and "data" in body:
            return body["data"]
        return body
