"""Who owns a conversation, in a real browser against a real hub: Assign to me, a first reply that claims, Resolve
with its Undo (the `e` key asks nothing, so the toast gives it back), and Reopen. Screenshot: resolve-undo.png."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import SHOTS, Hub, sign_in


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def _conversation(hub: Hub, conv: int) -> dict[str, Any]:
    status, body = hub.call("GET", f"/api/v1/conversations/{conv}")
    assert status == 200
    return dict(body)


def test_assign_to_me_then_resolve_undo_and_reopen(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    alex.click('.seg[data-presence="away"]')  # no offers: the conversation waits in the queue
    alex.wait_for_selector('.seg.active[data-presence="away"]')
    conv = hub.inbound("webchat:v_Ann", "Is my order shipped?", name="Ann Ode")["conversation"]["id"]
    alex.locator(f'.conv-item[data-conv="{conv}"]').click()
    alex.wait_for_selector(".conv-header .status-open")

    # Away: Assign to me says why not, and nothing changes.
    alex.click("#claim-btn")
    alex.wait_for_selector(".toast >> text=Set yourself Available")
    assert _conversation(hub, conv)["agent_id"] is None
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    # Offered to him now or not, `m` makes it his (an offer of his own is simply accepted).
    alex.locator(".conv-title h1").click()  # a plain spot: the header's middle may be a button
    alex.keyboard.press("m")
    alex.wait_for_selector(".conv-header .status-assigned")
    assert _conversation(hub, conv)["agent_id"] == hub.agent_ids["alex@example.com"]
    assert alex.locator("#claim-btn").count() == 0
    alex.locator(f'[data-section="mine"] .conv-item[data-conv="{conv}"]').wait_for()  # now under My conversations

    # `e` resolves at once; the toast's Undo gives it back to Alex, still assigned.
    alex.locator(".conv-title h1").click()  # a plain spot: the header's middle may be a button
    alex.keyboard.press("e")
    alex.wait_for_selector(".conv-header .status-resolved")
    undo = alex.locator(".toast >> text=Undo")
    undo.wait_for()
    _shot(alex, "resolve-undo.png")
    assert _conversation(hub, conv)["status"] == "resolved"
    undo.click()
    alex.wait_for_selector(".conv-header .status-assigned")
    back = _conversation(hub, conv)
    assert back["status"] == "assigned" and back["agent_id"] == hub.agent_ids["alex@example.com"]
    alex.wait_for_selector(".tl-event >> text=Reopened by Alex Rivera")

    # Resolved for good, then reopened from the header.
    alex.click("#resolve-btn")
    alex.wait_for_selector(".conv-header .status-resolved")
    alex.click("#reopen-btn")
    alex.wait_for_selector(".conv-header .status-assigned")
    assert _conversation(hub, conv)["agent_id"] == hub.agent_ids["alex@example.com"]
    assert alex.errors == []


def test_a_first_reply_makes_the_conversation_yours(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('.seg[data-presence="available"]')
    alex.wait_for_selector('.seg.active[data-presence="available"]')
    conv = hub.inbound("webchat:v_Bo", "Hello? Anyone there?", name="Bo Li")["conversation"]["id"]
    # Alex does not touch the offer: he opens the conversation from the queue and answers.
    alex.locator(f'.conv-item[data-conv="{conv}"]').click()
    alex.wait_for_selector(".conv-header .status-open")
    alex.fill("#reply-text", "Hi Bo, I am here. How can I help?")
    alex.keyboard.press("Control+Enter")
    alex.wait_for_selector(".conv-header .status-assigned")
    assert _conversation(hub, conv)["agent_id"] == hub.agent_ids["alex@example.com"]
    alex.locator(f'.offer[data-offer="{conv}"]').wait_for(state="detached")
    assert alex.errors == []
