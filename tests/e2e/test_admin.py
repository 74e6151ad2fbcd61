"""The console's admin screens, message search and reply attachments in a real browser (Debian's Chromium) against a
real hub process: an admin adds an agent who then signs in, creates and revokes an API token, edits routing; an
agent never reaches those screens; search opens a message; a reply carries files.
Screenshots in $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

import base64
import re
import struct
import urllib.request
import zlib
from typing import Any

from tests.e2e.conftest import PASSWORD, SHOTS, Hub, sign_in


def _png(width: int, height: int) -> bytes:
    """A real PNG (a soft gradient with a darker band, like a product photo's backdrop) for the browser to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes((90 + x * 120 // width, 110 + y * 100 // height,
                                   200 - (60 if height // 3 < y < height // 2 else 0))) for x in range(width))
        for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png(240, 150)


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def test_admin_adds_an_agent_who_signs_in(hub: Hub, new_page: Any) -> None:
    page = new_page()
    sign_in(page, "admin@example.com")
    page.click("#nav-admin")
    page.wait_for_selector("#agents-admin")
    assert page.locator("#agents-admin tbody tr").count() == 4
    page.click("#add-agent")
    page.fill("#agent-name", "Nia Okafor")
    page.fill("#agent-email", "alex@example.com")  # taken
    page.fill("#agent-password", "short")
    page.locator("#agent-queues label", has_text="Support").click()
    page.fill("#agent-phone", "+1 415 555 0199")
    page.click("#modal-ok")
    # The API's reasons show inline, next to the field they concern.
    page.wait_for_selector('[data-error-for="password"] >> text=at least 8 characters')
    page.fill("#agent-password", PASSWORD)
    page.click("#modal-ok")
    page.wait_for_selector("#agent-error >> text=already exists")
    page.fill("#agent-email", "nia@example.com")
    page.wait_for_timeout(200)
    _shot(page, "admin-agent-form.png")
    page.click("#modal-ok")
    row = page.locator("#agents-admin tr", has_text="nia@example.com")
    row.wait_for()
    assert "Support" in row.inner_text() and "+14155550199" in row.inner_text()
    _shot(page, "admin-agents.png")

    nia = new_page()
    sign_in(nia, "nia@example.com")
    assert nia.locator(".me-name").inner_text() == "Nia Okafor"
    nia.wait_for_selector('#inbox h2[data-queue="support"]')
    assert nia.locator("#nav-admin").count() == 0

    # Disabling her ends her session at once: her console goes back to the sign-in page.
    row.locator("[data-edit]").click()
    page.click("#agent-toggle")
    page.wait_for_selector(".toast >> text=disabled and signed out")
    nia.wait_for_selector("#signin-btn", timeout=10_000)
    assert page.errors == [] and nia.errors == []


def test_admin_creates_and_revokes_a_token(hub: Hub, new_page: Any) -> None:
    page = new_page()
    sign_in(page, "admin@example.com")
    page.goto("/console/#/admin/tokens")
    page.wait_for_selector("#create-token")
    page.click("#create-token")
    page.fill("#token-label", "CRM sync")
    page.click("#modal-ok")
    secret = page.locator("#token-secret").input_value()
    assert secret.startswith("hub_")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-token")
    page.wait_for_selector("#copy-token >> text=Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    _shot(page, "admin-token-secret.png")
    page.click("#modal-ok")
    status, _ = hub.call("GET", "/api/v1/conversations", token=secret)
    assert status == 200
    row = page.locator("#tokens-admin tr", has_text="CRM sync")
    row.wait_for()
    assert secret not in page.content(), "the secret is shown once, never listed"
    _shot(page, "admin-tokens.png")
    row.locator("[data-revoke]").click()
    page.click("#modal-ok")
    page.wait_for_selector("#tokens-admin tr:has-text('CRM sync') >> text=Revoked")
    status, _ = hub.call("GET", "/api/v1/conversations", token=secret)
    assert status == 401, "a revoked token stops working at once"
    assert page.errors == []


def test_admin_edits_queues_and_rules(hub: Hub, new_page: Any) -> None:
    status, _ = hub.call("GET", "/api/v1/routing")
    page = new_page()
    sign_in(page, "admin@example.com")
    page.goto("/console/#/admin/routing")
    if status == 404:
        page.wait_for_selector(".notice >> text=routing administration API")
        return
    page.wait_for_selector('#queues-admin [data-queue="support"]')
    page.click("#add-queue")
    assert page.is_hidden("#unsaved-flag"), "nothing typed yet"
    page.fill("#queue-name", "billing")
    page.wait_for_selector("#unsaved-flag")
    page.fill("#queue-title", "Billing")
    # Skills are rows (a name, a level), checked in words before anything is sent.
    page.click("#queue-skills-add")
    page.locator("#queue-skills .skill-name").last.fill("spanish")
    page.locator("#queue-skills .skill-level").last.fill("150")
    page.click("#modal-ok")
    page.wait_for_selector("#queue-error >> text=spanish: the minimum level is a whole number from 0 to 100.")
    _shot(page, "admin-queue-form.png")
    page.locator("#queue-skills .skill-level").last.fill("40")
    page.fill("#queue-timeout", "45")
    page.check("#queue-csat")  # a satisfaction survey 10 minutes after each resolve
    page.fill("#queue-csat-delay", "600")
    page.click("#modal-ok")
    page.wait_for_selector('#queues-admin [data-queue="billing"] >> text=45s')
    page.wait_for_selector('#queues-admin [data-queue="billing"] >> text=after 600s')
    _, saved = hub.call("GET", "/api/v1/routing")
    assert (saved["queues"]["billing"]["csat"], saved["queues"]["billing"]["csat_delay"]) == (True, 600)
    page.click("#add-rule")
    assert page.is_visible("#rules-unsaved"), "an added rule is an unsaved change until saved"
    rule = page.locator("#rules-admin .rule").last
    rule.locator(".rule-name").fill("invoices")
    rule.locator(".rule-keywords").fill("invoice, refund")
    rule.locator(".rule-channel summary").click()
    rule.locator(".rule-channel input[data-channel=sms]").check()
    rule.locator(".rule-channel input[data-channel=email]").check()
    assert rule.locator(".rule-channel summary").inner_text() == "SMS, Email"
    rule.locator(".rule-channel summary").click()
    rule.locator(".rule-queue").select_option("billing")
    page.click("#save-rules")
    page.wait_for_selector(".toast >> text=Rules saved")
    page.wait_for_selector("#rules-unsaved", state="hidden")
    _, routing = hub.call("GET", "/api/v1/routing")
    assert routing["queues"]["billing"]["offer_timeout"] == 45
    assert routing["queues"]["billing"]["skills"] == {"spanish": 40}
    saved = next(r for r in routing["rules"] if r.get("name") == "invoices")
    assert saved["queue"] == "billing" and sorted(saved["channel"]) == ["email", "sms"]
    routed = hub.inbound("phone:+14155550111", "Where is my invoice?")
    assert routed["conversation"]["queue"] != "billing", "the rule is for SMS and email, not the API channel"
    # A rule the engine refuses says which rule and why, and nothing changes.
    page.click("#add-rule")
    page.locator("#rules-admin .rule").last.locator(".rule-keywords").fill("!!!")
    page.click("#save-rules")
    page.wait_for_selector("#rules-error >> text=keyword")
    refusal = page.inner_text("#rules-error")
    assert refusal == "Rule 3 (rule-3), keywords: every keyword needs at least one letter or digit"
    page.locator("#skills-admin tbody tr").first.scroll_into_view_if_needed()
    page.evaluate("document.querySelector('.admin').scrollTop = 0; document.getElementById('toasts')?.remove()")
    _shot(page, "admin-routing.png")
    assert page.errors == []


def test_agent_cannot_reach_admin_screens(hub: Hub, new_page: Any) -> None:
    page = new_page()
    sign_in(page, "alex@example.com")
    assert page.locator("#nav-admin").count() == 0
    page.goto("/console/#/admin/agents")
    page.wait_for_selector(".empty-state >> text=Welcome")
    assert page.locator(".admin, #agents-admin").count() == 0
    csrf = page.evaluate("fetch('/console/session').then(r => r.json()).then(j => j.csrf_token)")
    for method, path, body in (("GET", "/api/v1/tokens", None), ("POST", "/api/v1/tokens", {"role": "admin"}),
                               ("POST", "/api/v1/agents", {"name": "x", "email": "x@x.com", "password": PASSWORD}),
                               ("PATCH", f"/api/v1/agents/{hub.agent_ids['alex@example.com']}", {"role": "admin"})):
        status = page.evaluate(
            """([method, path, body, csrf]) => fetch(path, {method, headers: {'Content-Type': 'application/json',
                'X-CSRF-Token': csrf}, body: body ? JSON.stringify(body) : undefined}).then(r => r.status)""",
            [method, path, body, csrf])
        assert status == 403, (method, path, status)
    # The supervisor sees the wall, not the admin screens.
    dana = new_page()
    sign_in(dana, "dana@example.com")
    assert dana.locator("#nav-wall").count() == 1 and dana.locator("#nav-admin").count() == 0


def test_message_search_opens_the_message(hub: Hub, new_page: Any) -> None:
    first = hub.inbound("phone:+14155550160", "My blender's warranty card says 3 years, is that right?",
                        name="Grace Hopper")
    for i in range(105):  # the found message is older than the first page of the timeline
        hub.inbound("phone:+14155550160", f"follow-up number {i}")
    hub.inbound("email:other@example.com", "Unrelated question about shipping", name="Ola Nordmann")
    page = new_page()
    sign_in(page, "alex@example.com")
    page.fill("#search", "warrant")
    result = page.locator(f'#search-results [data-message="{first["message"]["id"]}"]')
    result.wait_for()
    assert result.locator("mark").first.inner_text().lower() == "warrant"
    page.fill("#search", "grace warr")
    page.wait_for_selector("#search-results .results-head >> text=Messages")
    page.fill("#search", "warranty")
    result.wait_for()
    _shot(page, "search.png")
    result.click()
    page.wait_for_url(re.compile(rf"#/c/{first['conversation']['id']}/m/{first['message']['id']}$"))
    found = page.locator(f'.tl-msg.found[data-mid="{first["message"]["id"]}"]')
    found.wait_for()
    assert found.is_visible() and "warranty card" in found.inner_text()
    # Another queue's messages are not found.
    hub.call("POST", f"/api/v1/conversations/{first['conversation']['id']}/transfer", {"queue": "sales"})
    page.fill("#search", "")
    page.fill("#search", "warranty")
    page.wait_for_selector("#search-results .no-results")
    assert page.errors == []


def test_reply_with_attachments(hub: Hub, new_page: Any, tmp_path: Any) -> None:
    made = hub.inbound("email:lin@example.com", "Can you send the invoice and a photo of the part?", name="Lin Wu",
                       meta={"subject": "Invoice and photo"})
    conv_id = made["conversation"]["id"]
    page = new_page()
    sign_in(page, "alex@example.com")
    page.goto(f"/console/#/c/{conv_id}")
    page.wait_for_selector("#reply-text")
    assert page.locator("#call-btn").count() == 0, "no voice channel on this hub: no Call button"
    assert "up to" in page.locator(".file-note").inner_text()
    pdf = tmp_path / "invoice-4821.pdf"
    pdf.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 40)
    page.set_input_files("#reply-files", str(pdf))  # the paperclip button's file picker
    # Drag and drop, and paste, of an image.
    page.evaluate(
        """([b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const drop = new DataTransfer();
            drop.items.add(new File([bytes], 'part-photo.png', {type: 'image/png'}));
            document.querySelector('.reply').dispatchEvent(new DragEvent('drop', {dataTransfer: drop, bubbles: true,
                                                                                   cancelable: true}));
            const paste = new DataTransfer();
            paste.items.add(new File([bytes], 'image.png', {type: 'image/png'}));
            document.querySelector('#reply-text').dispatchEvent(new ClipboardEvent('paste', {clipboardData: paste,
                                                                                           bubbles: true,
                                                                                           cancelable: true}));
        }""", [base64.b64encode(PNG).decode()])
    chips = page.locator("#file-chips .file-chip")
    assert chips.count() == 3
    assert "invoice-4821.pdf" in chips.nth(0).inner_text() and "10 KB" in chips.nth(0).inner_text()
    assert re.match(r"pasted-.*\.png", chips.nth(2).get_attribute("data-file") or "")
    chips.nth(2).locator(".chip-x").click()
    assert chips.count() == 2
    page.fill("#reply-text", "Here you are: the invoice and a photo of the part.")
    _shot(page, "reply-attachments.png")
    page.click("#send-btn")
    out = page.locator(".tl-msg.out", has_text="the invoice and a photo")
    out.wait_for()
    page.wait_for_selector("#file-chips .file-chip", state="detached")
    thumb = out.locator(".att-image img")
    thumb.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth === 240", arg=thumb.element_handle())
    assert out.locator(".att-file >> text=invoice-4821.pdf").count() == 1
    _shot(page, "attachments-sent.png")
    _, detail = hub.call("GET", f"/api/v1/conversations/{conv_id}")
    reply = next(m for m in detail["messages"] if m["direction"] == "out")
    files = {a["filename"]: a for a in reply["attachments"]}
    assert set(files) == {"invoice-4821.pdf", "part-photo.png"}
    req = urllib.request.Request(hub.url + files["invoice-4821.pdf"]["url"],
                                 headers={"Authorization": f"Bearer {hub.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == pdf.read_bytes(), "the file arrives on the outgoing message byte for byte"
    assert page.errors == []
