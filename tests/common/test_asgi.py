"""Tests for energy_common.asgi.route_template against the scopes real FastAPI and Starlette apps leave."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from energy_common.asgi import route_template
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route


def build_app() -> FastAPI:
    """An app with an own-prefix router, an include_router prefix, nesting and a mounted sub-app."""
    app = FastAPI()
    users = APIRouter(prefix="/users")

    @users.get("/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    outer = APIRouter()
    meters = APIRouter(prefix="/meters")

    @meters.get("/{meter_id}/readings")
    async def readings(meter_id: str) -> dict[str, str]:
        return {"id": meter_id}

    outer.include_router(meters, prefix="/v1")
    app.include_router(users)
    app.include_router(outer, prefix="/api")

    async def plain(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.add_route("/plain/{name}", plain)
    app.mount("/legacy", Starlette(routes=[Route("/items/{item_id}", plain)]))
    app.mount("/nested", Starlette(routes=[Mount("/deeper", routes=[Route("/x/{y}", plain)])]))
    return app


class Recorder:
    """A pure ASGI wrapper that records route_template() after the app ran."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        root_path = scope.get("root_path", "")
        await self.app(scope, receive, send)
        self.seen.append(route_template(scope, root_path))


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/users/7", "/users/{user_id}"),
        ("/api/v1/meters/m-1/readings", "/api/v1/meters/{meter_id}/readings"),
        ("/legacy/items/42", "/legacy/items/{item_id}"),
        ("/nested/deeper/x/1", "/nested/deeper/x/{y}"),
        ("/docs", "/docs"),
        ("/openapi.json", "/openapi.json"),
        ("/plain/x", "/plain/{name}"),
        ("/no/such/route", None),
    ],
)
async def test_route_template_keeps_every_prefix(path: str, template: str | None) -> None:
    """Templates carry include_router and mount prefixes, plain routes (/docs) have theirs, unmatched gives None."""
    recorder = Recorder(build_app())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recorder), base_url="http://t") as client:
        await client.get(path)
    assert recorder.seen == [template]


def test_route_template_without_route() -> None:
    """A scope no router touched has no template."""
    assert route_template({"type": "http", "path": "/x"}) is None
    assert route_template({"route": object()}) is None
