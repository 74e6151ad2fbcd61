"""The console in Spanish, as a Spanish-speaking agent's browser opens it: the language follows navigator.languages,
<html lang> says so (screen readers pick their voice from it), the inbox, a conversation and the Reports page are in
Spanish with dates and numbers formatted for Spanish, they pass axe-core, and choosing English in the console applies
at once, without a reload, and is kept in the browser."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Hub, sign_in
from tests.e2e.test_accessibility import Screens

# English a Spanish screen must not show (each is on one of the screens below when the console is in English).
ENGLISH = ["My conversations", "Inbox", "Reports", "Internal note", "Identities", "First response", "Breakdown",
           "Sign out", "Customer details", "Load earlier"]


def _fits(page: Any) -> bool:
    """Nothing pushed past the window's width (longer Spanish words must not push the top bar's buttons off)."""
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def _visible_english(page: Any) -> list[str]:
    text = page.inner_text("body")
    return [s for s in ENGLISH if s in text]


def test_the_console_in_spanish(hub: Hub, browser: Any) -> None:
    made = hub.inbound("email:lee.morgan@example.com", "My invoice INV-2291 is charged twice.", name="Lee Morgan",
                       meta={"subject": "Charged twice"})
    conv = int(made["conversation"]["id"])
    hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "Sorry about that, Lee! Let me look."})
    hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "Refund approved by billing.", "note": True})
    hub.inbound("phone:+14155550100", "pricing for a team of 12?", name="Rita Gomez")
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=hub.url, locale="es-ES")
    ctx.set_default_timeout(20_000)
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        screens = Screens()

        page.goto("/console/")
        page.wait_for_selector("h1 >> text=Inicia sesión en tu espacio de trabajo")
        assert page.get_attribute("html", "lang") == "es"
        assert page.inner_text("#signin-btn") == "Iniciar sesión"
        screens.check(page, "inicio de sesión")

        sign_in(page, "admin@example.com")  # the most tabs in the top bar
        page.wait_for_selector(".conv-item >> text=Lee Morgan")
        assert page.get_attribute("html", "lang") == "es"
        page.wait_for_selector("#live-status >> text=En vivo")
        page.wait_for_selector('.nav-link[title="Bandeja de entrada"] >> text=Bandeja')
        assert _visible_english(page) == [] and _fits(page)
        screens.check(page, "bandeja de entrada")

        page.goto(f"/console/#/c/{conv}")
        page.wait_for_selector(".tl-msg.out >> text=Let me look")
        page.wait_for_selector('.tab[data-mode="reply"] >> text=Responder')
        page.wait_for_selector('.tab[data-mode="note"] >> text=Nota interna')
        page.wait_for_selector(".side-card h3 >> text=Identidades")
        assert page.get_attribute("#reply-text", "placeholder").startswith("Escribe una respuesta")
        assert _visible_english(page) == [] and _fits(page)
        screens.check(page, "conversación")

        page.goto("/console/#/reports")
        page.wait_for_selector("#reports h1 >> text=Informes")
        page.wait_for_selector('.kpi-card[data-figure="first_response_time"] >> text=Primera respuesta')
        # The heatmap's weekdays come from Intl in Spanish ("lun", "mar"...), not a fixed English list.
        assert page.inner_text("#report-heatmap tbody tr:first-child th").strip().lower().startswith("lun")
        assert _visible_english(page) == [] and _fits(page)
        screens.check(page, "informes")
        screens.assert_clean()

        # English, chosen in the console: applied without a reload (the marker survives), and kept.
        page.evaluate("() => { window.__stillHere = true; }")
        page.click("#language-btn")
        page.select_option("#language-select", "en")
        page.click("#modal-ok")
        page.wait_for_selector("#reports h1 >> text=Reports")
        assert page.get_attribute("html", "lang") == "en"
        assert page.evaluate("() => window.__stillHere") is True
        page.reload()
        page.wait_for_selector("#reports h1 >> text=Reports")
        assert page.get_attribute("html", "lang") == "en"
        assert errors == []
    finally:
        ctx.close()
