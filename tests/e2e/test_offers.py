"""Offers in a real browser against a real hub: a capped tray, newest first with "+N more", that never covers the
composer; accepted and rejected from the keyboard; gone the moment they stop being the agent's (the agent goes Away,
a teammate takes the conversation). Screenshot: offers.png in $HUB_SCREENSHOTS."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SHOTS, Hub, run_hub, sign_in


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    # Room for more chats than the tray shows, so offers pile up as they would on a busy day.
    capacity = json.dumps({"voice": 1, "chat": 8, "email": 5})
    with run_hub(tmp_path, extra_env={"HUB_ROUTING__DEFAULT_CAPACITY": capacity}) as running:
        yield running


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def _boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_a_capped_tray_answered_from_the_keyboard(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    # An open conversation with its composer, so the test can see that offers never cover it.
    first = hub.inbound("phone:+14155550170", "Where is my refund?", name="Ivy Chen")["conversation"]["id"]
    _, _ = hub.call("POST", f"/api/v1/conversations/{first}/messages", {"text": "Checking now."})
    alex.goto(f"/console/#/c/{first}")
    alex.wait_for_selector("#reply-text")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    alex.locator(f'.offer[data-offer="{first}"]').wait_for()
    names = ["Tom Reed", "Ann Ode", "Bo Li", "Cy Twombly", "Di Prima"]
    convs = [hub.inbound(f"phone:+1415555018{i}", f"Question number {i}", name=n)["conversation"]["id"]
             for i, n in enumerate(names)]
    alex.locator("#offers-more").wait_for()
    # Six offers: three cards (the newest first), the rest behind "+3 more".
    assert alex.locator(".offer").count() == 3
    assert alex.locator("#offers-more").inner_text() == "+3 more offers"
    assert alex.locator(".offer").first.get_attribute("data-offer") == str(convs[-1])
    # They came in through the API with phone identities: agents see Phone, never "API".
    assert "Phone" in alex.locator("#offers").inner_text() and "API" not in alex.locator("#offers").inner_text()
    vias = alex.locator(".msg-meta .via").all_inner_texts()
    assert vias and all(v.startswith(("Phone", "Integration", "Internal")) and "API" not in v for v in vias), vias
    for el in ("#reply-text", "#send-btn", ".presence", "#resolve-btn"):
        for card in alex.locator(".offer").all():
            assert not _boxes_overlap(card.bounding_box(), alex.locator(el).bounding_box()), el
    alex.wait_for_timeout(300)
    _shot(alex, "offers.png")
    alex.click("#offers-more")
    assert alex.locator(".offer").count() == 6
    alex.click("#offers-more")
    assert alex.locator(".offer").count() == 3

    # x rejects the newest (top) card, a accepts the next one and opens it.
    alex.locator("body").click(position={"x": 700, "y": 300})
    alex.keyboard.press("x")
    # Rejected: the hub counts it; as the queue's only agent Alex may be offered it again, as a new offer.
    def rejected() -> int:  # the key press reaches the hub a moment after it is pressed
        status, wall = hub.call("GET", f"/api/v1/wall?since={time.time() - 3600}")
        assert status == 200, wall
        return int(next(q for q in wall["queues"] if q["name"] == "support")["window"]["rejected"])

    deadline = time.monotonic() + 10
    while rejected() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rejected() == 1
    _, rejected = hub.call("GET", f"/api/v1/conversations/{convs[-1]}")
    assert rejected["agent_id"] is None
    alex.wait_for_timeout(500)  # let a re-offer land, so the top card is settled
    top = alex.locator(".offer.top").get_attribute("data-offer")
    alex.keyboard.press("a")
    alex.wait_for_url(re.compile(rf"#/c/{top}$"))
    alex.wait_for_selector(".conv-header .status-assigned")
    _, taken = hub.call("GET", f"/api/v1/conversations/{top}")
    assert taken["agent_id"] == hub.agent_ids["alex@example.com"]

    # Going Away: every offer leaves the tray at once, and the hub has handed them back to the queue.
    alex.click('.seg[data-presence="away"]')
    alex.wait_for_selector(".offer", state="detached")
    assert alex.locator("#offers-more").count() == 0
    assert alex.locator(".offers.has-offers").count() == 0 and alex.locator("#offers").inner_text().strip() == ""
    assert alex.errors == []


def test_an_offer_goes_when_a_teammate_takes_the_conversation(hub: Hub, new_page: Any) -> None:
    alex, dana = new_page(), new_page()
    sign_in(alex, "alex@example.com")
    sign_in(dana, "dana@example.com")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    conv = hub.inbound("phone:+14155550190", "Can someone help?", name="Eve Park")["conversation"]["id"]
    alex.locator(f'.offer[data-offer="{conv}"]').wait_for()
    # Dana (supervisor, same queue) opens it and assigns it to herself: Alex's offer disappears.
    dana.click('.seg[data-presence="available"]')
    dana.goto(f"/console/#/c/{conv}")
    dana.click("#claim-btn")
    dana.wait_for_selector(".conv-header .status-assigned")
    alex.locator(f'.offer[data-offer="{conv}"]').wait_for(state="detached")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv}")
    assert detail["agent_id"] == hub.agent_ids["dana@example.com"]
    assert alex.errors == [] and dana.errors == []
