"""Every console screen, and the hub's own pages, pass axe-core (WCAG 2.1 A and AA rules) in Chromium with no serious
or critical violation: contrast, names for every control, landmarks, ARIA used as specified.

axe-core is vendored in tests/e2e/vendor/axe-core (test-only; see its VENDORED.md). It is run through Playwright's
evaluate, which the page's Content-Security-Policy does not govern, so the policy under test stays as shipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SHOTS, Hub, run_hub, sign_in

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")


def violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each with where."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    found = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: "
                          "['violations']}).then((r) => r.violations)", TAGS)
    out = []
    for v in found:
        if v["impact"] not in BLOCKING:
            continue
        for node in v["nodes"][:5]:
            out.append(f"{v['impact']} {v['id']}: {v['help']} at {node['target']} ({node['failureSummary']!r})")
    return out


class Screens:
    """Collects every screen's findings, so one run shows all that is wrong, not the first screen's."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, page: Any, screen: str) -> None:
        page.wait_for_timeout(300)  # let transitions settle: axe reads computed colours
        self.found += [f"{screen}: {line}" for line in violations(page)]

    def assert_clean(self) -> None:
        assert not self.found, "\n".join(self.found)


def _seed(hub: Hub) -> int:
    made = hub.inbound("email:lee.morgan@example.com", "My invoice INV-2291 is charged twice.", name="Lee Morgan",
                       meta={"subject": "Charged twice"})
    conv = int(made["conversation"]["id"])
    hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "Sorry about that, Lee! Let me look."})
    hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "Refund approved by billing.", "note": True})
    for name, title, color in (("refund", "Refund", "#b91c1c"), ("vip", "VIP", "#fde68a")):
        hub.call("POST", "/api/v1/labels", {"name": name, "title": title, "color": color})
        hub.call("PUT", f"/api/v1/conversations/{conv}/labels/{name}")
    hub.inbound("phone:+14155550100", "pricing for a team of 12?", name="Rita Gomez")
    hub.inbound("phone:+14155550101", "where is my parcel", name="Omar Haddad")
    # The customer panel's Details, one field of each type, and a macro for the header's menu.
    for body in ({"key": "plan", "label": "Plan", "type": "list", "options": ["Free", "Pro"]},
                 {"key": "seats", "label": "Seats", "type": "number"}, {"key": "renewal", "label": "Renewal",
                                                                       "type": "date"},
                 {"key": "company", "label": "Company", "type": "text"}):
        hub.call("POST", "/api/v1/customer-attributes", body)
    hub.call("POST", "/api/v1/macros", {"name": "Close", "actions": [{"type": "resolve"}]})
    return conv


def test_the_sign_in_page_and_the_hubs_own_pages(browser: Any, tmp_path: Path) -> None:
    with run_hub(tmp_path, extra_env={"HUB_CHANNELS__WEBCHAT__ENABLED": "true"}) as hub:
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=hub.url)
        try:
            customer_side(ctx.new_page())
        finally:
            ctx.close()


def customer_side(page: Any) -> None:
    screens = Screens()
    page.goto("/console/")
    page.wait_for_selector("#signin-btn")
    screens.check(page, "sign-in")
    page.goto("/")
    screens.check(page, "front page")
    page.goto("/chat")
    page.wait_for_selector(".hc-panel[data-state=online]")
    screens.check(page, "web chat")
    screens.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("email", ["alex@example.com", "admin@example.com"])
