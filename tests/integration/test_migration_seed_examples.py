"""The migration path end to end: each seed example, old imports, through the codemod and the shim.

For every example of the seed ``libs/README.md`` (copied below verbatim):

- the codemod's output is the example with exactly ARCHITECTURE.md's import mapping
  applied (the form every package's own seed-example test runs against real engines),
  contains no old import, keeps every comment, and a second run changes nothing;
- the rewritten imports and the old ones under energy-libs-compat bind the same objects;
- the examples that need no network peer run to their documented result, once
  migrated and once unchanged under the shim (the HTTP, database, cache and MQTT examples
  run against real servers in tests/common and tests/messaging with the new imports).
"""

from __future__ import annotations

import ast
import logging
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from energy_auth import WeakKeyError
from energy_common.database import Database
from energy_common.exceptions import ValidationError
from energy_common.responses import APIResponse
from energy_migrate import rewrite_source

# Copied from the seed libs/README.md (trailing whitespace stripped), one entry per example.
SEED_EXAMPLES = {
    "exceptions": """\
from libs.common.exceptions import ValidationError, ResourceNotFoundError

# Raise standardized exceptions
raise ValidationError("Invalid email format", {"field": "email"})
raise ResourceNotFoundError("User", user_id)
""",
    "http_client": """\
from libs.common.http_client import ServiceClient

async with ServiceClient("http://auth-service:8005") as client:
    user_data = await client.get("/users/123")
    result = await client.post("/users", {"name": "John", "email": "john@example.com"})
""",
    "database": """\
from libs.common.database import BaseRepository

class UserRepository(BaseRepository[User]):
    async def find_by_email(self, email: str) -> Optional[User]:
        return await self.find_one_by(email=email)

# Usage
user_repo = UserRepository(db_session, User)
user = await user_repo.create(name="John", email="john@example.com")
""",
    "responses": """\
from libs.common.responses import APIResponse, ErrorResponse

# Success response
return APIResponse.success(data=user_data, message="User retrieved successfully")

# Error response
return ErrorResponse.not_found("User", user_id)

# Paginated response
return APIResponse.paginated(users, page=1, limit=10, total=100)
""",
    "cache": """\
from libs.common.cache import CacheManager

cache = CacheManager(redis_client, key_prefix="users")

# Set and get values
await cache.set("user:123", user_data, expire=3600)
user_data = await cache.get("user:123")

# Rate limiting
rate_limit_cache = RateLimitCache(redis_client)
result = await rate_limit_cache.check_rate_limit("user:123", limit=100, window_seconds=3600)
""",
    "health": """\
from libs.common.health import HealthChecker, DatabaseHealthCheck, RedisHealthCheck

# Setup health checker
health_checker = HealthChecker("my-service")
health_checker.add_check(DatabaseHealthCheck(db_connection))
health_checker.add_check(RedisHealthCheck(redis_client))

# Run checks
result = await health_checker.run_all_checks()
""",
    "metrics": """\
from libs.monitoring.metrics import increment_counter, set_gauge, time_it

# Increment counters
increment_counter("api.requests", tags={"endpoint": "/users", "method": "GET"})

# Set gauge values
set_gauge("active_connections", 45)

# Time function execution
@time_it("database.query")
async def get_user(user_id: str):
    # Database query here
    pass
""",
    "tracing": """\
from libs.monitoring.tracing import get_tracer, trace

tracer = get_tracer("my-service")

# Manual span creation
with tracer.start_span("database_query") as span:
    span.set_tag("query", "SELECT * FROM users")
    result = await db.execute(query)

# Decorator tracing
@trace("user_service.get_user")
async def get_user(user_id: str):
    # Function implementation
    pass
""",
    "mqtt": """\
from libs.messaging.mqtt import MQTTManager, DeviceManager

# Setup MQTT
mqtt = MQTTManager("localhost", 1883, username="user", password="pass")
await mqtt.connect()

# Device management
device_manager = DeviceManager(mqtt)
await device_manager.register_device(
    device_id="sensor001",
    device_type="temperature_sensor",
    topics=["devices/sensor001/data"]
)

# Send commands to devices
await device_manager.send_command("sensor001", "read_temperature")
""",
    "auth": """\
from libs.common.auth import TokenManager, PermissionChecker

# Token management
token_manager = TokenManager("your-secret-key")
token = token_manager.create_access_token({"user_id": "123", "role": "admin"})
payload = token_manager.verify_token(token)

# Permission checking
has_perm = PermissionChecker.has_permission(user_permissions, "users:read")
has_role = PermissionChecker.has_role(user_roles, "admin")
""",
    "logging": """\
from infrastructure.logging import setup_logging, ServiceLogger

# Setup logging for service
setup_logging("my-service", log_level="INFO")

# Use service logger
logger = ServiceLogger("my-service")
logger.log_api_call("GET", "/users", 200, 0.145)
logger.log_database_operation("SELECT", "users", 0.023)
""",
    "testing": """\
# Test with shared utilities
from libs.common.exceptions import ValidationError
import pytest

def test_validation_error():
    with pytest.raises(ValidationError) as exc_info:
        raise ValidationError("Invalid data", {"field": "email"})

    assert exc_info.value.error_code == "VALIDATION_ERROR"
    assert exc_info.value.status_code == 400
""",
}

