"""The console in a real browser (Debian's Chromium via Playwright) against a real hub process: an agent's day
(sign in, live inbound, reply, note, resolve), hostile email HTML, visibility, CSRF, throttling, offers and transfer.
Screenshots of the main screens land in $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, SHOTS, Hub, sign_in

XSS_HTML = """
<p>Hello, please see the <b>invoice</b> below.</p>
<script>window.parent.__xss = 'script'; alert('script')</script>
<img src="x" onerror="window.parent.__xss = 'img'; alert('img')">
<svg onload="window.parent.__xss = 'svg'"><circle r="5"></circle></svg>
<a id="js-link" href="javascript:window.parent.__xss='link'">click me</a>
<iframe srcdoc="&lt;script&gt;window.top.__xss='iframe'&lt;/script&gt;"></iframe>
<form action="javascript:window.parent.__xss='form'"><button>go</button></form>
<style>body { background: url("javascript:window.parent.__xss='css'") }</style>
<object data="javascript:window.parent.__xss='object'"></object>
<meta http-equiv="refresh" content="0;url=javascript:window.parent.__xss='meta'">
"""


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def _seed_history(hub: Hub) -> dict[str, Any]:
    """A customer who wrote before on another conversation, and is writing again now."""
    first = hub.inbound("email:maria.lopez@example.com", "Hi, my order #4821 arrived with a cracked lid.",
                        name="Maria Lopez", meta={"subject": "Cracked lid on order #4821"},
                        html="<p>Hi,</p><p>My order <b>#4821</b> arrived with a cracked lid. Photo attached.</p>"
                             "<p>Thanks,<br>Maria</p>")
    conv = first["conversation"]["id"]
    status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/messages",
                         {"text": "So sorry, Maria! A replacement ships today."})
    assert status == 201
    status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/resolve",
                         {"note": "Replacement sent, no return needed"})
    assert status == 200
    return first


def test_agent_answers_a_customer_live(hub: Hub, new_page: Any) -> None:
    _seed_history(hub)
    page = new_page()
    page.goto("/console/")
    page.wait_for_selector("#email")
    _shot(page, "sign-in.png")
    sign_in(page, "alex@example.com")
    assert page.locator(".me-name").inner_text() == "Alex Rivera"

    # A message arrives while the agent watches: it shows up in the queue without a reload.
    arrived = hub.inbound("email:maria.lopez@example.com", "The replacement lid is the wrong size, sadly.",
                          meta={"subject": "Re: Cracked lid on order #4821"})
    conv_id = arrived["conversation"]["id"]
    item = page.locator(f'.conv-item[data-conv="{conv_id}"]')
    item.wait_for()
    assert "wrong size" in item.inner_text()
    item.click()
    page.wait_for_selector(".tl-msg.in >> text=wrong size")
    # The whole timeline, across conversations: the earlier one and its resolution note are there too.
    assert page.locator(".tl-divider").count() == 2
    assert page.locator(".tl-note >> text=Replacement sent").count() == 1

    # Reply on another channel than the customer used, when the customer can be reached on one.
    picker = page.locator("#reply-channel")
    options = picker.locator("option").evaluate_all("els => els.map(e => e.value)")
    used = arrived["conversation"]["last_inbound_channel"]
    chosen = next((o for o in options if o != used), used)
    picker.select_option(chosen)
    page.fill("#reply-text", "Thanks Maria, a correctly sized lid is on its way.")
    page.keyboard.press("Control+Enter")
    out = page.locator(".tl-msg.out >> text=correctly sized lid")
    out.wait_for()
    # The API channel with no webhook marks replies sent: the tick moves on without a reload.
    page.wait_for_selector(".tl-msg.out:has-text('correctly sized lid') .tick-sent, "
                           ".tl-msg.out:has-text('correctly sized lid') .tick-delivered")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv_id}")
    reply = next(m for m in detail["messages"] if "correctly sized" in m["text"])
    assert reply["channel"] == chosen and reply["agent_id"] == hub.agent_ids["alex@example.com"]

    # An internal note, by keyboard.
    page.locator("#timeline").click()
    page.keyboard.press("n")
    assert page.locator(".reply.note-mode").count() == 1
    page.keyboard.type("Customer is a repeat buyer: offer 10% off next order.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".tl-note >> text=repeat buyer")
    page.wait_for_selector(".side-notes >> text=repeat buyer")
    page.locator(".tl-msg.in").last.scroll_into_view_if_needed()
    _shot(page, "conversation.png")

    page.click("#resolve-btn")
    page.wait_for_selector(".conv-header .status-resolved")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv_id}")
    assert detail["status"] == "resolved"
    assert [m["kind"] for m in detail["messages"]][-2:] == ["text", "note"]
    page.wait_for_selector(f'.conv-item[data-conv="{conv_id}"]', state="detached")
    assert page.errors == []


def test_hostile_email_html_stays_inert(hub: Hub, new_page: Any) -> None:
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, "alex@example.com")
    evil = '<img src=x onerror="window.__xss=\'name\'">'
    made = hub.inbound("email:mallory@example.com", "plain text part", name=evil, html=XSS_HTML,
                       meta={"subject": '<script>window.__xss="subject"</script>Invoice'})
    conv_id = made["conversation"]["id"]
    page.locator(f'.conv-item[data-conv="{conv_id}"]').click()
    frame_el = page.wait_for_selector("iframe.email-frame")
    assert frame_el.get_attribute("sandbox") is not None
    assert "allow-scripts" not in (frame_el.get_attribute("sandbox") or "")
    frame = frame_el.content_frame()
    assert frame is not None
    frame.wait_for_selector("text=invoice")
    # The hub sanitizes the payloads on the way in and the console renders what is left in a sandboxed frame:
    # give handlers every chance to fire, and click whatever is left of the link, the form and any anchor.
    frame.get_by_text("click me").click(timeout=5000, force=True)
    frame.locator("body").click(force=True)
    for anchor in frame.locator("a").all():
        anchor.click(force=True)
    page.wait_for_timeout(800)
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    # Names and subjects are shown as text, never parsed.
    assert page.locator(".conv-header h1").inner_text() == evil
    assert "<script>" in page.locator(".email-subject").first.inner_text()
    assert page.locator(".conv-header img, .email-subject script").count() == 0
    assert page.errors == []


def test_email_shows_the_new_part_and_the_quoted_history_on_request(hub: Hub, new_page: Any) -> None:
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, "alex@example.com")
    quoted = '<div class="gmail_quote">On Monday Support wrote:<blockquote>Your ticket is closed.</blockquote></div>'
    made = hub.inbound("email:quinn@example.com", "It still fails.", name="Quinn",
                       html="<p>It still <b>fails</b>.</p>",
                       meta={"email": {"subject": "Re: Ticket 7",
                                       "full_html": "<p>It still <b>fails</b>.</p>" + quoted + XSS_HTML}})
    page.locator(f'.conv-item[data-conv="{made["conversation"]["id"]}"]').click()
    assert page.wait_for_selector(".email-subject").inner_text() == "Re: Ticket 7"
    trimmed = page.wait_for_selector("iframe.email-frame").content_frame()
    assert trimmed is not None
    trimmed.wait_for_selector("text=fails")
    assert "Your ticket is closed" not in trimmed.locator("body").inner_text()
    toggle = page.locator("button.email-quoted")
    assert toggle.inner_text() == "Show quoted text"
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    full = page.wait_for_selector("iframe.email-frame").content_frame()
    assert full is not None
    full.wait_for_selector("text=Your ticket is closed.")
    # The full original went through the same sanitizer as the body: nothing in it runs.
    assert full.locator("script, iframe, object, form").count() == 0
    page.wait_for_timeout(500)
    assert page.evaluate("window.__xss") is None and dialogs == []
    toggle.click()
    assert toggle.inner_text() == "Show quoted text"
    assert page.errors == []


def test_agent_cannot_open_another_queues_conversation(hub: Hub, new_page: Any) -> None:
    sales = hub.inbound("phone:+14155550142", "What is your pricing for 50 seats?", name="Priya Shah")
    assert sales["conversation"]["queue"] == "sales"
    conv_id, customer_id = sales["conversation"]["id"], sales["customer"]["id"]
    page = new_page()
    sign_in(page, "alex@example.com")  # support only
    assert page.locator(f'.conv-item[data-conv="{conv_id}"]').count() == 0
    page.goto(f"/console/#/c/{conv_id}")
    page.wait_for_selector(".empty-state >> text=not in your queues")
    assert page.locator("text=pricing for 50 seats").count() == 0
    page.fill("#search", "Priya")
    page.wait_for_selector("#search-results .no-results")
    # The API with the same session says the same, for reads and writes alike.
    csrf = page.evaluate("fetch('/console/session').then(r => r.json()).then(j => j.csrf_token)")
    for path in (f"/api/v1/conversations/{conv_id}", f"/api/v1/customers/{customer_id}",
                 f"/api/v1/customers/{customer_id}/timeline"):
        assert page.evaluate(f"fetch('{path}').then(r => r.status)") == 404
    status = page.evaluate(
        f"""fetch('/api/v1/conversations/{conv_id}/messages', {{method: 'POST',
            headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': '{csrf}'}},
            body: JSON.stringify({{text: 'sneaky'}})}}).then(r => r.status)""")
    assert status == 404
    # The sales agent does see it.
    other = new_page()
    sign_in(other, "sam@example.com")
    other.locator(f'.conv-item[data-conv="{conv_id}"]').wait_for()


def test_cookie_post_without_csrf_token_is_refused(hub: Hub, new_page: Any) -> None:
    made = hub.inbound("phone:+14155550100", "Need help with my bill")
    conv_id = made["conversation"]["id"]
    page = new_page()
    sign_in(page, "alex@example.com")
    result = page.evaluate(
        f"""fetch('/api/v1/conversations/{conv_id}/messages', {{method: 'POST',
            headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{text: 'forged'}})}})
            .then(async r => [r.status, (await r.json()).error.message])""")
    assert result[0] == 403 and "X-CSRF-Token" in result[1]
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv_id}")
    assert [m["text"] for m in detail["messages"]] == ["Need help with my bill"]
    # The session cookie itself is out of reach of scripts.
    assert "hub_session" not in page.evaluate("document.cookie")
    cookie = next(c for c in page.context.cookies() if c["name"] == "hub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_failed_sign_ins_slow_down_that_address(hub: Hub, new_page: Any) -> None:
    page = new_page()
    page.goto("/console/")
    for _ in range(2):
        page.fill("#email", "alex@example.com")
        page.fill("#password", "not my password")
        page.click("#signin-btn")
        page.wait_for_selector("#signin-error >> text=Wrong email or password")
        page.evaluate("document.getElementById('signin-error').textContent = ''")
    page.fill("#email", "alex@example.com")
    page.fill("#password", "not my password")
    page.click("#signin-btn")
    page.wait_for_selector("#signin-error.locked >> text=Too many failed sign-ins")
    page.fill("#email", "alex@example.com")
    page.fill("#password", PASSWORD)
    page.click("#signin-btn")
    page.wait_for_selector("#signin-error.locked >> text=Try again in")
    assert page.locator("#live-status").count() == 0
    _shot(page, "sign-in-locked.png")
    # Sign out works and ends the session on the server.
    fresh = new_page()
    sign_in(fresh, "sam@example.com")
    fresh.click("#signout")
    fresh.wait_for_selector("#signin-error >> text=signed out")
    assert fresh.evaluate("fetch('/api/v1/inbox').then(r => r.status)") == 401


def _routing_endpoints(hub: Hub) -> bool:
    status, _ = hub.call("GET", "/api/v1/offers")
    # An admin token acts as no agent: 400 means the route exists; 404 with no JSON error means it does not.
    return status != 404


def test_supervisor_wall(hub: Hub, new_page: Any) -> None:
    hub.inbound("phone:+14155550101", "Is the pricing different for nonprofits?", name="Leo Martin")
    hub.inbound("email:jo@example.com", "Password reset email never arrives", name="Jo Becker")
    hub.inbound("phone:+14155550102", "Can I change my delivery address?", name="Chris Young")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    page = new_page()
    sign_in(page, "dana@example.com")
    page.click("#nav-wall")
    page.wait_for_selector('.queue-card[data-queue="support"]')
    support = page.locator('.queue-card[data-queue="support"]')
    if _routing_endpoints(hub):
        alex.click('.seg[data-presence="available"]')
        page.wait_for_selector(f'tr[data-agent="{hub.agent_ids["alex@example.com"]}"] >> text=available')
    # No sales agent is available: the pricing question waits in sales, live on the wall.
    sales = page.locator('.queue-card[data-queue="sales"] .kpi strong').first
    sales.filter(has_text="1").wait_for()
    assert support.is_visible()
    page.wait_for_timeout(300)
    _shot(page, "supervisor-wall.png")
    assert page.errors == []


def test_accept_an_offer_then_transfer(hub: Hub, new_page: Any) -> None:
    if not _routing_endpoints(hub):
        pytest.skip("the routing endpoints (hub/api/routing_routes.py) are not served by this hub")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    made = hub.inbound("phone:+14155550177", "My package says delivered but it is not here", name="Tom Reed")
    conv_id = made["conversation"]["id"]
    offer = alex.locator(f'.offer[data-offer="{conv_id}"]')
    offer.wait_for()
    assert "Tom Reed" in offer.inner_text() and "package says delivered" in offer.inner_text()
    assert re.search(r"\d+s", offer.locator(".offer-countdown").inner_text())
    alex.wait_for_timeout(400)  # let the pop-up finish rising
    _shot(alex, "offer.png")
    offer.locator("text=Accept").click()
    alex.wait_for_url(re.compile(rf"#/c/{conv_id}$"))
    alex.wait_for_selector(".conv-header .status-assigned")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv_id}")
    assert detail["agent_id"] == hub.agent_ids["alex@example.com"] and detail["status"] == "assigned"

    sam = new_page()
    sign_in(sam, "sam@example.com")
    alex.keyboard.press("t")
    alex.select_option("#transfer-queue", "sales")
    alex.fill("#transfer-note", "Carrier claim needed; sales handles refunds for business accounts.")
    alex.click("#modal-ok")
    alex.wait_for_selector(".toast >> text=Conversation transferred")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv_id}")
    assert detail["queue"] == "sales"
    assert any(m["kind"] == "note" and "Carrier claim" in m["text"] for m in detail["messages"])
    # The sales agent sees it arrive, with the note.
    sam.locator(f'.conv-item[data-conv="{conv_id}"]').click()
    sam.wait_for_selector(".tl-note >> text=Carrier claim")
