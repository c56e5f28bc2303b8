"""Service settings from environment variables (and ``.env``), validated at start-up.

:class:`Settings` reads ``SERVICE_NAME``, ``ENVIRONMENT``, ``LOG_LEVEL``, ``DATABASE_URL``,
``REDIS_URL``, ``JWT_SECRET_KEY``, ``MQTT_BROKER_HOST``, ``MQTT_BROKER_PORT``, ``MQTT_URL``
and the CORS, security-header, body-limit and request-log options. A package or service
extends it by subclassing; an invalid value raises
:class:`~energy_common.exceptions.ConfigurationError` whose message names the variable
(never its value, which may be a secret).

List settings accept JSON (``["https://a.example"]``) or a comma-separated string
(``https://a.example,https://b.example``).

Example:
    >>> from energy_common.config import Settings
    >>> class AuthSettings(Settings):
    ...     token_ttl_seconds: int = 900
    >>> AuthSettings(service_name="auth").token_ttl_seconds
    900
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from energy_common.exceptions import ConfigurationError

__all__ = ["Environment", "Settings", "get_settings"]

Environment = Literal["development", "testing", "staging", "production"]
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_CommaList = Annotated[list[str], NoDecode]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Settings shared by every service; subclass to add a service's own.

    Attributes mirror the environment variables (case-insensitive), e.g.
    ``service_name`` ← ``SERVICE_NAME``. Secrets are ``SecretStr``: call
    ``.get_secret_value()`` where the raw value is needed.

    Raises:
        ConfigurationError: A value is invalid; the message names each variable.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    service_name: str = Field(default="energy-service", pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
    environment: Environment = "development"
    debug: bool = False
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "sqlite+aiosqlite:///./energy.db"
    redis_url: str | None = None
    jwt_secret_key: SecretStr | None = None
    mqtt_broker_host: str = "localhost"
    mqtt_broker_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_url: str | None = None

    cors_origins: _CommaList = Field(default_factory=list)
    cors_origin_regex: str | None = None
    cors_allow_credentials: bool = False
    cors_allow_methods: _CommaList = Field(default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE"])
    cors_allow_headers: _CommaList = Field(default_factory=lambda: ["Authorization", "Content-Type", "X-Request-ID"])
    cors_expose_headers: _CommaList = Field(default_factory=lambda: ["X-Request-ID"])
    cors_max_age: int = Field(default=600, ge=0, le=86400)

    security_headers_enabled: bool = True
    hsts_enabled: bool = True
    hsts_max_age: int = Field(default=31_536_000, ge=0)
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    content_security_policy: str | None = None

    max_body_size: int = Field(default=1_048_576, ge=1)
    request_log_enabled: bool = True
    request_log_exclude: _CommaList = Field(default_factory=lambda: ["/health*", "/metrics"])
    problem_json: bool = False

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, type(self)), {"variables": _variables(exc, type(self))}) from exc

    @field_validator("cors_origins", "cors_allow_methods", "cors_allow_headers", "cors_expose_headers", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("request_log_exclude", mode="before")
    @classmethod
    def _exclude_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        name = value.strip().upper()
        name = "WARNING" if name == "WARN" else name
        if name not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return name

    @field_validator("database_url", "redis_url", "mqtt_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a URL with a scheme, e.g. postgresql+asyncpg://host/db")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "CORS_ORIGINS='*' together with CORS_ALLOW_CREDENTIALS=true would let any site read "
                "authenticated responses; list the allowed origins explicitly"
            )
        if self.environment == "production":
            if self.debug:
                raise ValueError("DEBUG must be false when ENVIRONMENT=production")
            secret = self.jwt_secret_key
            if secret is not None and len(secret.get_secret_value()) < 32:
                raise ValueError("JWT_SECRET_KEY must be at least 32 characters when ENVIRONMENT=production")
        return self

    @property
    def is_production(self) -> bool:
        """Tell whether ``ENVIRONMENT`` is ``production``."""
        return self.environment == "production"


def _env_name(model: type[BaseSettings], field: str) -> str:
    prefix = str(model.model_config.get("env_prefix", ""))
    info = model.model_fields.get(field)
    name = info.alias if info is not None and info.alias else field
    return f"{prefix}{name}".upper()


def _variables(exc: ValidationError, model: type[BaseSettings]) -> list[str]:
    names = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        names.append(_env_name(model, str(loc[0])) if loc else "settings")
    return names


def _describe(exc: ValidationError, model: type[BaseSettings]) -> str:
    # Built from the location and message only: the input value may be a secret.
    problems = []
    for error, name in zip(exc.errors(), _variables(exc, model), strict=True):
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        problems.append(message if name == "settings" else f"{name}: {message}")
    return f"Invalid configuration of {model.__name__}: " + "; ".join(problems) + ". Fix the environment and restart."


@functools.cache
def get_settings() -> Settings:
    """Return the process-wide :class:`Settings`, read once from the environment.

    Use it as a FastAPI dependency (``Depends(get_settings)``); tests call
    ``get_settings.cache_clear()`` after changing the environment.
    """
    return Settings()
