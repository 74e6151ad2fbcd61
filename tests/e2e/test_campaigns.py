"""Campaigns in a real browser against a real hub whose SMS goes to the Twilio simulator (in a thread; its status
callbacks come back signed): a supervisor opens Campaigns from the Reports page, previews a list campaign (texts
filled in, who is skipped and why; customer text shown as text), sends a test to their own phone, creates it, and
watches its results reach "delivered"; a WhatsApp campaign picks an approved template (a rejected one is shown,
not choosable), fills its variables and previews each recipient's text. An agent has no Campaigns page.
Screenshot: campaigns.png in $HUB_SCREENSHOTS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.channels.twilio.fake import BIZ
from tests.e2e.conftest import SHOTS, Hub, SimulatorThread, free_port, run_hub, sign_in

HOSTILE = 'Zoe <img src=x data-xss onerror="window.__xss=1">'
DANA_PHONE = "+14155550122"


@pytest.fixture
def hub(tmp_path: Path, twilio: SimulatorThread) -> Iterator[Hub]:
    port = free_port()
    twilio.sim.callback_delay = 0.2
    env = twilio.hub_env(port, SMS_FROM=BIZ, WHATSAPP_FROM=BIZ, NUMBERS=json.dumps({BIZ: {"line": "main"}}))
    env["HUB_CAMPAIGNS__POLL_INTERVAL_SECONDS"] = "0.5"
    with run_hub(tmp_path, port, env) as running:
        dana = running.agent_ids["dana@example.com"]
        status, body = running.call("PATCH", f"/api/v1/agents/{dana}", {"phone": DANA_PHONE})
        assert status == 200, body
        yield running


def test_a_supervisor_previews_tests_and_sends_a_campaign(hub: Hub, twilio: SimulatorThread, new_page: Any) -> None:
    for phone, name in (("+14155550100", "Ann Lee"), ("+14155550101", HOSTILE)):
        conv = hub.inbound(f"phone:{phone}", "hello", name=name)["conversation"]["id"]
        status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/resolve", {})
        assert status == 200
    dana = new_page(1440, 1400)
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    dana.click("#reports-campaigns")
    dana.wait_for_selector("#campaign-form")
    assert dana.locator("#campaign-list", has_text="No campaigns yet").count() == 1

    dana.fill("#cmp-name", "Spring sale")
    dana.select_option("#cmp-channel", "sms")
    dana.select_option("#cmp-audience", "list")
    dana.fill("#cmp-list", "identity\nphone:+14155550100\nphone:+14155550101\nemail:someone@example.com\n")
    dana.fill("#cmp-text", 'Hi {{first_name | fallback: "there"}}, 20% off this week.')
    dana.click("#campaign-preview-btn")
    preview = dana.locator("#campaign-preview")
    preview.wait_for()
    assert "2 of 3" in preview.inner_text()
    samples = preview.locator(".campaign-text")
    assert [samples.nth(i).inner_text() for i in range(2)] == [
        "Hi Ann, 20% off this week.", "Hi Zoe, 20% off this week."]
    preview.locator("summary").click()
    assert "an email identity cannot be reached on sms" in dana.locator("#campaign-skipped").inner_text()

    dana.click("#campaign-test")
    dana.locator(".toast", has_text=f"Test sent to phone:{DANA_PHONE}").wait_for(timeout=15_000)
    _until(lambda: any(m["To"] == DANA_PHONE for m in twilio.sent("Messages")), "the test SMS")

    dana.click("#campaign-create")
    detail = dana.locator("#campaign-detail")
    detail.wait_for(timeout=15_000)
    # The page follows the campaign: written, accepted, then delivered (the simulator's receipts).
    detail.locator('[data-result="delivered"] dd', has_text="2").wait_for(timeout=30_000)
    assert detail.locator('[data-result="skipped"] dd').inner_text() == "1"
    rows = dana.locator("#campaign-recipients tbody tr")
    assert rows.count() == 3
    assert HOSTILE in rows.nth(1).inner_text()
    assert sorted(m["Body"] for m in twilio.sent("Messages") if m["To"] != DANA_PHONE) == [
        "Hi Ann, 20% off this week.", "Hi Zoe, 20% off this week."]
    assert dana.locator("#campaign-list tr[data-campaign]").count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    dana.screenshot(path=str(SHOTS / "campaigns.png"), full_page=True)
    assert dana.locator("[data-xss]").count() == 0 and dana.evaluate("window.__xss || null") is None
    assert dana.errors == []

    # An agent has no Campaigns link (the API refuses them: tests/campaigns).
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click("#nav-reports")
    alex.wait_for_selector("#reports .kpi-card")
    assert alex.locator("#reports-campaigns").count() == 0


def _until(check: Any, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} not seen within {within:.0f}s"
        time.sleep(0.1)


def test_a_supervisor_picks_an_approved_whatsapp_template_and_sees_each_recipients_text(
    hub: Hub, twilio: SimulatorThread, new_page: Any
) -> None:
    approved = twilio.sim.add_template("renewal_reminder", "Hi {{1}}, your plan renews on {{2}}.",
                                       {"1": "Sam", "2": "1 May"})
    twilio.sim.add_template("spring_sale", "Spring sale, {{1}}!", {"1": "Sam"}, status="rejected",
                            rejection_reason="INVALID_FORMAT")
    for phone, name in (("+14155550100", "Ann Lee"), ("+14155550101", HOSTILE)):
        hub.inbound(f"phone:{phone}", "hello", name=name)
    dana = new_page(1440, 1400)
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    dana.click("#reports-campaigns")
    dana.wait_for_selector("#campaign-form")
    dana.fill("#cmp-name", "Renewal")
    dana.select_option("#cmp-channel", "whatsapp")
    picker = dana.locator("#cmp-template")
    picker.locator(f'option[value="{approved}"]').wait_for(state="attached", timeout=15_000)
    options = [picker.locator("option").nth(i) for i in range(picker.locator("option").count())]
    labels = {o.get_attribute("value"): (o.inner_text(), o.is_disabled()) for o in options}
    assert labels[approved] == ("renewal_reminder (en) — approved", False)
    assert [v for v, (text, off) in labels.items() if "spring_sale" in text and "rejected" in text and off]
    picker.select_option(approved)
    assert dana.locator("#cmp-template-body").inner_text() == "Hi {{1}}, your plan renews on {{2}}."
    assert not dana.locator("#cmp-text").is_visible()
    dana.select_option("#cmp-audience", "list")
    dana.fill("#cmp-list", "phone:+14155550100\nphone:+14155550101\n")
    dana.fill("#cmp-var-1", '{{first_name | fallback: "there"}}')
    dana.fill("#cmp-var-2", "Friday")
    dana.click("#campaign-preview-btn")
    preview = dana.locator("#campaign-preview")
    preview.wait_for()
    samples = preview.locator(".campaign-text")
    assert [samples.nth(i).inner_text() for i in range(2)] == [
        "Hi Ann, your plan renews on Friday.", "Hi Zoe, your plan renews on Friday."]
    # The test send is the template itself, with the values given, filled from the profile of Dana's number (no
    # name there: "Sam", as a text test shows); her phone never wrote on WhatsApp, which a template may ignore.
    dana.click("#campaign-test")
    dana.locator(".toast", has_text=f"Test sent to phone:{DANA_PHONE}").wait_for(timeout=15_000)
    _until(lambda: any(m["To"] == f"whatsapp:{DANA_PHONE}" for m in twilio.sent("Messages")), "the test template")
    [test] = [m for m in twilio.sent("Messages") if m["To"] == f"whatsapp:{DANA_PHONE}"]
    assert (test["ContentSid"], json.loads(test["ContentVariables"]), test.get("Body")) == (
        approved, {"1": "Sam", "2": "Friday"}, None)

    dana.click("#campaign-create")
    detail = dana.locator("#campaign-detail")
    detail.wait_for(timeout=15_000)
    detail.locator('[data-result="delivered"] dd', has_text="2").wait_for(timeout=30_000)
    sent = sorted((m["To"], m["ContentSid"], m["ContentVariables"]) for m in twilio.sent("Messages")
                  if m["To"] != f"whatsapp:{DANA_PHONE}")
    assert sent == [("whatsapp:+14155550100", approved, '{"1": "Ann", "2": "Friday"}'),
                    ("whatsapp:+14155550101", approved, '{"1": "Zoe", "2": "Friday"}')]
    assert [c.inner_text() for c in detail.locator("td[data-outcome]").all()] == ["Delivered", "Delivered"]
    assert dana.locator("[data-xss]").count() == 0 and dana.evaluate("window.__xss || null") is None
    assert dana.errors == []
