"""Business events and segments in a real browser: an order and a failed payment sent by the shop appear as cards in
the conversation the agent is reading (customer text shown as text), and a supervisor reads the RFM groups, saves a
segment, opens its customers and exports them on the Reports page; an agent sees no segments. A screenshot of the
Reports page's Segments section lands in $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import SHOTS, Hub, sign_in

HOSTILE = '<img src=x data-xss onerror="window.__xss=1">'


def test_the_agent_sees_the_shops_events_in_the_conversation(hub: Hub, new_page: Any) -> None:
    conv = hub.inbound("email:ann@example.com", "Where is my espresso machine?", name="Ann Lee")["conversation"]["id"]
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{conv}")
    alex.locator(".tl-msg", has_text="espresso machine").wait_for(timeout=15_000)
    status, got = hub.call("POST", "/api/v1/events", {
        "external_id": "order-1001", "type": "order.placed", "identity": "email:ann@example.com",
        "amount": 620.5, "currency": "EUR",
        "items": [{"name": "Espresso machine", "quantity": 1}, {"name": HOSTILE, "quantity": 2}],
        "payload": {"order_number": "A-1001", "note": HOSTILE}})
    assert status == 201, got
    card = alex.locator('.tl-business[data-event-type="order.placed"]')
    card.wait_for(timeout=15_000)  # live, over the socket
    assert "Order placed" in card.inner_text() and "620.50 EUR" in card.inner_text()
    assert "2 \u00d7 " + HOSTILE in card.inner_text() and "A-1001" in card.inner_text()
    status, _ = hub.call("POST", "/api/v1/events", {"external_id": "pay-1", "type": "payment.failed",
                                                    "identity": "email:ann@example.com",
                                                    "payload": {"reason": "card declined"}})
    assert status == 201
    alex.locator(".tl-business.failed", has_text="card declined").wait_for(timeout=15_000)
    alex.reload()
    alex.locator(".tl-business").nth(1).wait_for(timeout=15_000)  # both kept on the timeline
    assert alex.locator(".tl-business").count() == 2
    SHOTS.mkdir(parents=True, exist_ok=True)
    alex.locator("#timeline").screenshot(path=str(SHOTS / "business-events.png"))
    assert alex.locator("[data-xss]").count() == 0 and alex.evaluate("window.__xss || null") is None
    assert alex.errors == []


def test_a_supervisor_saves_a_segment_and_exports_its_customers(hub: Hub, new_page: Any) -> None:
    for i in range(6):
        identity = f"phone:+1415555010{i}"
        conv = hub.inbound(identity, f"hello {i}", name=f"Customer {i}")["conversation"]["id"]
        if i % 2 == 0:
            status, _ = hub.call("POST", "/api/v1/events", {"external_id": f"o{i}", "type": "order.placed",
                                                            "identity": identity, "amount": 100.0 * (i + 1),
                                                            "currency": "EUR"})
            assert status == 201
        status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/resolve", {})
        assert status == 200
    dana = new_page(1440, 1600)
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    groups = dana.locator("#rfm-groups .rfm-group")
    groups.first.wait_for(timeout=15_000)
    assert {groups.nth(i).get_attribute("data-group") for i in range(groups.count())} == {
        "champions", "loyal", "at_risk", "lost", "other"}
    assert dana.locator("#segment-list tr[data-segment]").count() == 4  # the RFM groups, out of the box

    dana.fill("#seg-name", "Buyers over 200")
    dana.fill("#seg-value", "200")
    dana.click("#segment-form button:has-text('Preview')")
    dana.locator("#segment-preview", has_text="2 customers").wait_for()  # 300 and 500 (100 is under)
    dana.click("#segment-save")
    detail = dana.locator("#segment-detail")
    detail.wait_for()
    detail.locator("#segment-size", has_text="2 customers").wait_for()
    rows = dana.locator("#segment-customers tbody tr[data-customer]")
    assert rows.count() == 2
    assert {rows.nth(i).locator("td").first.inner_text() for i in range(2)} == {"Customer 2", "Customer 4"}
    assert dana.locator("#segment-list tr[data-segment]").count() == 5
    with dana.expect_download() as got:
        detail.locator("a", has_text="Export CSV").click()
    assert got.value.suggested_filename.startswith("segment-")
    SHOTS.mkdir(parents=True, exist_ok=True)
    dana.locator("#segments").screenshot(path=str(SHOTS / "segments.png"))
    assert dana.errors == []

    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click("#nav-reports")
    alex.locator("#reports .muted", has_text="Your own figures").wait_for()
    assert alex.locator("#segments").count() == 0
    assert alex.errors == []
