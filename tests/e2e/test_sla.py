"""First-response targets as agents and supervisors see them in a real browser: a conversation nobody answered in
time is marked late in the inbox, the wall shows the queue's first-reply attainment, and a reply clears the mark."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from hub.business_hours import DAYS
from tests.e2e.conftest import Hub, sign_in


def test_late_first_reply_is_marked_and_counted(hub: Hub, new_page: Any) -> None:
    status, queue = hub.call("PUT", "/api/v1/routing/queues/support",
                             {"title": "Support", "offer_timeout": 300, "first_response": 2})
    assert status == 200, queue
    made = hub.inbound("phone:+14155550177", "My order arrived broken", name="Rosa Diaz")
    conv = made["conversation"]["id"]
    page = new_page()
    sign_in(page, "alex@example.com")
    item = page.locator(f'.conv-item[data-conv="{conv}"]')
    item.wait_for()
    # Two seconds without a reply: the routing tick sees the breach and the console marks the conversation.
    page.wait_for_selector(f'.conv-item.late[data-conv="{conv}"]', timeout=15_000)
    assert "first-response target" in (item.get_attribute("title") or "")

    item.click()
    page.fill("#reply-text", "So sorry, Rosa. A replacement ships today.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f'.conv-item[data-conv="{conv}"]:not(.late)', timeout=15_000)

    dana = new_page()
    sign_in(dana, "dana@example.com")
    dana.click("#nav-wall")
    card = dana.locator('.queue-card[data-queue="support"]')
    card.locator(".kpi", has_text="first reply in time").locator("strong", has_text="0%").wait_for()
    card.locator("dd", has_text="1 · 1").wait_for()
    assert page.errors == [] and dana.errors == []


def test_a_business_hours_deadline_drives_the_late_marker(hub: Hub, new_page: Any) -> None:
    """A queue that counts business hours only: a conversation that arrives while it is closed is due when it has been
    open for the target, so it is not marked late when arrival plus the target passes; one that came in while the
    queue counted calendar time is."""
    today = datetime.now(UTC).date()
    opens = today + timedelta(days=2)  # open one hour, the day after tomorrow: closed now whatever the time
    status, body = hub.call("PUT", "/api/v1/business-hours/support",
                            {"timezone": "UTC", "weekly": {DAYS[opens.weekday()]: ["09:00-10:00"]}})
    assert status == 200, body
    status, queue = hub.call("PUT", "/api/v1/routing/queues/support",
                             {"title": "Support", "offer_timeout": 300, "first_response": 2,
                              "first_response_hours": "business"})
    assert status == 200, queue
    closed = hub.inbound("phone:+14155550178", "Is anyone there tonight?", name="Nina Ruiz")["conversation"]["id"]
    status, queue = hub.call("PUT", "/api/v1/routing/queues/support",
                             {"title": "Support", "offer_timeout": 300, "first_response": 2,
                              "first_response_hours": "calendar"})
    assert status == 200, queue
    calendar = hub.inbound("phone:+14155550179", "Where is my refund?", name="Omar Haddad")["conversation"]["id"]
    page = new_page()
    sign_in(page, "alex@example.com")
    # The calendar one goes late two seconds after it came; the inbox is drawn again then, and by now the business
    # one is past arrival plus two seconds too, but not past its deadline: it stays unmarked.
    page.wait_for_selector(f'.conv-item.late[data-conv="{calendar}"]', timeout=15_000)
    page.locator(f'.conv-item[data-conv="{closed}"]').wait_for()
    assert page.locator(f'.conv-item.late[data-conv="{closed}"]').count() == 0
    status, inbox = hub.call("GET", "/api/v1/inbox")
    assert status == 200, inbox
    due = {i["conversation"]["id"]: i["first_reply_due"] for i in inbox["items"]}
    assert due[closed] == datetime.combine(opens, time(9, 0, 2), UTC).timestamp()
    # The wall says how the queue's target counts.
    status, queue = hub.call("PUT", "/api/v1/routing/queues/support",
                             {"title": "Support", "offer_timeout": 300, "first_response": 2,
                              "first_response_hours": "business"})
    assert status == 200, queue
    dana = new_page()
    sign_in(dana, "dana@example.com")
    dana.click("#nav-wall")
    kpi = dana.locator('.queue-card[data-queue="support"] .kpi', has_text="first reply in time")
    kpi.wait_for()
    assert "of business hours" in (kpi.get_attribute("title") or "")
    assert page.errors == [] and dana.errors == []
