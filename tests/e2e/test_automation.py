"""The console's automation screens in a real browser (Debian's Chromium) against a real hub process: an admin
builds a rule in the structured editor (no JSON), dry-runs it, sees it run on a customer's message and how often;
sets a queue's business hours; a webhook to a private address is refused with the reason.
Screenshots in $HUB_SCREENSHOTS."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import SHOTS, Hub, sign_in


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def test_admin_builds_a_rule_that_runs(hub: Hub, new_page: Any) -> None:
    hub.inbound("phone:+14155550142", "Hi, I want a refund for order 7")
    hub.inbound("phone:+14155550143", "What are your opening hours?")
    page = new_page()
    sign_in(page, "admin@example.com")
    page.goto("/console/#/admin/automation")
    page.wait_for_selector("text=No rules yet.")
    page.click("#add-rule")
    page.fill("#rule-name", "Refunds")
    page.select_option("#rule-event", "message.received")
    page.click("#add-condition")
    cond = page.locator("#rule-conditions .condition").last
    cond.locator(".cond-field").select_option("text")
    cond.locator(".cond-op").select_option("contains")
    cond.locator(".rule-value").fill("refund")
    first = page.locator("#rule-actions .action").first
    first.locator(".act-type").select_option("add_label")
    first.locator(".rule-value").fill("refund")
    page.click("#add-action")
    second = page.locator("#rule-actions .action").last
    second.locator(".act-type").select_option("move_to_queue")
    second.locator(".rule-value").select_option("sales")
    # The dry run answers from the events already here: one of the two messages.
    page.click("#rule-dry-run-btn")
    page.wait_for_selector("#rule-dry-run >> text=Would have matched 1 of the last")
    assert "I want a refund" in page.locator("#rule-dry-run").inner_text()
    # A bad value is refused with the API's reason, in the form.
    cond.locator(".cond-op").select_option("matches")
    cond.locator(".rule-value").fill("(refund")
    page.click("#modal-ok")
    page.wait_for_selector("#rule-error >> text=not a regular expression")
    cond.locator(".rule-value").fill(r"\brefund")
    _shot(page, "automation-rule-editor.png")
    page.click("#modal-ok")
    row = page.locator("#rules-admin tr", has_text="Refunds")
    row.wait_for()
    assert row.locator(".rule-runs").inner_text() == "0"

    made = hub.inbound("phone:+14155550144", "Refund please, it broke")
    conv = made["conversation"]["id"]

    def ran() -> bool:
        status, detail = hub.call("GET", f"/api/v1/conversations/{conv}")
        return status == 200 and detail["labels"] == ["refund"] and detail["queue"] == "sales"

    deadline = page.evaluate("Date.now()") + 20_000
    while not ran():
        assert page.evaluate("Date.now()") < deadline, "the rule did not run"
        page.wait_for_timeout(100)
    page.reload()
    page.wait_for_selector("#rules-admin")
    assert page.locator("#rules-admin tr", has_text="Refunds").locator(".rule-runs").inner_text() == "1"
    _shot(page, "automation-rules.png")
    assert page.errors == []


def test_a_webhook_to_a_private_address_is_refused_with_the_reason(hub: Hub, new_page: Any) -> None:
    page = new_page()
    sign_in(page, "admin@example.com")
    page.goto("/console/#/admin/automation")
    page.wait_for_selector("#add-webhook")
    page.click("#add-webhook")
    page.fill("#webhook-url", "http://169.254.169.254/latest/meta-data")
    page.locator("#webhook-events label", has_text="resolved").click()
    page.click("#modal-ok")
    page.wait_for_selector("#webhook-error >> text=private, loopback or reserved")
    page.fill("#webhook-url", "https://crm.example.com/hub-events")
    page.click("#modal-ok")
    page.wait_for_selector("#webhook-secret")
    assert page.locator("#webhook-secret").input_value().startswith("whsec_")
    page.click("#modal-ok")
    page.locator("#webhooks-admin tr", has_text="crm.example.com").wait_for()
    assert page.errors == []


def test_admin_sets_business_hours(hub: Hub, new_page: Any) -> None:
    page = new_page()
    sign_in(page, "admin@example.com")
    page.goto("/console/#/admin/automation")
    page.click('[data-edit-hours="support"]')
    page.fill("#hours-timezone", "Mars/Olympus")
    page.fill('[data-day="mon"]', "09:00-17:00")
    page.click("#modal-ok")
    page.wait_for_selector("#hours-error >> text=not an IANA time zone")
    page.fill("#hours-timezone", "Europe/Paris")
    for day in ("tue", "wed", "thu", "fri"):
        page.fill(f'[data-day="{day}"]', "09:00-12:30, 13:30-18:00")
    page.fill("#hours-holidays", "2026-12-25")
    page.fill("#hours-auto-reply", "We are closed; we open {next_open}.")
    _shot(page, "automation-hours.png")
    page.click("#modal-ok")
    row = page.locator('#hours-admin tr[data-hours="support"]')
    row.locator("text=Europe/Paris · 5 days a week · 1 holiday").wait_for()
    status, saved = hub.call("GET", "/api/v1/business-hours/support")
    assert status == 200 and saved["weekly"]["tue"] == ["09:00-12:30", "13:30-18:00"]
    assert saved["auto_reply"] == "We are closed; we open {next_open}."
    assert page.errors == []
