"""`hub demo`'s WhatsApp customers, started as the demo starts them (its settings, its Twilio simulator, its seeded
history): Maria wrote on WhatsApp 30 hours ago, so her window has closed and a free-form reply is refused; the
account's templates are listed with the pending one not sendable; an agent sends her the approved order_shipped
template through the API, the simulator receives ContentSid + ContentVariables (not a Body) and delivers it, and her
answer, signed as Twilio signs it, opens the window again. Diego writes live, so his window is open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from hub.app import build_app
from hub.demo import twilio_customer as twilio_demo
from hub.demo.runner import demo_settings, prepare
from hub.keys import CHANNELS
from hub.model import parse_time, utcnow
from tests.api.client import Api
from tests.conftest import free_port


async def _until(check: Callable[[], Awaitable[Any]], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (got := await check()):
        assert time.monotonic() < deadline, f"{what} not seen within {within:.0f}s"
        await asyncio.sleep(0.1)
    return got


async def test_demo_whatsapp_customer_gets_an_approved_template_when_her_window_has_closed(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = demo_settings(tmp_path)
    settings.channels.email.enabled = settings.channels.telegram.enabled = False
    port = free_port()
    demo = await twilio_demo.start(settings, "127.0.0.1", port)
    assert settings.channels.twilio.whatsapp_from == twilio_demo.NUMBER, "WhatsApp on the demo number"
    demo.simulator.callback_delay = 0.05
    try:
        token = await prepare(settings)
        # The demo's public URL (which Twilio signatures cover) names this port: the hub listens there.
        client: TestClient[Any, Any] = await aiohttp_client(build_app(settings), server_kwargs={"port": port})
        spec = await (await client.get("/api/v1/openapi.json")).json()
        api = Api(client, {"Authorization": f"Bearer {token}"}, spec)
        whatsapp = client.app[CHANNELS]["whatsapp"]
        await demo.whatsapp_history(whatsapp)
        await demo.whatsapp_history(whatsapp)  # a second `hub demo` on the same data folder stores nothing new

        name, phone = twilio_demo.MARIA
        [maria] = (await api.call("GET", "/api/v1/customers", f"/api/v1/customers?identity=phone:{phone}"))["items"]
        assert maria["name"] == name

        async def timeline() -> list[dict[str, Any]]:
            path = "/api/v1/customers/{id}/timeline"
            return list((await api.call("GET", path, path.format(id=maria["id"])))["items"])

        [wrote] = await timeline()
        assert (wrote["channel"], wrote["direction"], wrote["text"]) == ("whatsapp", "in", twilio_demo.MARIA_WROTE)
        conv = wrote["conversation_id"]

        async def window() -> dict[str, Any]:
            path = "/api/v1/conversations/{id}"
            got = await api.call("GET", path, path.format(id=conv))
            return next(w for w in got["session_windows"] if w["channel"] == "whatsapp")

        closed = await window()
        assert closed["open"] is False
        assert utcnow() - parse_time(closed["last_inbound_at"]) > timedelta(hours=24)
        messages = "/api/v1/conversations/{id}/messages"
        refused = await client.post(messages.format(id=conv), headers=api.headers,
                                    json={"text": "Hi Maria!", "channel": "whatsapp"})
        assert refused.status == 422 and "window" in await refused.text()

        listed = (await api.call("GET", "/api/v1/templates", "/api/v1/templates"))["items"]
        by_name = {t["name"]: t for t in listed}
        assert {n: (t["approval"], t["sendable"]) for n, t in by_name.items()} == {
            "order_shipped": ("approved", True), "appointment_reminder": ("approved", True),
            "spring_sale": ("pending", False)}
        assert by_name["order_shipped"]["body"] == "Hi {{1}}, your order {{2}} has shipped."
        pending = await client.post(messages.format(id=conv), headers=api.headers, json={
            "template": {"sid": by_name["spring_sale"]["sid"], "variables": {"1": "Maria"}}})
        assert pending.status == 422, await pending.text()

        shipped = by_name["order_shipped"]["sid"]
        await api.call("POST", messages, messages.format(id=conv), {
            "template": {"sid": shipped, "variables": {"1": "{{first_name}}", "2": "A-1042"}}}, expect=201)

        async def at_twilio() -> list[Any]:
            return [f for f in demo.simulator.sent("Messages") if f.get("ContentSid")]

        [sent] = await _until(at_twilio, "the template at the simulator")
        assert (sent["From"], sent["To"], sent["ContentSid"], json.loads(sent["ContentVariables"]), sent.get("Body")) \
            == (f"whatsapp:{twilio_demo.NUMBER}", f"whatsapp:{phone}", shipped, {"1": "Maria", "2": "A-1042"}, None)

        # The simulator delivers it; Maria answers through the real signed webhook, and her window opens again.
        # Diego writes live on WhatsApp meanwhile (From=whatsapp:+...): his window is open.
        customer = asyncio.create_task(demo.simulate_whatsapp(interval=0.2))
        try:
            async def answered() -> list[dict[str, Any]]:
                return [m for m in await timeline()
                        if m["direction"] == "in" and m["text"] in twilio_demo.MARIA_ANSWERS]

            async def diego() -> list[dict[str, Any]]:
                path = f"/api/v1/customers?identity=phone:{twilio_demo.DIEGO[1]}"
                return list((await api.call("GET", "/api/v1/customers", path))["items"])

            await _until(answered, "Maria's answer")
            [found] = await _until(diego, "Diego's WhatsApp message")
        finally:
            customer.cancel()
            await asyncio.gather(customer, return_exceptions=True)
        out = [m for m in await timeline() if m["direction"] == "out"]
        assert [(m["text"], m["status"], m["meta"]["template"]["name"]) for m in out] == [
            ("Hi Maria, your order A-1042 has shipped.", "delivered", "order_shipped")]
        assert (await window())["open"] is True
        assert found["name"] == twilio_demo.DIEGO[0]
        path = "/api/v1/customers/{id}/timeline"
        [first] = (await api.call("GET", path, path.format(id=found["id"])))["items"][:1]
        assert (first["channel"], first["text"]) == ("whatsapp", twilio_demo.DIEGO_TEXTS[0])
        path = "/api/v1/conversations/{id}"
        his = (await api.call("GET", path, path.format(id=first["conversation_id"])))["session_windows"]
        assert [w["open"] for w in his if w["channel"] == "whatsapp"] == [True]
    finally:
        await demo.close()
