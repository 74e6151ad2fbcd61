"""/metrics behind a bearer token, or only on a separate address (settings metrics.token and metrics.listen)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from hub.app import build_app
from hub.config import ConfigError, Settings, load_settings
from tests.conftest import free_port

TOKEN = "scrape-me-0123456789"


async def test_a_token_guards_metrics(make_settings: Callable[..., Settings], aiohttp_client: Any) -> None:
    client = await aiohttp_client(build_app(make_settings(HUB_METRICS__TOKEN=TOKEN)))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"})).status == 401
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and "hub_http_requests" in await resp.text()


async def test_metrics_can_live_on_their_own_address(make_settings: Callable[..., Settings],
                                                     aiohttp_client: Any) -> None:
    port = free_port()
    client = await aiohttp_client(build_app(make_settings(HUB_METRICS__LISTEN=f"127.0.0.1:{port}")))
    assert (await client.get("/metrics")).status == 404, "not on the public address"
    await client.get("/healthz")
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200 and 'route="/healthz"' in await resp.text()
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_request_is_counted_in_its_own_series(make_settings: Callable[..., Settings],
                                                           aiohttp_client: Any) -> None:
    # The middleware remembers each series it looked up: repeats must still land in the right one.
    app = build_app(make_settings(HUB_METRICS__TOKEN=TOKEN))
    client = await aiohttp_client(app)
    for _ in range(3):
        assert (await client.get("/healthz")).status == 200
    for _ in range(2):
        assert (await client.get("/no-such-page")).status == 404
    assert (await client.head("/healthz")).status == 200
    text = await (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text()
    assert 'hub_http_requests_total{method="GET",route="/healthz",status="200"} 3.0' in text
    assert 'hub_http_requests_total{method="HEAD",route="/healthz",status="200"} 1.0' in text
    assert 'hub_http_requests_total{method="GET",route="unmatched",status="404"} 2.0' in text
    assert 'hub_http_request_seconds_count{route="/healthz"} 4.0' in text
    assert 'hub_http_request_seconds_count{route="unmatched"} 2.0' in text


@pytest.mark.parametrize(("env", "needle"), [
    ({"HUB_METRICS__TOKEN": "short"}, "metrics.token"),
    ({"HUB_METRICS__LISTEN": "9108"}, "metrics.listen"),
    ({"HUB_METRICS__LISTEN": "127.0.0.1:99999"}, "metrics.listen"),
])
def test_bad_metrics_settings_are_refused_with_a_reason(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_settings(None, environ=env)
