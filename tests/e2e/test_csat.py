"""The web chat's satisfaction survey in Chromium: after the agent's conversation is resolved, the customer's widget
shows the question with five score buttons and a comment box; the rating lands on the conversation, and a reload
shows it answered; the agent sees the score on the timeline. Screenshot: csat-webchat.png."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SHOTS, Hub, customer_chats, go_available, run_hub, sign_in


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    env = {
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        "HUB_ROUTING__QUEUES": json.dumps({
            "support": {"title": "Support", "offer_timeout": 300, "csat": True},
            "sales": {"title": "Sales", "offer_timeout": 300},
        }),
        "HUB_CSAT__POLL_INTERVAL_SECONDS": "0.2",
    }
    with run_hub(tmp_path, extra_env=env) as running:
        yield running


def _survey_of(hub: Hub, conv: int) -> dict[str, Any] | None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, detail = hub.call("GET", f"/api/v1/conversations/{conv}")
        assert status == 200
        if detail["csat"] and detail["csat"]["status"] == "answered":
            return dict(detail["csat"])
        time.sleep(0.1)
    return None


def test_the_widget_rates_a_resolved_conversation(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    go_available(alex)
    customer = customer_chats(new_page, "Can I change my delivery address?")

    status, listed = hub.call("GET", "/api/v1/conversations")
    assert status == 200
    conv = listed["items"][0]["id"]
    status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/resolve")
    assert status == 200

    form = customer.wait_for_selector(".hc-rating")
    customer.wait_for_selector("text=How satisfied are you with the help you got?")
    send = customer.locator(".hc-rating-send")
    assert send.is_disabled(), "no score picked yet"
    customer.click('.hc-score[aria-label="4 of 5"]')
    assert customer.locator('.hc-score[aria-pressed="true"]').inner_text() == "4"
    customer.fill(".hc-rating-comment", "Quick <b>help</b>")
    SHOTS.mkdir(parents=True, exist_ok=True)
    customer.screenshot(path=str(SHOTS / "csat-webchat.png"))
    send.click()
    customer.wait_for_selector(".hc-rating-thanks")
    assert not form.is_visible()
    customer.wait_for_selector(".hc-mine:not(.hc-pending) >> text=4/5 Quick <b>help</b>")  # as text, not markup

    survey = _survey_of(hub, conv)
    assert survey is not None and (survey["score"], survey["comment"]) == (4, "Quick <b>help</b>")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv}")
    assert detail["status"] == "resolved", "a rating opens no work"

    # The agent sees the score on the conversation's timeline.
    alex.goto(f"/console/#/c/{conv}")
    mark = alex.wait_for_selector(".tl-msg.in .csat-mark")
    assert mark.inner_text() == "★ 4/5"
    alex.wait_for_selector(".tl-msg.out .csat-mark >> text=survey")

    # Back later: the survey is shown answered, not asked again.
    customer.reload()
    customer.wait_for_selector(".hc-panel[data-state=online]")
    customer.wait_for_selector(".hc-rating-thanks")
    assert customer.locator(".hc-rating").count() == 0
    assert customer.errors == [] and alex.errors == []


def test_a_low_rating_reaches_the_supervisors_wall_as_it_arrives(hub: Hub, new_page: Any) -> None:
    dana = new_page()
    sign_in(dana, "dana@example.com")
    dana.click("#nav-wall")
    dana.wait_for_selector("#wall-low-csat >> text=No rating of 2 or less")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    go_available(alex)
    customer = customer_chats(new_page, "My parcel never came")
    status, listed = hub.call("GET", "/api/v1/conversations")
    assert status == 200
    conv = listed["items"][0]["id"]
    assert hub.call("POST", f"/api/v1/conversations/{conv}/resolve")[0] == 200
    customer.wait_for_selector(".hc-rating")
    customer.click('.hc-score[aria-label="1 of 5"]')
    customer.fill(".hc-rating-comment", "<img src=x onerror=alert(1)> still waiting")
    customer.locator(".hc-rating-send").click()
    customer.wait_for_selector(".hc-rating-thanks")
    # The wall (left open, not reloaded) lists it with the link to the conversation; the comment is text.
    row = dana.locator(f'#wall-low-csat li[data-conversation="{conv}"]')
    row.wait_for(timeout=15_000)
    assert row.locator(".chip").inner_text() == "1/5"
    assert row.locator("q").inner_text() == "<img src=x onerror=alert(1)> still waiting"
    assert row.locator("img").count() == 0
    assert row.locator("a").get_attribute("href") == f"#/c/{conv}"
    assert dana.locator("#wall-csat strong").inner_text() == "0%"
    row.locator("a").click()
    dana.wait_for_selector(".tl-msg.in .csat-mark >> text=1/5")
    assert dana.errors == [] and alex.errors == [] and customer.errors == []