MAPPING = (
    ("libs.common.auth", "energy_auth"),
    ("libs.common.", "energy_common."),
    ("libs.monitoring.", "energy_monitoring."),
    ("libs.messaging.", "energy_messaging."),
    ("infrastructure.logging", "energy_common.logging"),
)
STRONG_KEY = "q3J0m8c1Yd7tU2xWf9pK4sLh6eZr5vNb0aQgTiXoE2M"


def by_hand(code: str) -> str:
    """ARCHITECTURE.md's table applied as plain text replacement."""
    for old, new in MAPPING:
        code = code.replace(old, new)
    return code


def imports_of(code: str) -> str:
    """Only the import statements of a snippet (which as a whole needs its service around it)."""
    tree = ast.parse(code.replace("await ", "").replace("return ", "").replace("async with", "with"))
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))


def forget_shim() -> None:
    """Drop the shim's modules so the next old import warns again."""
    for name in [n for n in sys.modules if n.split(".")[0] in {"libs", "infrastructure"}]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    """Fresh shim modules, and the root logger restored after the logging example."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    forget_shim()
    yield
    forget_shim()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
def test_codemod_output_is_the_documented_mapping_and_idempotent(name: str) -> None:
    """The codemod turns each seed example into exactly the mapped code, with no old import left, comments kept."""
    old = SEED_EXAMPLES[name]
    result = rewrite_source(old)
    assert result.code == by_hand(old)
    assert rewrite_source(result.code).code == result.code
    assert not result.notes
    tree = ast.parse(imports_of(result.code))
    modules = [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    assert modules
    assert not [m for m in modules if m.split(".")[0] in {"libs", "infrastructure"}]
    comments = [line.strip() for line in old.splitlines() if line.strip().startswith("#")]
    assert all(comment in result.code for comment in comments)


@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
def test_new_imports_and_old_imports_under_the_shim_bind_the_same_objects(name: str) -> None:
    """Each example's rewritten imports resolve in the new packages, to the objects its old imports get from the shim."""
    new_namespace: dict[str, Any] = {}
    exec(imports_of(rewrite_source(SEED_EXAMPLES[name]).code), new_namespace)  # noqa: S102 - the examples are the point
    old_namespace: dict[str, Any] = {}
    with pytest.warns(DeprecationWarning, match=" is deprecated: import "):
        exec(imports_of(SEED_EXAMPLES[name]), old_namespace)  # noqa: S102
    for namespace in (new_namespace, old_namespace):
        namespace.pop("__builtins__")
        namespace.pop("__warningregistry__", None)
    assert new_namespace.keys() == old_namespace.keys()
    for key, value in new_namespace.items():
        assert old_namespace[key] is value, key


