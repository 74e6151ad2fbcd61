"""WhatsApp's 24-hour window in the composer, in a real browser against a real hub whose WhatsApp goes to the Twilio
simulator (in a thread): a customer's window has closed, so the composer says so, turns free-form off and offers
"Send a template"; the agent picks an approved one (a pending one is not offered), fills its variables (one from
the customer's profile), sees what the customer will read, and sends it: Twilio receives ContentSid and
ContentVariables, the timeline marks it a template. The window stays closed until the customer answers; then
free-form is back. Screenshot: whatsapp-template.png in $HUB_SCREENSHOTS."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.channels.twilio.fake import BIZ, new_sid, sample
from tests.e2e.conftest import SHOTS, Hub, SimulatorThread, free_port, run_hub, sign_in

ANN = "+14155550100"
ORDER = "Hi {{1}}, your order {{2}} has shipped."


@pytest.fixture
def hub(tmp_path: Path, twilio: SimulatorThread) -> Iterator[Hub]:
    port = free_port()
    twilio.sim.callback_delay = 0.2
    env = twilio.hub_env(port, WHATSAPP_FROM=BIZ)
    with run_hub(tmp_path, port, env) as running:
        yield running


def _whatsapp(hub: Hub, twilio: SimulatorThread, text: str) -> str:
    """Ann writes on WhatsApp: her message, signed as Twilio signs it, to the hub's webhook; returns its sid."""
    sid = new_sid("SM")
    params = sample("whatsapp_inbound", From=f"whatsapp:{ANN}", To=f"whatsapp:{BIZ}", Body=text, MessageSid=sid,
                    SmsSid=sid, SmsMessageSid=sid)
    assert twilio.run(twilio.sim.post_signed(hub.url + "/webhooks/twilio/sms", params)) == 200
    return sid


def _until(check: Any, what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (got := check()):
        assert time.monotonic() < deadline, f"{what} not seen within {within:.0f}s"
        time.sleep(0.1)
    return got


def test_an_agent_sends_an_approved_template_when_the_whatsapp_window_has_closed(
    hub: Hub, twilio: SimulatorThread, new_page: Any, tmp_path: Path
) -> None:
    approved = twilio.sim.add_template("order_shipped", ORDER, {"1": "Sam", "2": "A-100"})
    twilio.sim.add_template("spring_sale", "Spring sale, {{1}}!", {"1": "Sam"}, status="pending")
    sid = _whatsapp(hub, twilio, "Where is my order?")
    # She wrote 30 hours ago: her window closed 6 hours ago.
    with sqlite3.connect(tmp_path / "hub.db") as db:
        then = (datetime.now(UTC) - timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        db.execute("UPDATE messages SET created_at = ? WHERE external_id = ?", (then, sid))
        conv = db.execute("SELECT conversation_id FROM messages WHERE external_id = ?", (sid,)).fetchone()[0]

    alex = new_page(1440, 1000)
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{conv}")
    window = alex.locator("#session-window.closed")
    window.wait_for()
    assert "24-hour window closed" in window.inner_text()
    assert alex.locator("#reply-text").is_disabled() and alex.locator("#send-btn").is_disabled()
    # By SMS to the same number there is no window and no template; an internal note is never held back.
    alex.select_option("#reply-channel", "sms")
    assert not alex.locator("#session-window").is_visible() and not alex.locator("#template-btn").is_visible()
    assert alex.locator("#reply-text").is_enabled()
    alex.select_option("#reply-channel", "whatsapp")
    assert alex.locator("#reply-text").is_disabled() and alex.locator("#template-btn").is_visible()
    alex.click('.tab[data-mode="note"]')
    assert alex.locator("#reply-text").is_enabled() and not alex.locator("#template-btn").is_visible()
    alex.click('.tab[data-mode="reply"]')
    assert alex.locator("#reply-text").is_disabled()

    alex.click("#template-btn")
    pick = alex.locator("#template-pick")
    pick.locator(f'option[value="{approved}"]').wait_for(state="attached")
    assert [o.inner_text() for o in pick.locator("option").all()] == ["Choose a template…", "order_shipped (en)"]
    pick.select_option(approved)
    assert alex.locator("#template-body").inner_text() == ORDER
    assert alex.locator("#template-var-2").get_attribute("placeholder") == "A-100"
    alex.fill("#template-var-1", '{{first_name | fallback: "there"}}')
    alex.fill("#template-var-2", "B-200")
    alex.locator("#template-preview", has_text="Hi Ann, your order B-200 has shipped.").wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    alex.screenshot(path=str(SHOTS / "whatsapp-template.png"))
    alex.click("#modal-ok")
    alex.locator(".toast", has_text="Template sent").wait_for()

    sent = _until(lambda: [m for m in twilio.sent("Messages") if m.get("ContentSid")], "the template at Twilio")
    assert [(m["To"], m["ContentSid"], json.loads(m["ContentVariables"]), m.get("Body")) for m in sent] == [
        (f"whatsapp:{ANN}", approved, {"1": "Ann", "2": "B-200"}, None)]
    bubble = alex.locator(".tl-msg.out", has_text="Hi Ann, your order B-200 has shipped.")
    bubble.locator(".template-mark").wait_for()
    # Sending the template did not reopen the window.
    assert alex.locator("#session-window.closed").count() == 1 and alex.locator("#reply-text").is_disabled()

    # Ann answers: the window is open again (the console hears it live), and free-form is back.
    _whatsapp(hub, twilio, "Thanks! Got it")
    alex.locator("#session-window:not(.closed)", has_text="window open").wait_for()
    assert alex.locator("#reply-text").is_enabled()
    alex.fill("#reply-text", "Enjoy it, Ann")
    alex.click("#send-btn")
    _until(lambda: [m for m in twilio.sent("Messages") if m.get("Body") == "Enjoy it, Ann"], "the free-form reply")
    assert alex.errors == []
