"""A real `hub serve` killed (SIGKILL) mid-campaign at the fail point between a recipient's message and the mark that
it was written: one transaction, so the kill leaves neither; the restarted hub resumes and every recipient gets the
campaign's SMS once (the Twilio simulator counts what it was sent)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from hub.campaigns import campaign_store
from hub.campaigns.campaign_store import CampaignBody
from hub.history import store
from hub.history.db import Tx, open_database
from hub.identities import parse
from hub.model import format_time, utcnow
from tests.channels.twilio.fake import BIZ, TwilioFake, settings_env
from tests.test_crash import HubProcess, query
from tests.waiting import eventually

pytestmark = pytest.mark.slow

PHONES = [f"+1415555{n:04d}" for n in range(110, 115)]


async def _seed(db_url: str) -> int:
    """Five customers with a phone, and a campaign to all of them due now."""
    db = open_database(db_url)
    now = format_time(utcnow())

    def write(tx: Tx) -> int:
        for p in PHONES:
            store.resolve_identity(tx, parse(f"phone:{p}"), f"Customer {p[-3:]}", now)
        body = CampaignBody(name="Crash", channel="sms", text="Hello {{first_name}}",
                            identities=[f"phone:{p}" for p in PHONES])
        return campaign_store.create(tx, body, 600, None, now, 100).id

    try:
        return int(await db.write(write))
    finally:
        await db.close()


async def test_a_kill_between_a_message_and_its_mark_sends_nobody_twice(
    tmp_path: Path, fake: tuple[TwilioFake, str], db_url: str
) -> None:
    sim, fake_url = fake
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= settings_env(fake_url, channels__twilio__sms_from=BIZ, campaigns__poll_interval_seconds="0.2")
    env |= {"HUB_DATABASE__URL": db_url, "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "5",
            "HUB_FAIL_POINTS": "campaign.before_mark:kill"}
    hub = HubProcess(env, tmp_path)
    hub.cli("migrate")
    cid = await _seed(db_url)
    async with aiohttp.ClientSession() as session:
        hub.start()
        try:
            # The sender starts the campaign and dies writing its first recipient.
            assert await hub.wait_exit() == -9, hub.tail()
            assert query(db_url, "SELECT COUNT(*) FROM messages") == [(0,)]
            assert query(db_url, "SELECT COUNT(*) FROM outbox") == [(0,)]
            assert query(db_url, f"SELECT status FROM campaigns WHERE id = {cid}") == [("scheduled",)]
            assert sim.sent() == []

            del hub.env["HUB_FAIL_POINTS"]
            hub.start()
            await hub.wait_healthy(session)

            async def finished() -> Any:
                done = query(db_url, f"SELECT status FROM campaigns WHERE id = {cid}") == [("done",)]
                return done and len(sim.sent()) >= len(PHONES)

            await eventually(finished, within=60, what="the campaign sent after the restart")
            assert sorted(f["To"] for f in sim.sent()) == PHONES, "each recipient once"
            assert query(db_url, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(len(PHONES),)]
            assert query(db_url, f"SELECT status, COUNT(*) FROM campaign_recipients WHERE campaign_id = {cid} "
                                 "GROUP BY status") == [("queued", len(PHONES))]
        finally:
            hub.stop()


async def test_two_hub_processes_send_one_campaign_once(
    tmp_path: Path, fake: tuple[TwilioFake, str], pg_url: str, redis_url: str
) -> None:
    """Scale-out: two `hub serve` on one PostgreSQL, with Redis for events and routing state, both running the
    campaign sender at a fast poll: every recipient gets the SMS once."""
    sim, fake_url = fake
    tag = uuid.uuid4().hex[:12]
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    base |= settings_env(fake_url, channels__twilio__sms_from=BIZ, campaigns__poll_interval_seconds="0.05")
    base |= {"HUB_DATABASE__URL": pg_url, "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "5",
             "HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": redis_url,
             "HUB_EVENTS__CHANNEL": f"hub:test:{tag}:events", "HUB_ROUTING__BACKEND": "redis",
             "HUB_ROUTING__REDIS_URL": redis_url, "HUB_ROUTING__KEY_PREFIX": f"hub:test:{tag}:routing:"}
    hubs = [HubProcess(dict(base), tmp_path / name) for name in ("one", "two")]
    for h in hubs:
        h.cwd.mkdir()
    hubs[0].cli("migrate")
    async with aiohttp.ClientSession() as session:
        try:
            for h in hubs:
                h.start()
            for h in hubs:
                await h.wait_healthy(session)
            cid = await _seed(pg_url)  # due now: whichever process looks first starts it

            async def finished() -> Any:
                done = query(pg_url, f"SELECT status FROM campaigns WHERE id = {cid}") == [("done",)]
                return done and len(sim.sent()) >= len(PHONES)

            await eventually(finished, within=60, what="the campaign sent by two processes")
            assert sorted(f["To"] for f in sim.sent()) == PHONES, "each recipient once"
            # Every message is written before the campaign is done: a second one would be here already.
            assert query(pg_url, "SELECT COUNT(*) FROM messages WHERE direction = 'out'") == [(len(PHONES),)]
            assert query(pg_url, "SELECT COUNT(*) FROM outbox") == [(len(PHONES),)]
        finally:
            for h in hubs:
                h.stop()
            r = redis.Redis.from_url(redis_url)
            keys = list(r.scan_iter(f"hub:test:{tag}:*"))
            if keys:
                r.delete(*keys)
