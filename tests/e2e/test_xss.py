"""A payload in every string an admin, supervisor, agent or customer controls, and every HTML page the hub serves
opened in Chromium as each role: nothing may run and no markup may appear (hub.pages, the console's DOM helper and
the widget all show text as text). The seen attack: a supervisor's queue name ran in an admin's browser on `/`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Hub, run_hub, sign_in

# Runs if it is ever parsed as markup; marks what it injected (data-xss) even where a CSP stops it from running.
PAYLOAD = ('"><img src=x data-xss onerror="window.__xss=1"><script>window.__xss=2</script>'
           '<svg data-xss onload="window.__xss=3">')
SHOWN = "<img src=x data-xss"  # what the text reads like on the page

INJECTED = """() => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.hasAttribute("data-xss")) found.push(el.outerHTML.slice(0, 80));
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return {ran: window.__xss || null, found};
}"""

TEXT = """() => {
  const parts = [];
  const walk = (root) => {
    parts.push(root.textContent || "");
    for (const el of root.querySelectorAll("*")) if (el.shadowRoot) walk(el.shadowRoot);
  };
  walk(document.body);
  return parts.join(" ");
}"""


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Hub]:
    """A hub whose config names things with the payload (as stored before names had to be slugs)."""
    env = {
        "HUB_ROUTING__QUEUES": json.dumps({
            "support": {"title": PAYLOAD, "offer_timeout": 300}, "sales": {"title": "Sales", "offer_timeout": 300},
            "<img src=x data-xss onerror=window.__xss=4>": {}}),
        "HUB_ROUTING__RULES": json.dumps([{"name": PAYLOAD, "queue": "sales", "keywords": ["pricing"]}]),
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        "HUB_CHANNELS__WEBCHAT__TITLE": PAYLOAD,
        "HUB_CHANNELS__WEBCHAT__TEAM_NAME": PAYLOAD,
        "HUB_CHANNELS__WEBCHAT__WELCOME": PAYLOAD,
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
    }
    with run_hub(tmp_path, extra_env=env) as hub:
        yield hub


def _check(page: Any, where: str, shows_text: bool = True) -> None:
    page.wait_for_timeout(300)  # let late renders (live events, lazy panels) land
    result = page.evaluate(INJECTED)
    assert result == {"ran": None, "found": []}, f"{where}: {result}"
    assert not page.dialogs, f"{where}: a dialog opened: {page.dialogs}"
    if shows_text:
        assert SHOWN in page.evaluate(TEXT), f"{where}: the planted text is not on the page as text"


def _page(new_page: Any) -> Any:
    page = new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    return page


def test_no_planted_string_runs_on_any_page_as_any_role(planted: Hub, browser: Any) -> None:
    hub = planted
    contexts: list[Any] = []

    def new_page() -> Any:
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=hub.url)
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        return ctx.new_page()

    try:
        _run(hub, lambda: _page(new_page))
    finally:
        for ctx in contexts:
            ctx.close()


def _run(hub: Hub, new_page: Any) -> None:
    # -- strings people control, planted through the API ------------------------------------------------------
    status, agent = hub.call("POST", "/api/v1/agents", {"name": PAYLOAD, "email": "xss@example.com",
                                                        "password": "correct horse battery", "role": "agent",
                                                        "queues": ["support"]})
    assert status == 201, agent
    status, token = hub.call("POST", "/api/v1/tokens", {"role": "agent", "agent_id": agent["id"], "label": PAYLOAD})
    assert status == 201, token
    status, _ = hub.call("PUT", "/api/v1/routing/queues/billing", {"title": PAYLOAD})
    assert status == 200
    mail = hub.inbound("email:mallory@example.com", PAYLOAD, name=PAYLOAD, html=f"<p>{PAYLOAD}</p>",
                       meta={"email": {"subject": PAYLOAD, "from": PAYLOAD}},
                       attachments=[{"filename": PAYLOAD + ".txt", "content_type": "text/plain",
                                     "data_base64": base64.b64encode(b"hello").decode()}])
    conv = mail["conversation"]["id"]
    status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": PAYLOAD, "note": True})
    assert status == 201
    status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": PAYLOAD}, token=token["token"])
    assert status == 201

    # -- the hub's own page, as anyone -------------------------------------------------------------------------
    page = new_page()
    page.goto("/")
    _check(page, "/")

    # -- the web chat page: a visitor writes markup, the agent named with it replies with it ------------------
    chat = new_page()
    chat.goto("/chat")
    chat.wait_for_selector(".hc-panel[data-state=online]")
    chat.fill(".hc-input", PAYLOAD)
    chat.keyboard.press("Enter")
    chat.wait_for_selector(".hc-mine:not(.hc-pending)")
    visitor = chat.evaluate("localStorage.getItem('hubchat:visitor')").strip('"')
    _, found = hub.call("GET", f"/api/v1/customers?identity=webchat:{visitor}")
    _, timeline = hub.call("GET", f"/api/v1/customers/{found['items'][0]['id']}/timeline")
    web_conv = timeline["items"][0]["conversation_id"]
    status, _ = hub.call("POST", f"/api/v1/conversations/{web_conv}/messages", {"text": PAYLOAD},
                         token=token["token"])
    assert status == 201
    chat.wait_for_selector(".hc-theirs")
    _check(chat, "/chat")

    # -- the console, as each role -----------------------------------------------------------------------------
    views = {
        "admin@example.com": ["#/", f"#/c/{conv}", f"#/c/{web_conv}", "#/wall", "#/admin/agents", "#/admin/tokens",
                              "#/admin/routing"],
        "dana@example.com": ["#/", f"#/c/{conv}", "#/wall"],
        "alex@example.com": ["#/", f"#/c/{conv}", f"#/c/{web_conv}"],
        "xss@example.com": ["#/", f"#/c/{conv}"],
    }
    for email, hashes in views.items():
        page = new_page()
        sign_in(page, email, "correct horse battery")
        for h in hashes:
            page.goto("/console/" + h)
            page.wait_for_selector("#live-status.s-live")
            _check(page, f"console {h} as {email}", shows_text=h != "#/wall")
