"""The console at every screen size an agent brings, in a real browser: 1440 (desktop), 1024 (the customer panel
as a drawer), 768 (a tablet: icons for labels) and 390 (a phone: inbox, offer, timeline, reply, one at a time).
Nothing scrolls sideways and nothing in the top bar overlaps. Screenshots: screen-<width>*.png."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.e2e.conftest import SHOTS, Hub, sign_in


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def _no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page is {width[0]} px wide in a {width[1]} px window"


def _top_bar_fits(page: Any) -> None:
    """Every visible part of the top bar inside the window, none on top of another."""
    boxes = page.evaluate("""() => [...document.querySelectorAll(
        '.topbar > .brand, .topbar > .tabs, .topbar > .search, .live-status, .presence, .me, #signout')]
      .filter((el) => el.offsetParent !== null)
      .map((el) => { const r = el.getBoundingClientRect(); return [el.className || el.id, r.left, r.right]; })""")
    width = page.evaluate("() => window.innerWidth")
    for name, left, right in boxes:
        assert 0 <= left and right <= width, (name, left, right, width)
    ordered = sorted(boxes, key=lambda b: b[1])
    for (a, _, a_right), (b, b_left, _) in itertools.pairwise(ordered):
        assert a_right <= b_left + 0.5, f"{a} overlaps {b}"


def _visible(page: Any, selector: str) -> bool:
    return bool(page.locator(selector).first.is_visible())


def _in_window(page: Any, selector: str) -> None:
    box = page.locator(selector).first.bounding_box()
    size = page.viewport_size
    assert box is not None, selector
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= size["width"] + 0.5 and box["y"] + box["height"] <= size["height"] + 0.5, \
        (selector, box, size)


def _conversation(hub: Hub) -> int:
    made = hub.inbound("email:lee.morgan@example.com", "Hello, my invoice INV-2291 is charged twice this month.",
                       name="Lee Morgan", meta={"subject": "Charged twice"})
    conv = int(made["conversation"]["id"])
    hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "Sorry about that, Lee! Let me look."})
    return conv


@pytest.mark.parametrize("width,height", [(1440, 900), (1024, 768), (768, 1024)])
def test_desktop_laptop_and_tablet(hub: Hub, new_page: Any, width: int, height: int) -> None:
    conv = _conversation(hub)
    page = new_page(width, height)
    sign_in(page, "dana@example.com")
    page.goto(f"/console/#/c/{conv}")
    page.wait_for_selector(".tl-msg.out >> text=Let me look")
    for selector in ("#inbox", "#timeline", "#reply-text", "#send-btn", "#resolve-btn"):
        assert _visible(page, selector), selector
        _in_window(page, selector)
    _no_sideways_scroll(page)
    _top_bar_fits(page)
    if width >= 1200:
        # Wide enough for the customer panel beside the conversation.
        assert _visible(page, "#side .customer-card") and not _visible(page, "#drawer-btn")
    else:
        # The panel is a drawer: out of sight until its button opens it, over the conversation, inside the window.
        assert not _visible(page, "#side .customer-card")
        page.click("#drawer-btn")
        page.wait_for_selector("#side .customer-card >> text=Lee Morgan")
        page.wait_for_timeout(300)  # the drawer slides in
        _in_window(page, "#side")
        assert page.get_attribute("#drawer-btn", "aria-expanded") == "true"
    _shot(page, f"screen-{width}.png")
    if width < 1200:
        page.click(".drawer-scrim", position={"x": 20, "y": 200})
        page.wait_for_timeout(300)
        assert not _visible(page, "#side .customer-card")
    # The composer works at every size.
    page.fill("#reply-text", f"Refund issued ({width} px).")
    page.click("#send-btn")
    page.wait_for_selector(f".tl-msg.out >> text=Refund issued ({width} px).")
    assert page.errors == []


def test_phone_essentials_inbox_offer_timeline_reply(hub: Hub, new_page: Any) -> None:
    page = new_page(390, 844)
    sign_in(page, "alex@example.com")
    _no_sideways_scroll(page)
    _top_bar_fits(page)
    page.click('.seg[data-presence="available"]')
    page.wait_for_selector('.seg.active[data-presence="available"]')
    conv = hub.inbound("phone:+14155550133", "Can I change my delivery address?", name="Kim Hale")["conversation"]["id"]
    offer = page.locator(f'.offer[data-offer="{conv}"]')
    offer.wait_for()
    _in_window(page, f'.offer[data-offer="{conv}"]')
    page.wait_for_timeout(300)
    _shot(page, "screen-390-offer.png")
    offer.locator("text=Accept").click()
    # One column at a time: the conversation replaces the inbox, with a way back.
    page.wait_for_selector(".conv-header .status-assigned")
    assert not _visible(page, "#inbox") and _visible(page, ".back-btn")
    page.wait_for_selector(".tl-msg.in >> text=delivery address")
    for selector in ("#timeline", "#reply-text", "#send-btn", "#resolve-btn", "#drawer-btn"):
        _in_window(page, selector)
    _no_sideways_scroll(page)
    _top_bar_fits(page)
    page.fill("#reply-text", "Yes: send me the new address and I will update it.")
    page.click("#send-btn")
    page.wait_for_selector(".tl-msg.out >> text=send me the new address")
    _no_sideways_scroll(page)
    _shot(page, "screen-390-conversation.png")
    page.click("#drawer-btn")
    page.wait_for_selector("#side .customer-card >> text=Kim Hale")
    page.wait_for_timeout(300)
    _in_window(page, "#side")
    page.click("#drawer-close")
    page.wait_for_timeout(300)
    assert not _visible(page, "#side .customer-card")
    page.click(".back-btn")
    page.wait_for_selector(f'#inbox .conv-item[data-conv="{conv}"]')
    assert not _visible(page, "#timeline")
    _no_sideways_scroll(page)
    _shot(page, "screen-390-inbox.png")
    assert page.errors == []
