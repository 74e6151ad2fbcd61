"""Satisfaction surveys by email, on SQLite and PostgreSQL: the survey goes out through a real SMTP server (aiosmtpd)
with a signed link to a one-question page the hub serves; the page answers through the inbound path, and so does a
numeric reply to the survey email."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.keys import CHANNELS, CSAT, DB, OUTBOX
from tests.channels.conftest import email_env
from tests.channels.email.test_channel import MailServer, email
from tests.waiting import eventually

Client = TestClient[Any, Any]
PUBLIC = "https://hub.example.com"
LINK = re.compile(re.escape(PUBLIC) + r"/csat/(\S+)")


@pytest.fixture
def start(aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str,
          smtp: tuple[MailServer, int]) -> Callable[..., Any]:
    async def go(**more: str) -> tuple[Client, dict[str, str]]:
        settings = make_settings(db_url, **{
            **email_env(smtp[1]),
            "HUB_SERVER__PUBLIC_URL": PUBLIC,
            "HUB_ROUTING__QUEUES__SUPPORT__CSAT": "true",
            "HUB_CSAT__POLL_INTERVAL_SECONDS": "3600",
            "HUB_CSAT__LINK_SECRET": "a-long-random-secret-for-links",
            **more,
        })
        client: Client = await aiohttp_client(build_app(settings))
        token = await create_token(client.app[DB], "admin", label="tests")
        return client, {"Authorization": f"Bearer {token}"}

    return go


async def surveyed(client: Client, admin: dict[str, str], server: MailServer) -> tuple[int, EmailMessage]:
    """Ann writes in, an admin resolves, the survey email goes out: (conversation id, the survey email)."""
    channel = client.app[CHANNELS]["email"]
    assert await channel.receive(email("Ann Lee <ann@example.com>", "Order #1042", "Where is it?",  # type: ignore[attr-defined]
                                       "ann.1@example.com")) == "stored"
    conv = int((await client.app[DB].read(lambda tx: tx.one("SELECT id FROM conversations")))["id"])
    assert (await client.post(f"/api/v1/conversations/{conv}/resolve", headers=admin)).status == 200
    assert await client.app[CSAT].run_once() == 1
    client.app[OUTBOX].wake()

    async def received() -> list[EmailMessage]:
        return server.received

    [out] = await eventually(received, what="the survey email")
    return conv, out


def body(msg: EmailMessage) -> str:
    plain = msg.get_body(("plain",))
    assert isinstance(plain, EmailMessage)
    return str(plain.get_content())


async def survey_row(client: Client) -> Any:
    return await client.app[DB].read(lambda tx: tx.one("SELECT * FROM csat_surveys"))


async def test_the_signed_link_opens_the_question_and_the_page_answers_it(
    start: Any, smtp: tuple[MailServer, int]
) -> None:
    client, admin = await start(HUB_CSAT__QUESTION="How did we do? <script>alert(1)</script>")
    conv, out = await surveyed(client, admin, smtp[0])
    text = body(out)
    assert "Reply to this email with a number from 1 (very unhappy) to 5 (very happy)" in text
    m = LINK.search(text)
    assert m, text
    token = m.group(1)

    page = await client.get(f"/csat/{token}", params={"score": "4"})
    html = await page.text()
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert 'value="4" checked' in html
    assert (await survey_row(client))["status"] == "sent", "opening the link (a mail scanner does) answers nothing"

    survey_id = token.split(".")[0]
    for forged in (f"{survey_id}.{'0' * 32}", f"{int(survey_id) + 1}.{token.split('.')[1]}", "x", survey_id):
        assert (await client.get(f"/csat/{forged}")).status == 404
        assert (await client.post(f"/csat/{forged}", data={"score": "1"})).status == 404
    bad = await client.post(f"/csat/{token}", data={"score": "9"})
    assert bad.status == 422 and "pick a score from 1 to 5" in await bad.text()

    done = await client.post(f"/csat/{token}", data={"score": "2", "comment": "Slow <b>reply</b>"})
    assert done.status == 200 and "We have your answer" in await done.text()
    s = await survey_row(client)
    assert (s["status"], s["score"], s["comment"]) == ("answered", 2, "Slow <b>reply</b>")
    detail = await (await client.get(f"/api/v1/conversations/{conv}", headers=admin)).json()
    answer = detail["messages"][-1]
    assert answer["text"] == "2/5 Slow <b>reply</b>" and answer["html"] is None and answer["direction"] == "in"
    assert detail["status"] == "resolved" and detail["csat"]["score"] == 2
    low = await client.app[DB].read(lambda tx: tx.all("SELECT id FROM hub_events WHERE type = 'csat.low'"))
    assert len(low) == 1

    again = await client.post(f"/csat/{token}", data={"score": "5"})
    assert again.status == 200 and "already have your answer" in await again.text()
    assert (await survey_row(client))["score"] == 2


async def test_a_numeric_reply_to_the_survey_email_is_the_answer(start: Any, smtp: tuple[MailServer, int]) -> None:
    client, admin = await start()
    conv, out = await surveyed(client, admin, smtp[0])
    reply = email("ann@example.com", f"Re: {out['Subject']}", "5 thanks, all sorted", "ann.2@example.com",
                  out["Message-ID"], out["Message-ID"])
    assert await client.app[CHANNELS]["email"].receive(reply) == "stored"  # type: ignore[attr-defined]
    s = await survey_row(client)
    assert (s["status"], s["score"], s["comment"]) == ("answered", 5, "thanks, all sorted")
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT id, status FROM conversations"))
    assert [(r["id"], r["status"]) for r in rows] == [(conv, "resolved")]


async def test_without_a_link_secret_the_email_asks_for_a_reply_only(
    start: Any, smtp: tuple[MailServer, int]
) -> None:
    client, admin = await start(HUB_CSAT__LINK_SECRET="")
    _, out = await surveyed(client, admin, smtp[0])
    assert "/csat/" not in body(out)
    assert (await client.get("/csat/1.00000000000000000000000000000000")).status == 404
