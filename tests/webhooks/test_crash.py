"""Fail points of outbound webhooks, against a real `hub serve` killed (SIGKILL) at each: an event and its
deliveries are one transaction (a kill between the two writes leaves neither, and the provider's retry stores
both once); a delivery the receiver got but the hub did not mark is sent again after restart (at least once,
same Hub-Delivery id for the receiver to deduplicate)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.test_crash import HubProcess, query
from tests.waiting import eventually
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.slow

INBOUND = {"identity": "phone:+14155550199", "text": "my order never came", "external_id": "crash-hook-1"}


def _env(db_url: str, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return env | {"HUB_DATABASE__URL": db_url, "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "5",
                  "HUB_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true", "HUB_WEBHOOKS__POLL_INTERVAL_SECONDS": "0.1",
                  "HUB_WEBHOOKS__BASE_DELAY_SECONDS": "0.1", "HUB_WEBHOOKS__LEASE_SECONDS": "1",
                  "HUB_WEBHOOKS__TIMEOUT_SECONDS": "0.5",
                  "HUB_AUTOMATION__POLL_INTERVAL_SECONDS": "0.1"} | extra


async def _setup(tmp_path: Path, aiohttp_server: Any, **extra: str) -> tuple[HubProcess, dict[str, str], Receiver]:
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = HubProcess(_env(db_url, **extra), tmp_path)
    token = hub.cli("tokens", "create", "--role", "admin", "--label", "crash").strip().splitlines()[-1]
    receiver = Receiver()
    server: TestServer = await aiohttp_server(receiver.app(), host="127.0.0.1")
    hub.env["TEST_HOOK_URL"] = f"http://127.0.0.1:{server.port}/hook"
    return hub, {"Authorization": f"Bearer {token}"}, receiver


async def _subscribe(session: aiohttp.ClientSession, hub: HubProcess, headers: dict[str, str],
                     receiver: Receiver) -> None:
    body = {"url": hub.env["TEST_HOOK_URL"], "events": ["message.received"]}
    async with session.post(f"{hub.url}/api/v1/webhooks", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        receiver.secret = (await resp.json())["secret"]


def _count(db_url: str, table: str) -> int:
    return int(query(db_url, f"SELECT COUNT(*) FROM {table}")[0][0])


async def test_kill_between_event_and_its_deliveries_leaves_neither(tmp_path: Path, aiohttp_server: Any) -> None:
    hub, headers, receiver = await _setup(tmp_path, aiohttp_server)
    db_url = hub.env["HUB_DATABASE__URL"]
    async with aiohttp.ClientSession() as session:
        hub.start()
        try:
            await hub.wait_healthy(session)
            await _subscribe(session, hub, headers, receiver)
            hub.stop()
            hub.env["HUB_FAIL_POINTS"] = "event.before_deliveries:kill"
            hub.start()
            await hub.wait_healthy(session)
            with contextlib.suppress(aiohttp.ClientError):  # killed mid-request: never acknowledged
                async with session.post(f"{hub.url}/api/v1/inbound", json=INBOUND, headers=headers) as resp:
                    raise AssertionError(f"answered {resp.status} through a kill: {await resp.text()}")
            assert await hub.wait_exit() == -9
            # Nothing half-written: not the message, not its event, not its delivery (and nothing acknowledged).
            for table in ("messages", "hub_events", "webhook_deliveries", "journal"):
                assert _count(db_url, table) == 0, table
            del hub.env["HUB_FAIL_POINTS"]
            hub.start()
            await hub.wait_healthy(session)
            async with session.post(f"{hub.url}/api/v1/inbound", json=INBOUND, headers=headers) as resp:
                assert resp.status == 201, await resp.text()  # the provider's retry
            await eventually(lambda: _accepted(receiver, 1), what="the delivery")
            await asyncio.sleep(0.5)
            assert len(receiver.accepted) == 1
            assert receiver.accepted[0][1]["data"]["message"]["text"] == INBOUND["text"]
            assert query(db_url, "SELECT status FROM webhook_deliveries") == [("delivered",)]
        finally:
            hub.stop()


async def test_kill_after_the_receiver_got_it_sends_it_again(tmp_path: Path, aiohttp_server: Any) -> None:
    hub, headers, receiver = await _setup(tmp_path, aiohttp_server, HUB_FAIL_POINTS="webhook.after_post:kill")
    db_url = hub.env["HUB_DATABASE__URL"]
    async with aiohttp.ClientSession() as session:
        hub.start()
        try:
            await hub.wait_healthy(session)
            await _subscribe(session, hub, headers, receiver)
            async with session.post(f"{hub.url}/api/v1/inbound", json=INBOUND, headers=headers) as resp:
                assert resp.status == 201, await resp.text()
            assert await hub.wait_exit() == -9  # right after the receiver said 204
            assert len(receiver.accepted) == 1
            assert query(db_url, "SELECT status, attempts FROM webhook_deliveries") == [("pending", 1)]
            del hub.env["HUB_FAIL_POINTS"]
            hub.start()
            await hub.wait_healthy(session)
            await eventually(lambda: _accepted(receiver, 2), what="the delivery sent again")
            first, second = receiver.accepted
            assert first[0] == second[0] and first[1] == second[1]  # same delivery id and body: deduplicable
            await eventually(lambda: _delivered(db_url), what="the delivery marked delivered")
        finally:
            hub.stop()


async def _accepted(receiver: Receiver, n: int) -> bool:
    return len(receiver.accepted) >= n


async def _delivered(db_url: str) -> bool:
    return query(db_url, "SELECT status FROM webhook_deliveries") == [("delivered",)]