class FakeDB:
    """The example's own ``db`` (service code, not ours): records the query it is given."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def execute(self, query: str) -> list[dict[str, int]]:
        self.queries.append(query)
        return [{"id": 1}]


async def run_example(code: str, namespace: dict[str, Any]) -> Any:
    """Run a snippet as the body of an async function (it uses await and return at its top level).

    What the snippet defines is copied into ``namespace`` when it runs to its end.
    """
    body = code + "globals().update(locals())\n"
    exec(f"async def _example():\n{textwrap.indent(body, '    ')}", namespace)  # noqa: S102
    return await namespace["_example"]()


@pytest.fixture(params=["migrated", "shim"])
def form(request: pytest.FixtureRequest) -> str:
    """Run each example twice: rewritten by the codemod, and unchanged under energy-libs-compat."""
    return str(request.param)


def source(name: str, form: str) -> str:
    """The example as the given form runs it."""
    return rewrite_source(SEED_EXAMPLES[name]).code if form == "migrated" else SEED_EXAMPLES[name]


async def run_in_form(name: str, form: str, namespace: dict[str, Any], code: str | None = None) -> Any:
    """Run the example, expecting the shim's warnings only in the shim form."""
    code = source(name, form) if code is None else code
    if form == "shim":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r".* is deprecated: import ", DeprecationWarning)
            return await run_example(code, namespace)
    return await run_example(code, namespace)


async def test_exceptions_example_runs(form: str) -> None:
    """The exceptions example raises the documented ValidationError."""
    with pytest.raises(ValidationError, match="Invalid email format"):
        await run_in_form("exceptions", form, {"user_id": 123})


async def test_responses_example_runs(form: str) -> None:
    """The responses example returns the documented success envelope."""
    result = await run_in_form("responses", form, {"user_data": {"id": 1}, "user_id": 1, "users": []})
    assert isinstance(result, APIResponse)
    assert result.message == "User retrieved successfully"


async def test_metrics_and_tracing_examples_run(form: str) -> None:
    """The metrics and tracing examples run; their decorated functions work."""
    metrics: dict[str, Any] = {}
    await run_in_form("metrics", form, metrics)
    assert await metrics["get_user"]("123") is None
    db = FakeDB()
    tracing: dict[str, Any] = {"db": db, "query": "SELECT * FROM users"}
    await run_in_form("tracing", form, tracing)
    assert db.queries == ["SELECT * FROM users"]
    assert await tracing["get_user"]("123") is None


async def test_auth_example_refuses_the_weak_literal_and_runs_with_a_real_key(form: str) -> None:
    """The seed's TokenManager("your-secret-key") is refused on purpose; with a 32-byte key the example runs."""
    namespace = {"user_permissions": ["users:*"], "user_roles": ["admin"]}
    with pytest.raises(WeakKeyError, match="token_urlsafe"):
        await run_in_form("auth", form, dict(namespace))
    strong = source("auth", form).replace('"your-secret-key"', repr(STRONG_KEY))
    await run_in_form("auth", form, namespace, strong)
    assert namespace["payload"]["user_id"] == "123"
    assert namespace["has_perm"] is True
    assert namespace["has_role"] is True


async def test_logging_and_testing_examples_run(form: str) -> None:
    """The logging example configures logging and logs; the README's own test passes."""
    await run_in_form("logging", form, {})
    namespace: dict[str, Any] = {"pytest": pytest}
    await run_in_form("testing", form, namespace)
    namespace["test_validation_error"]()


@pytest.mark.redis
async def test_health_example_runs_on_sqlite_and_redis(form: str, redis_client: Any, tmp_path: Path) -> None:
    """The health example reports healthy with the embedded database and the real Redis."""
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'health.db'}") as db_connection:
        namespace: dict[str, Any] = {"db_connection": db_connection, "redis_client": redis_client}
        await run_in_form("health", form, namespace)
    assert namespace["result"].to_dict()["status"] == "healthy"
