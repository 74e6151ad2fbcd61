"""The console's "Needs attention" page in a real browser against a real hub process reading a real Dovecot mailbox:
a supervisor sees the badge, filters, reads the raw email, attaches one to a customer and dismisses another; an
agent never sees the page. Also what the timeline shows about an email, reply all, and a degraded channel on the admin
pages. Screenshot in $HUB_SCREENSHOTS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.channels.email.dovecot import running_dovecot
from tests.e2e.conftest import SHOTS, free_port, run_hub, sign_in

CORPUS = Path(__file__).parents[1] / "channels" / "email" / "emails"


def test_a_supervisor_places_what_the_hub_could_not(browser: Any, tmp_path: Path) -> None:
    with running_dovecot(["support"]) as dovecot:
        dovecot.deliver("support", (CORPUS / "no_sender.eml").read_bytes())
        dovecot.deliver("support", (CORPUS / "gmail_bounce.eml").read_bytes())
        pre = "HUB_CHANNELS__EMAIL__"
        env = {pre + "ENABLED": "true", pre + "ADDRESS": "support@hub.test", pre + "SMTP_PORT": str(free_port()),
               pre + "MAILBOXES__0__NAME": "support", pre + "MAILBOXES__0__HOST": dovecot.host,
               pre + "MAILBOXES__0__PORT": str(dovecot.port), pre + "MAILBOXES__0__SECURITY": "none",
               pre + "MAILBOXES__0__USERNAME": "support", pre + "MAILBOXES__0__PASSWORD": dovecot.password}
        with run_hub(tmp_path, extra_env=env) as hub:
            deadline = time.monotonic() + 60
            while hub.call("GET", "/api/v1/attention")[1]["count"] < 2:
                assert time.monotonic() < deadline, "the hub did not flag both emails"
                time.sleep(0.2)

            ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=hub.url)
            ctx.set_default_timeout(20_000)
            try:
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda err: errors.append(str(err)))
                sign_in(page, "dana@example.com")
                page.wait_for_selector("#attention-badge:not(.hidden) >> text=2")
                page.click("#nav-attention")
                page.wait_for_selector("#attention-table")
                assert page.locator("#attention-table tbody tr").count() == 2
                expect(page.locator("#attention-count")).to_have_text("2 waiting")
                page.select_option("#attention-reason", "no_sender")
                expect(page.locator("#attention-table tbody tr")).to_have_count(1)
                # The badge counts what the page lists, with its filters: never more than is shown.
                expect(page.locator("#attention-badge")).to_have_text("1")
                expect(page.locator("#attention-count")).to_have_text("1 waiting with these filters")
                row = page.locator("#attention-table tbody tr")
                assert "who am I" in row.inner_text()
                row.click()
                page.wait_for_selector("#attention-raw >> text=There is no From header in this email.")
                assert "no usable sender address" in page.inner_text("#attention-error")
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "attention.png"))

                # Olga is a customer already (she called): found by name, picked, the email lands on her timeline.
                olga = hub.inbound("phone:+14155550123", "I sent you an email without my address", name="Olga Petrova")
                page.locator("#attention-customer").press_sequentially("Olga")
                option = page.locator("#attention-customers option")
                expect(option).to_have_count(1)
                assert option.get_attribute("value") == str(olga["customer"]["id"])
                page.fill("#attention-customer", option.get_attribute("value") or "")
                page.fill("#attention-note", "she called about it")
                page.click("#attention-attach")
                page.wait_for_selector("#attention-status >> text=done")
                page.wait_for_selector("#attention-log >> text=attach by")
                page.wait_for_selector("#attention-empty")  # no other no_sender event
                page.wait_for_selector("#attention-badge.hidden", state="attached")

                page.select_option("#attention-reason", "")
                expect(page.locator("#attention-table tbody tr")).to_have_count(1)
                expect(page.locator("#attention-badge")).to_have_text("1")
                page.locator("#attention-table tbody tr").click()
                page.wait_for_selector("#attention-raw >> text=Delivery Status Notification")
                page.click("#attention-dismiss")  # no note yet: refused in the page
                page.wait_for_selector("#toasts >> text=Say why")
                page.fill("#attention-note", "an old address of ours")
                page.click("#attention-dismiss")
                page.wait_for_selector("#attention-empty")
                page.wait_for_selector("#attention-badge.hidden", state="attached")
                assert errors == []
                status, timeline = hub.call("GET", f"/api/v1/customers/{olga['customer']['id']}/timeline")
                assert status == 200 and any("There is no From header" in m["text"] for m in timeline["items"])

                agent = ctx.browser.new_context(viewport={"width": 1440, "height": 900}, base_url=hub.url)
                try:
                    other = agent.new_page()
                    sign_in(other, "alex@example.com")
                    assert other.locator("#nav-attention").count() == 0
                    other.goto("/console/#/attention")
                    other.wait_for_selector("#live-status.s-live")
                    assert other.locator("#attention").count() == 0
                finally:
                    agent.close()
            finally:
                ctx.close()


def test_an_email_shows_its_recipients_and_marks_and_offers_reply_all(browser: Any, tmp_path: Path) -> None:
    """What the timeline shows about an email (To/Cc, automatic, reused Message-ID) and the reply-all choice."""
    from email.message import EmailMessage

    def mail(mid: str, body: str, **headers: str) -> bytes:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "Ann <ann@corp.example>", "support@hub.test", \
            "Renewal", f"<{mid}>"
        for k, v in headers.items():
            msg[k.replace("_", "-")] = v
        msg.set_content(body)
        return msg.as_bytes()

    with running_dovecot(["support"]) as dovecot:
        dovecot.deliver("support", mail("fixed@corp.example", "Can you quote the renewal?", Cc="bob@corp.example"))
        dovecot.deliver("support", mail("fixed@corp.example", "And the price per seat?", Cc="bob@corp.example"))
        dovecot.deliver("support", mail("ooo@corp.example", "I am away until Monday.", Auto_Submitted="auto-replied"))
        pre = "HUB_CHANNELS__EMAIL__"
        env = {pre + "ENABLED": "true", pre + "ADDRESS": "support@hub.test", pre + "SMTP_PORT": str(free_port()),
               pre + "MAILBOXES__0__NAME": "support", pre + "MAILBOXES__0__HOST": dovecot.host,
               pre + "MAILBOXES__0__PORT": str(dovecot.port), pre + "MAILBOXES__0__SECURITY": "none",
               pre + "MAILBOXES__0__USERNAME": "support", pre + "MAILBOXES__0__PASSWORD": dovecot.password}
        with run_hub(tmp_path, extra_env=env) as hub:
            deadline = time.monotonic() + 60
            while True:
                found = hub.call("GET", "/api/v1/customers?identity=email:ann@corp.example")[1]["items"]
                timeline = hub.call("GET", f"/api/v1/customers/{found[0]['id']}/timeline")[1]["items"] if found else []
                if len(timeline) == 3:
                    break
                assert time.monotonic() < deadline, "the hub did not store the three emails"
                time.sleep(0.2)
            conv = timeline[0]["conversation_id"]
            ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=hub.url)
            ctx.set_default_timeout(20_000)
            try:
                page = ctx.new_page()
                sign_in(page, "admin@example.com")
                page.goto(f"/console/#/c/{conv}")
                page.wait_for_selector(".email-cc >> text=Cc: bob@corp.example")
                page.wait_for_selector(".mark-warn >> text=reused Message-ID")
                page.wait_for_selector(".tl-msg.automatic >> text=I am away until Monday.")
                page.check("#reply-all")
                page.fill("#reply-text", "Both of you: the quote is attached.")
                page.click("#send-btn")
                page.wait_for_selector(".tl-msg.out >> text=Both of you")
                # No SMTP server listens on the configured port: the admin pages say so.
                page.click("#nav-admin")
                page.wait_for_selector(f"#channel-problems >> text=email: SMTP 127.0.0.1:{env[pre + 'SMTP_PORT']}")
            finally:
                ctx.close()
            messages = hub.call("GET", f"/api/v1/conversations/{conv}")[1]["messages"]
            sent = [m for m in messages if m["direction"] == "out"]
            assert sent[-1]["meta"]["reply_all"] is True
