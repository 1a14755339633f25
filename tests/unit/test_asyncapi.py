"""controllers.asyncapi: paths, the bearer token, JSON bodies and error statuses, against a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from upkeep.controllers import asyncapi


def test_object_paths_of_core_and_grouped_kinds() -> None:
    assert asyncapi.object_path("v1", "pods", "shop", "web") == "/api/v1/namespaces/shop/pods/web"
    assert asyncapi.object_path("v1", "nodes", "", "n1") == "/api/v1/nodes/n1"
    assert asyncapi.object_path("apps/v1", "deployments", "shop") == "/apis/apps/v1/namespaces/shop/deployments"
    assert (
        asyncapi.object_path("upkeep.dev/v1alpha1", "incidents", "shop", "i", "status")
        == "/apis/upkeep.dev/v1alpha1/namespaces/shop/incidents/i/status"
    )


def kubeconfig(folder: Path, port: int) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "sekret-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def served(
    handle: Callable[[web.Request], Awaitable[web.Response]], folder: Path
) -> AsyncIterator[asyncapi.AsyncApi]:
    """An ``AsyncApi`` against ``handle`` served on 127.0.0.1; both closed at the end."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = asyncapi.AsyncApi(str(kubeconfig(folder, port)))
    try:
        yield api
    finally:
        await api.close()
        await runner.cleanup()


def test_requests_carry_the_token_and_json_and_errors_keep_their_status(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "authorization": request.headers.get("Authorization"),
                "type": request.headers.get("Content-Type"),
                "body": json.loads(body) if body else None,
            }
        )
        if request.path.endswith("/missing"):
            status = {"kind": "Status", "code": 404, "reason": "NotFound", "message": 'pods "missing" not found'}
            return web.json_response(status, status=404)
        return web.json_response({"kind": "Pod", "metadata": {"name": "web"}})

    async def scenario() -> None:
        async with served(handle, tmp_path) as api:
            found = await api.request("GET", "/api/v1/namespaces/shop/pods/web", params={"labelSelector": "a=b"})
            assert found["metadata"]["name"] == "web"
            await api.request(
                "PATCH", "/api/v1/namespaces/shop/pods/web", body={"x": 1}, content_type="application/merge-patch+json"
            )
            with pytest.raises(asyncapi.ApiError) as raised:
                await api.request("GET", "/api/v1/namespaces/shop/pods/missing")
            assert raised.value.status == 404 and "not found" in raised.value.body
            assert "sekret-token" not in str(raised.value)

    asyncio.run(scenario())
    get, patch = seen[0], seen[1]
    assert (get["method"], get["path"], get["query"]) == (
        "GET",
        "/api/v1/namespaces/shop/pods/web",
        {"labelSelector": "a=b"},
    )
    assert get["authorization"] == "Bearer sekret-token" and get["body"] is None
    assert (patch["type"], patch["body"]) == ("application/merge-patch+json", {"x": 1})


def test_a_401_reads_the_credentials_again_and_sends_once_more(tmp_path: Path) -> None:
    """The auth headers are kept a while (``CREDENTIALS_FOR``); a token that expired meanwhile costs one retry."""
    tokens: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        tokens.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer sekret-token" or request.path.endswith("/denied"):
            return web.json_response({"kind": "Status", "code": 401, "reason": "Unauthorized"}, status=401)
        return web.json_response({"kind": "Pod", "metadata": {"name": "web"}})

    async def scenario() -> None:
        async with served(handle, tmp_path) as api:
            api._auth = (time.monotonic(), {"Authorization": "Bearer expired"})  # kept from before it expired
            found = await api.request("GET", "/api/v1/namespaces/shop/pods/web")
            assert found["metadata"]["name"] == "web"
            with pytest.raises(asyncapi.ApiError) as raised:
                await api.request("GET", "/api/v1/namespaces/shop/pods/denied")
            assert raised.value.status == 401

    asyncio.run(scenario())
    assert tokens == ["Bearer expired", "Bearer sekret-token", "Bearer sekret-token", "Bearer sekret-token"]
