"""The console's daily tools in a real browser: an anonymous web-chat visitor shows as "Visitor NNNN" and is
renamed and given typed details in the panel (a bad value is refused with the hub's reason); an @mention in a note
reaches the teammate at once and stays in their Mentions list after a reload; an admin builds a macro and an agent
applies it in one click; a canned response is edited in the manager. Screenshots: profile.png, mentions.png,
macros.png."""

from __future__ import annotations

from typing import Any

from hub.customer_profile import visitor_name
from tests.e2e.conftest import SHOTS, Hub, sign_in


def test_visitor_name_profile_and_details(hub: Hub, new_page: Any) -> None:
    for body in ({"key": "plan", "label": "Plan", "type": "list", "options": ["Free", "Pro"]},
                 {"key": "seats", "label": "Seats", "type": "number", "position": 1},
                 {"key": "renewal", "label": "Renewal", "type": "date", "position": 2}):
        assert hub.call("POST", "/api/v1/customer-attributes", body)[0] == 201
    made = hub.inbound("webchat:SVb7RIb9bT6RHUVykMFFFQ", "Hi, do you ship to Canada?")
    visitor = visitor_name("SVb7RIb9bT6RHUVykMFFFQ")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.locator(f".conv-item >> text={visitor}").wait_for()
    assert "SVb7" not in alex.locator("#inbox").inner_text()
    alex.goto(f"/console/#/c/{made['conversation']['id']}")
    alex.locator(f".conv-header h1 >> text={visitor}").wait_for()
    assert "SVb7" not in alex.locator("#timeline").inner_text()

    # Rename: the header, panel and inbox follow; customer text is shown as text, never markup.
    alex.click("#edit-name")
    alex.fill("#customer-name-input", "Maria <b>Lopez</b>")
    alex.keyboard.press("Enter")
    alex.locator("#customer-name >> text=Maria <b>Lopez</b>").wait_for()
    alex.locator(".conv-header h1 >> text=Maria <b>Lopez</b>").wait_for()
    assert alex.locator("#customer-name b").count() == 0

    # Details: typed fields; the hub refuses a value that does not fit its type and says why.
    alex.select_option("#attr-plan", "Pro")
    alex.fill("#attr-seats", "a dozen")
    alex.click("#save-details")
    alex.locator("#details-error >> text=Seats is a number").wait_for()
    alex.fill("#attr-seats", "12")
    alex.fill("#attr-renewal", "2027-03-01")
    alex.click("#save-details")
    alex.wait_for_selector(".toast >> text=Details saved")
    status, customer = hub.call("GET", f"/api/v1/customers/{made['customer']['id']}")
    assert status == 200
    assert customer["attributes"] == {"plan": "Pro", "seats": "12", "renewal": "2027-03-01"}
    assert customer["name"] == "Maria <b>Lopez</b>"
    alex.reload()
    alex.wait_for_function("() => (document.querySelector('#attr-seats') || {}).value === '12'")
    assert alex.input_value("#attr-plan") == "Pro"
    SHOTS.mkdir(parents=True, exist_ok=True)
    alex.screenshot(path=str(SHOTS / "profile.png"))
    assert alex.errors == []


def test_mention_in_a_note_reaches_the_teammate(hub: Hub, new_page: Any) -> None:
    made = hub.inbound("phone:+14155550160", "My parcel never arrived", name="Joe Park")
    conv = made["conversation"]["id"]
    dana = new_page()
    sign_in(dana, "dana@example.com")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{conv}")
    alex.wait_for_selector("#reply-text")
    alex.click('.tab[data-mode="note"]')
    alex.keyboard.type("Carrier says delivered, @Da")
    picker = alex.locator("#mention-picker")
    picker.locator(f'[data-agent="{hub.agent_ids["dana@example.com"]}"]').wait_for()
    alex.wait_for_timeout(150)
    alex.screenshot(path=str(SHOTS / "mentions.png"))
    alex.keyboard.press("Enter")
    assert alex.input_value("#reply-text") == "Carrier says delivered, @Dana Kim "
    alex.keyboard.type("can you open a claim?")
    alex.keyboard.press("Control+Enter")
    alex.wait_for_selector(".tl-note >> text=can you open a claim?")
    assert alex.locator(".tl-note .mention-tag").all_inner_texts() == ["@Dana Kim"]

    # Dana hears at once, anywhere in the console, and the Mentions list keeps it after a reload.
    dana.wait_for_selector(".toast >> text=Alex Rivera mentioned you")
    dana.locator("#mentions-badge >> text=1").wait_for()
    dana.reload()
    dana.wait_for_selector("#live-status.s-live")
    dana.locator("#mentions-badge >> text=1").wait_for()
    dana.click("#nav-mentions")
    item = dana.locator("#mentions .mention.unread")
    item.locator("text=can you open a claim?").wait_for()
    assert "Joe Park" in item.inner_text()
    item.click()
    dana.wait_for_url(f"**/#/c/{conv}/m/*")
    dana.wait_for_selector(".tl-note.found >> text=can you open a claim?")
    dana.wait_for_function("() => document.querySelector('#mentions-badge').classList.contains('hidden')")
    # A mention in the conversation Dana is reading is read at once: the toast, and no count left behind.
    alex.click('.tab[data-mode="note"]')
    alex.keyboard.type("@Dana Kim thanks!")
    alex.click("#send-btn")
    dana.wait_for_selector(".toast >> text=mentioned you: @Dana Kim thanks!")
    dana.wait_for_function("() => document.querySelector('#mentions-badge').classList.contains('hidden')")
    assert alex.errors == [] and dana.errors == []


