"""Canned responses in a real browser: an agent adds one in the manager, types "/" and a few letters in the reply,
picks it with the keyboard, and sends the text with its variables filled for this customer; a missing variable is
named. Screenshot: canned.png."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import SHOTS, Hub, sign_in


def test_type_slash_pick_and_send(hub: Hub, new_page: Any) -> None:
    status, _ = hub.call("POST", "/api/v1/canned-responses", {
        "shortcut": "refund", "title": "Refund issued", "scope": "team",
        "body": "Hi {{customer.first_name}}, the refund for order {{attributes.order_id}} is on its way. "
                "{{agent.first_name}}"})
    assert status == 201
    made = hub.inbound("phone:+14155550150", "Where is my refund?", name="Maria Lopez",
                       meta={"attributes": {"order_id": "4821"}})
    conv = made["conversation"]["id"]
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{conv}")
    alex.wait_for_selector("#reply-text")

    # Alex adds a personal one in the manager.
    alex.click("#canned-manage")
    alex.fill("#canned-shortcut", "thanks")
    alex.fill("#canned-title", "Thanks for waiting")
    alex.fill("#canned-body", "Thanks for waiting, {{customer.first_name}}! Tracking: {{attributes.tracking}}")
    alex.click("#modal-ok")
    alex.wait_for_selector(".toast >> text=/thanks added")

    # "/" and a few letters: the picker narrows; arrows and Enter choose.
    alex.click("#reply-text")
    alex.keyboard.type("/re")
    picker = alex.locator("#canned-picker")
    picker.locator('[data-shortcut="refund"]').wait_for()
    assert picker.locator(".canned-item").count() == 1
    alex.wait_for_timeout(200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    alex.screenshot(path=str(SHOTS / "canned.png"))
    alex.keyboard.press("Enter")
    alex.wait_for_function("() => document.querySelector('#reply-text').value.startsWith('Hi Maria')")
    assert alex.input_value("#reply-text") == "Hi Maria, the refund for order 4821 is on its way. Alex"
    assert picker.is_hidden()
    alex.keyboard.press("Control+Enter")
    alex.wait_for_selector(".tl-msg.out >> text=the refund for order 4821 is on its way")

    # A variable with no value is named before anything is sent.
    alex.click("#reply-text")
    alex.keyboard.type("/")
    picker.locator('[data-shortcut="thanks"]').wait_for()
    alex.keyboard.press("ArrowDown") if picker.locator(".canned-item.active").get_attribute(
        "data-shortcut") != "thanks" else None
    alex.keyboard.press("Enter")
    alex.wait_for_selector(".toast >> text=Fill in before sending: attributes.tracking")
    assert alex.input_value("#reply-text").startswith("Thanks for waiting, Maria! Tracking:")
    # Escape closes the picker without touching the text.
    alex.keyboard.type(" /zz")
    picker.locator(".canned-none").wait_for()
    alex.keyboard.press("Escape")
    assert picker.is_hidden() and alex.input_value("#reply-text").endswith("/zz")
    assert alex.errors == []
