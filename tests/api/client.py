"""Calling the REST API in tests the way a user would, with every JSON answer checked against the OpenAPI
document the hub serves."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]


class Api:
    """Calls the API and checks every JSON answer against the OpenAPI document."""

    def __init__(self, client: Client, headers: dict[str, str], spec: dict[str, Any]) -> None:
        self.client, self.headers, self.spec = client, headers, spec

    def _schema(self, method: str, template: str, status: int) -> dict[str, Any] | None:
        op = self.spec["paths"][template][method.lower()]
        resp = op["responses"].get(str(status))
        assert resp is not None, f"{method} {template} answered {status}, which the OpenAPI document does not list"
        content = resp.get("content", {}).get("application/json")
        return None if content is None else {**content["schema"], "components": self.spec["components"]}

    async def call(self, method: str, template: str, path: str, body: Any = None, expect: int = 200,
                   headers: dict[str, str] | None = None) -> Any:
        resp = await self.client.request(method, path, json=body, headers=headers or self.headers)
        data = await resp.json()
        assert resp.status == expect, (method, path, resp.status, data)
        schema = self._schema(method, template, resp.status)
        if schema is not None:
            jsonschema.validate(data, schema)
        return data


async def inbound(api: Api, identity: str, text: str, ext: str | None = None, **extra: Any) -> Any:
    body = {"identity": identity, "text": text, **({"external_id": ext} if ext else {}), **extra}
    return await api.call("POST", "/api/v1/inbound", "/api/v1/inbound", body, expect=201)


async def start_api(aiohttp_client: Any, settings: Any) -> Api:
    """A hub app built from SETTINGS, served, and an admin's checked client for it."""
    from hub.api.auth import create_token
    from hub.app import build_app
    from hub.keys import DB

    client: Client = await aiohttp_client(build_app(settings))
    token = await create_token(client.app[DB], "admin", label="tests")
    spec = await (await client.get("/api/v1/openapi.json")).json()
    return Api(client, {"Authorization": f"Bearer {token}"}, spec)


async def call(client: Client, method: str, path: str, headers: dict[str, str], body: Any = None,
               expect: int = 200) -> Any:
    """One request and its JSON answer (None for 204), failing with both when the status is not EXPECT. Without
    the document check of Api.call: for tests that read one area's answers closely."""
    resp = await client.request(method, path, json=body, headers=headers)
    data = await resp.json() if resp.status != 204 else None
    assert resp.status == expect, (method, path, resp.status, data)
    return data


async def person(client: Client, name: str, role: str, queues: list[str]) -> tuple[int, dict[str, str]]:
    """A new agent of ROLE in QUEUES (email: the first name @example.com) and the headers to act as them."""
    from hub.agents import add_agent
    from hub.api.auth import create_token
    from hub.keys import DB

    a = await add_agent(client.app[DB], name, f"{name.split()[0].lower()}@example.com", "long password", role, queues)
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}