def test_admin_builds_a_macro_and_an_agent_applies_it(hub: Hub, new_page: Any) -> None:
    status, canned = hub.call("POST", "/api/v1/canned-responses", {
        "shortcut": "shipped", "title": "Shipped", "scope": "team",
        "body": "Hi {{customer.first_name}}, it shipped today. {{agent.first_name}}"})
    assert status == 201
    ada = new_page()
    sign_in(ada, "admin@example.com")
    ada.goto("/console/#/admin/macros")
    ada.fill("#macro-name", "Shipped and close")
    steps = ada.locator("#macro-steps li")
    steps.nth(0).locator(".macro-canned").select_option(str(canned["id"]))
    steps.nth(1).locator(".macro-type").select_option("label")
    steps.nth(1).locator(".macro-label").fill("shipping")
    ada.click("#macro-add-step")
    steps.nth(2).locator(".macro-type").select_option("resolve")
    ada.click("#macro-save")
    ada.locator('#macro-list [data-macro="Shipped and close"]').wait_for()
    status, listed = hub.call("GET", "/api/v1/macros")
    assert listed["items"][0]["actions"] == [{"type": "reply", "canned_response_id": canned["id"]},
                                             {"type": "label", "label": "shipping"}, {"type": "resolve"}]

    made = hub.inbound("phone:+14155550170", "Has my order shipped?", name="Lee Wong")
    conv = made["conversation"]["id"]
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{conv}")
    alex.click("#macro-btn")
    alex.locator('#macro-menu [data-macro="Shipped and close"]').wait_for()
    alex.screenshot(path=str(SHOTS / "macros.png"))
    alex.click('#macro-menu [data-macro="Shipped and close"]')
    alex.wait_for_selector(".toast >> text=Shipped and close: done")
    alex.wait_for_selector(".tl-msg.out >> text=Hi Lee, it shipped today. Alex")
    alex.locator(".conv-header .pill.status-resolved").wait_for()
    _, shown = hub.call("GET", f"/api/v1/conversations/{conv}")
    assert shown["status"] == "resolved" and shown["labels"] == ["shipping"]
    assert alex.errors == [] and ada.errors == []


def test_edit_a_canned_response_in_the_manager(hub: Hub, new_page: Any) -> None:
    made = hub.inbound("phone:+14155550180", "hello")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{made['conversation']['id']}")
    alex.click("#canned-manage")
    alex.fill("#canned-shortcut", "hours")
    alex.fill("#canned-title", "Hours")
    alex.fill("#canned-body", "We are open 9 to 5.")
    alex.click("#modal-ok")
    alex.wait_for_selector(".toast >> text=/hours added")
    alex.click("#canned-manage")
    alex.click('[aria-label="Edit /hours"]')
    assert alex.input_value("#canned-body") == "We are open 9 to 5."
    alex.fill("#canned-body", "We are open 9 to 6, Monday to Saturday.")
    alex.click("#modal-ok")
    alex.wait_for_selector(".toast >> text=/hours saved")
    alex.click("#canned-manage")
    alex.locator('.canned-manage [data-shortcut="hours"] >> text=9 to 6, Monday to Saturday').wait_for()
    assert alex.errors == []
