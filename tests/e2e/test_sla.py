"""First-response targets as agents and supervisors see them in a real browser: a conversation nobody answered in
time is marked late in the inbox, the wall shows the queue's first-reply attainment, and a reply clears the mark."""

from __future__ import annotations

from typing import Any

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