def test_every_console_screen(hub: Hub, new_page: Any, email: str, scheme: str) -> None:
    conv = _seed(hub)
    screens = Screens()
    page = new_page()
    page.emulate_media(color_scheme=scheme)  # the system's choice, which the console follows
    sign_in(page, email)
    screens.check(page, "inbox")
    if email == "alex@example.com":
        hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "One more thing."})
    page.goto(f"/console/#/c/{conv}")
    page.wait_for_selector(".tl-msg.out >> text=Let me look")
    page.wait_for_selector("#customer-details #attr-plan")
    screens.check(page, "conversation")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{scheme}-{email.split('@')[0]}.png"))
    # The inbox's daily tools: the snooze and filter dialogs, and selecting for a bulk action.
    page.click("#snooze-btn")
    page.wait_for_selector(".snooze-choices")
    screens.check(page, "snooze dialog")
    page.keyboard.press("Escape")
    page.click("#filter-btn")
    page.wait_for_selector("#f-label")
    screens.check(page, "filter dialog")
    page.keyboard.press("Escape")
    page.click("#select-btn")
    page.check(f'[data-select="{conv}"]')
    screens.check(page, "bulk actions")
    page.click("#select-btn")
    page.click("#macro-btn")
    page.wait_for_selector('#macro-menu [data-macro="Close"]')
    screens.check(page, "conversation: macro menu")
    page.click('.tab[data-mode="note"]')
    page.keyboard.type("@")
    page.wait_for_selector("#mention-picker .canned-item")
    screens.check(page, "conversation: mention picker")
    page.goto("/console/#/mentions")
    page.wait_for_selector(".mentions-page")
    screens.check(page, "mentions")
    page.goto("/console/#/reports")
    page.wait_for_selector("#reports .kpi-card")
    screens.check(page, "reports")
    if email != "admin@example.com":
        phone = new_page(390, 844)
        sign_in(phone, email)
        screens.check(phone, "inbox on a phone")
        phone.goto(f"/console/#/c/{conv}")
        phone.wait_for_selector(".tl-msg.out >> text=Let me look")
        screens.check(phone, "conversation on a phone")
        screens.assert_clean()
        return
    page.goto("/console/#/wall")
    page.wait_for_selector(".wall .queue-grid")
    screens.check(page, "live wall")
    page.goto("/console/#/attention")
    page.wait_for_selector("#attention")
    screens.check(page, "needs attention")
    page.goto("/console/#/campaigns")
    page.wait_for_selector("#campaign-form")
    screens.check(page, "campaigns")
    page.select_option("#cmp-audience", "list")
    page.fill("#cmp-list", "phone:+14155550100\nphone:+14155550101\nemail:nobody@example.com")
    page.fill("#cmp-text", 'Hi {{first_name | fallback: "there"}}')
    page.click("#campaign-preview-btn")
    page.wait_for_selector("#campaign-preview")
    page.click("#campaign-preview summary")
    screens.check(page, "campaigns: preview")
    for section in ("agents", "tokens", "routing", "automation", "attributes", "macros", "labels"):
        page.goto(f"/console/#/admin/{section}")
        page.wait_for_selector(f'.admin-tab.active[data-admin="{section}"]')
        page.wait_for_selector("#admin-body .loading", state="detached")
        screens.check(page, f"admin {section}")
    screens.assert_clean()


def test_the_theme_follows_the_system_until_the_agent_chooses(hub: Hub, new_page: Any) -> None:
    page = new_page()
    page.emulate_media(color_scheme="dark")
    sign_in(page, "alex@example.com")
    background = "() => getComputedStyle(document.body).backgroundColor"
    theme = "() => document.documentElement.dataset.theme || 'system'"
    dark = page.evaluate(background)
    assert page.evaluate(theme) == "system" and dark == "rgb(15, 17, 22)"
    page.click("#theme-btn")  # system -> light
    assert page.evaluate(theme) == "light" and page.evaluate(background) == "rgb(245, 246, 248)"
    assert page.get_attribute("#theme-btn", "aria-label") == "Theme: light"
    page.reload()  # the choice is kept in this browser
    page.wait_for_selector("#live-status.s-live")
    assert page.evaluate(theme) == "light" and page.evaluate(background) == "rgb(245, 246, 248)"
    page.click("#theme-btn")  # light -> dark
    assert page.evaluate(theme) == "dark" and page.evaluate(background) == dark
    page.emulate_media(color_scheme="light")  # a choice wins over the system's
    assert page.evaluate(background) == dark
    page.click("#theme-btn")  # dark -> system, which is now light
    assert page.evaluate(theme) == "system" and page.evaluate(background) == "rgb(245, 246, 248)"
    assert page.errors == []
