"""Tests for energy_common.config: Settings from the environment, validation, subclassing."""

from __future__ import annotations

from pathlib import Path

import pytest
from energy_common.config import Settings, get_settings
from energy_common.exceptions import ConfigurationError

_VARS = (
    "SERVICE_NAME",
    "ENVIRONMENT",
    "LOG_LEVEL",
    "DATABASE_URL",
    "REDIS_URL",
    "JWT_SECRET_KEY",
    "MQTT_BROKER_HOST",
    "MQTT_BROKER_PORT",
    "MQTT_URL",
    "CORS_ORIGINS",
    "CORS_ALLOW_CREDENTIALS",
    "DEBUG",
    "MAX_BODY_SIZE",
    "REQUEST_LOG_EXCLUDE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each test without inherited settings variables nor a stray .env file."""
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()


def test_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented variables are read (case-insensitively) into typed fields."""
    monkeypatch.setenv("SERVICE_NAME", "meter-api")
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/energy")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("JWT_SECRET_KEY", "s3cr3t-value")
    monkeypatch.setenv("MQTT_BROKER_HOST", "broker.local")
    monkeypatch.setenv("MQTT_BROKER_PORT", "8883")
    monkeypatch.setenv("MQTT_URL", "mqtts://broker.local:8883")
    settings = Settings()
    assert settings.service_name == "meter-api"
    assert settings.environment == "staging"
    assert settings.log_level == "DEBUG"
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.jwt_secret_key is not None
    assert settings.jwt_secret_key.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)
    assert settings.mqtt_broker_host == "broker.local"
    assert settings.mqtt_broker_port == 8883
    assert settings.mqtt_url == "mqtts://broker.local:8883"


def test_defaults() -> None:
    """Without environment the defaults are the embedded, safe ones."""
    settings = Settings()
    assert settings.environment == "development"
    assert settings.redis_url is None
    assert settings.jwt_secret_key is None
    assert settings.cors_origins == []
    assert settings.request_log_exclude == ["/health*", "/metrics"]
    assert settings.problem_json is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example,https://b.example", ["https://a.example", "https://b.example"]),
        (" https://a.example , ", ["https://a.example"]),
        ('["https://a.example"]', ["https://a.example"]),
        ("", []),
    ],
)
def test_list_variables(monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    """List settings accept comma-separated text or JSON."""
    monkeypatch.setenv("CORS_ORIGINS", value)
    assert Settings().cors_origins == expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MQTT_BROKER_PORT", "99999"),
        ("MQTT_BROKER_PORT", "not-a-port"),
        ("LOG_LEVEL", "LOUD"),
        ("ENVIRONMENT", "prod"),
        ("DATABASE_URL", "just-a-path"),
        ("REDIS_URL", "localhost:6379"),
        ("MAX_BODY_SIZE", "0"),
        ("SERVICE_NAME", "bad name!"),
        ("CORS_ORIGINS", "[not json"),
        ("DEBUG", "maybe"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """An invalid value fails at start-up with a ConfigurationError naming the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        Settings()
    assert variable in info.value.message
    assert variable in info.value.details["variables"]
    assert isinstance(info.value.__cause__, ValueError)


def test_error_never_echoes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error names the variable but not the rejected value (it may be a secret)."""
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET_KEY", "short-secret-zz")
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY") as info:
        Settings()
    assert "short-secret-zz" not in str(info.value)


def test_wildcard_cors_with_credentials_is_refused() -> None:
    """CORS_ORIGINS='*' with credentials is refused at start-up."""
    with pytest.raises(ConfigurationError, match="CORS_ORIGINS"):
        Settings(cors_origins=["*"], cors_allow_credentials=True)


def test_debug_in_production_is_refused() -> None:
    """DEBUG cannot be switched on in production."""
    with pytest.raises(ConfigurationError, match="DEBUG"):
        Settings(environment="production", debug=True)


def test_subclass_extends_and_names_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """A package extends Settings; its own fields are validated and named the same way."""

    class AuthSettings(Settings):
        token_ttl_seconds: int = 900

    monkeypatch.setenv("TOKEN_TTL_SECONDS", "60")
    assert AuthSettings().token_ttl_seconds == 60
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match="TOKEN_TTL_SECONDS"):
        AuthSettings()


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    """A .env file in the working directory is read (the environment still wins)."""
    (tmp_path / ".env").write_text("SERVICE_NAME=from-dotenv\n", encoding="utf-8")
    assert Settings().service_name == "from-dotenv"


def test_get_settings_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """get_settings() reads once; cache_clear() picks up a changed environment."""
    monkeypatch.setenv("SERVICE_NAME", "one")
    first = get_settings()
    monkeypatch.setenv("SERVICE_NAME", "two")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().service_name == "two"


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start-up."""
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.service_name = "other"  # type: ignore[misc]
