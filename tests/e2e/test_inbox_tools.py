"""The inbox's daily tools in a real browser: labels (defined in Admin, put on conversations and customers, shown in
the inbox, filtered by), views with counts (built-in and saved), snooze (leaves the inbox, comes back as an offer
when the customer writes) and bulk actions (select several, label, resolve). Screenshots: labels.png, views.png,
snooze.png, bulk.png."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import SHOTS, Hub, sign_in


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(250)
    page.screenshot(path=str(SHOTS / name))


def option_text(page: Any, value: str) -> str:
    return str(page.locator(f'#view-select option[value="{value}"]').inner_text())


def test_labels_defined_by_an_admin_put_on_by_an_agent_and_filtered_by(hub: Hub, new_page: Any) -> None:
    admin = new_page()
    sign_in(admin, "admin@example.com")
    admin.goto("/console/#/admin/labels")
    admin.click("#label-new")
    admin.fill("#label-title", "Refund")
    assert admin.input_value("#label-name") == "refund"
    admin.locator("#label-color").evaluate("(el) => { el.value = '#b91c1c'; }")
    admin.click("#modal-ok")
    admin.wait_for_selector('#labels-table [data-label-row="refund"]')
    assert hub.call("POST", "/api/v1/labels", {"name": "vip", "title": "VIP", "color": "#fde68a"})[0] == 201

    first = hub.inbound("phone:+14155550160", "I want my money back", name="Maria Lopez")["conversation"]["id"]
    hub.inbound("phone:+14155550161", "Just saying hi", name="Tom Reed")
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.goto(f"/console/#/c/{first}")
    alex.wait_for_selector("#conv-labels .label-add")
    alex.select_option("#conv-labels .label-add", "refund")
    alex.wait_for_selector('#conv-labels [data-label="refund"]')
    # The customer's label, in the panel: every conversation of Maria's matches it.
    alex.select_option("#customer-labels .label-add", "vip")
    alex.wait_for_selector('#customer-labels [data-label="vip"]')
    row = alex.locator(f'.conv-item[data-conv="{first}"]')
    row.locator('[data-label="refund"]').wait_for()
    row.locator('[data-label="vip"]').wait_for()
    chip = row.locator('[data-label="refund"]')
    assert chip.evaluate("(el) => getComputedStyle(el).color") == "rgb(255, 255, 255)"  # readable on dark red
    shot(alex, "labels.png")

    # Filter the inbox by label: only Maria's conversation.
    alex.click("#filter-btn")
    alex.select_option("#f-label", "refund")
    alex.click("#modal-ok")
    alex.wait_for_function("() => document.querySelectorAll('#inbox .conv-item').length === 1")
    assert alex.locator("#inbox .conv-item").get_attribute("data-conv") == str(first)
    # Removing the label (its x) takes it off here and in the list.
    alex.click('#conv-labels [data-label="refund"] .label-x')
    alex.wait_for_function("() => document.querySelectorAll('#inbox .conv-item').length === 0")
    assert alex.errors == [] and admin.errors == []


def test_views_with_counts_and_a_saved_view(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('[data-presence="available"]')
    mine = hub.inbound("phone:+14155550170", "Help with my order", name="Ana Ruiz")["conversation"]["id"]
    alex.wait_for_selector(f'[data-offer="{mine}"]')
    alex.keyboard.press("a")
    alex.wait_for_selector(f'#inbox [data-section="mine"] [data-conv="{mine}"]')
    alex.click('[data-presence="away"]')
    waiting = hub.inbound("phone:+14155550171", "Is anyone there?", name="Ben Ode")["conversation"]["id"]
    hub.inbound("phone:+14155550172", "What is your pricing?", name="Cy Lam")  # sales: not Alex's queue

    alex.wait_for_function("() => /Mine \\(1\\).*Unassigned \\(1\\)/s.test("
                           "document.querySelector('#view-select').textContent)")
    assert option_text(alex, "queue:support") == "Support (2)"
    assert option_text(alex, "snoozed") == "Snoozed (0)"
    assert option_text(alex, "mentions") == "Mentions (0)"
    assert alex.locator('#view-select option[value="queue:sales"]').count() == 0
    alex.select_option("#view-select", "unassigned")
    alex.wait_for_selector('#inbox h2[data-view="unassigned"]')
    alex.wait_for_function(f"() => [...document.querySelectorAll('#inbox .conv-item')].map(a => a.dataset.conv)"
                           f".join() === '{waiting}'")

    # A saved view: Support, waiting on a reply for a minute or more (made old here), with its count.
    hub.call("POST", "/api/v1/views", {"name": "never used", "filters": {"channel": "email"}, "shared": True})
    alex.click("#filter-btn")
    alex.select_option("#f-queue", "support")
    alex.fill("#f-waiting", "1")
    alex.fill("#f-name", "Support waiting")
    alex.click("#modal-ok")
    alex.wait_for_selector(".toast >> text=View “Support waiting” saved.")
    alex.wait_for_selector('#inbox h2:has-text("Support waiting")')
    assert alex.locator("#inbox .conv-item").count() == 0  # nobody waited a minute yet
    shot(alex, "views.png")
    assert alex.locator('#view-select optgroup[label="Saved views"] option').count() == 2
    # Deleting it (from the filter dialog) goes back to All open.
    alex.click("#filter-btn")
    alex.click("#view-delete")
    alex.wait_for_function("() => document.querySelector('#view-select').value === 'all'")
    assert alex.errors == []


def test_snooze_leaves_the_inbox_and_the_customer_brings_it_back_as_an_offer(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click('[data-presence="available"]')
    conv = hub.inbound("phone:+14155550180", "Can you check my delivery?", name="Lee Park")["conversation"]["id"]
    alex.wait_for_selector(f'[data-offer="{conv}"]')
    alex.keyboard.press("a")
    alex.wait_for_selector("#snooze-btn")
    alex.keyboard.press("z")
    alex.wait_for_selector(".snooze-choices")
    shot(alex, "snooze.png")
    alex.click("#modal-ok")  # "Until the customer replies" is the first choice
    alex.wait_for_selector("#unsnooze-btn")
    assert "Snoozed until the customer replies" in alex.inner_text("#snooze-note")
    alex.wait_for_selector(f'#inbox [data-conv="{conv}"]', state="detached")
    alex.wait_for_function("() => /Snoozed \\(1\\)/.test(document.querySelector('#view-select').textContent)")
    alex.select_option("#view-select", "snoozed")
    row = alex.locator(f'#inbox [data-conv="{conv}"]')
    row.wait_for()
    assert "Snoozed until the customer replies" in row.inner_text()

    # The customer writes: it wakes, and comes back to Alex as an offer, with a notice.
    hub.inbound("phone:+14155550180", "Any news?")
    alex.wait_for_selector(".toast >> text=The customer wrote")
    alex.wait_for_selector(f'[data-offer="{conv}"]')
    alex.wait_for_selector(f'#inbox [data-conv="{conv}"]', state="detached")  # no longer snoozed
    alex.select_option("#view-select", "all")
    alex.keyboard.press("a")
    alex.wait_for_selector(f'#inbox [data-section="mine"] [data-conv="{conv}"]')
    alex.wait_for_selector(".tl-event >> text=Snooze ended: the customer wrote")
    assert alex.errors == []


def test_bulk_label_and_resolve_several(hub: Hub, new_page: Any) -> None:
    assert hub.call("POST", "/api/v1/labels", {"name": "spam", "title": "Spam", "color": "#334155"})[0] == 201
    convs = [hub.inbound(f"phone:+1415555019{i}", f"Win a prize {i}!", name=f"Bot {i}")["conversation"]["id"]
             for i in range(3)]
    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.select_option("#view-select", "queue:support")
    alex.wait_for_function("() => document.querySelectorAll('#inbox .conv-item').length === 3")
    alex.click("#select-btn")
    for c in convs[:2]:
        alex.check(f'[data-select="{c}"]')
    assert alex.inner_text("#bulk-count") == "2 selected"
    alex.select_option("#bulk-label", "label:spam")
    alex.wait_for_selector(".toast >> text=Labeled 2 conversations.")
    for c in convs[:2]:
        alex.locator(f'.conv-item[data-conv="{c}"] [data-label="spam"]').wait_for()
    assert alex.locator(f'.conv-item[data-conv="{convs[2]}"] [data-label="spam"]').count() == 0
    shot(alex, "bulk.png")
    alex.click("#bulk-resolve")
    alex.wait_for_selector(".toast >> text=Resolved 2 conversations.")
    alex.wait_for_function("() => document.querySelectorAll('#inbox .conv-item').length === 1")
    assert hub.call("GET", f"/api/v1/conversations/{convs[0]}")[1]["status"] == "resolved"
    assert hub.call("GET", f"/api/v1/conversations/{convs[2]}")[1]["status"] == "open"
    assert alex.errors == []
