"""`hub demo`'s phone customers: the Twilio channels (SMS, voice and WhatsApp on the demo number) enabled against the
local Twilio REST simulator (no network, no Twilio account), which holds the account's WhatsApp templates; simulated
customers who text, call and write on WhatsApp through the real webhooks with real signatures."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import socket
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from aiohttp import web

from hub.channels.base import Channel, IngestResult
from hub.channels.twilio.signature import sign
from hub.config import Settings, TwilioNumberSettings, TwilioSettings
from hub.demo.twilio_simulator import TwilioSimulator, new_sid
from hub.model import format_time, utcnow

log = logging.getLogger("hub.demo.twilio")

ACCOUNT = "AC" + "de" * 16
TOKEN = "demo-auth-token-not-a-secret"
NUMBER = "+14155550199"
CUSTOMER = "+14155550142"

TEXTS = [
    "Hi, I ordered a blue kettle last week (order #2211) and it hasn't shipped. Any news?",
    "Also, can I change the delivery address to my office?",
    "Thanks! One more question: do you price match?",
]
# What the simulated customer adds to a survey score, by score ("" for none).
COMMENTS = {1: ["nobody called me back"], 2: ["took too long", ""], 3: ["", "ok"], 4: ["", "quick, thanks"],
            5: ["", "great help!", "super fast, thank you"]}
VOICEMAIL = "Hi, it's Jordan about order 2211. Please call me back when you can. Thanks!"

# WhatsApp on the demo number. Maria wrote 30 hours ago, so her 24-hour window has closed: only an approved template
# can reach her, and her answer to it opens the window again. Diego writes now, so his window is open.
MARIA = ("Maria Santos", "+14155550155")
MARIA_WROTE = "Hi! Has my order A-1042 shipped yet? I need it by Friday."
MARIA_WROTE_HOURS_AGO = 30
# A fixed MessageSid: a second `hub demo` on the same data folder finds her message journaled and stores nothing.
MARIA_SID = "SM" + "5a" * 16
MARIA_ANSWERS = ["Great news, thank you!", "Perfect, thanks. Can you text me the tracking number?"]
DIEGO = ("Diego Ruiz", "+14155550166")
DIEGO_TEXTS = ["Hola! Do you ship to Mexico City?", "And how long does it usually take?"]
DIEGO_ANSWERS = ["Gracias!", "Great, thanks"]
# The account's WhatsApp templates (Content API): name, body, sample values, WhatsApp's approval. The pending one is
# listed but cannot be sent, so the console's picker shows why.
TEMPLATES = [
    ("order_shipped", "Hi {{1}}, your order {{2}} has shipped.", {"1": "Maria", "2": "A-1042"}, "approved"),
    ("appointment_reminder", "Hi {{1}}, a reminder of your appointment on {{2}} at {{3}}. Reply here to change it.",
     {"1": "Maria", "2": "May 4", "3": "10:00"}, "approved"),
    ("spring_sale", "Spring sale, {{1}}: 20% off everything this weekend.", {"1": "Maria"}, "pending"),
]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class DemoTwilio:
    simulator: TwilioSimulator
    runner: web.AppRunner
    simulator_url: str
    public_url: str
    port: int
    #: the survey texts (by message sid) the simulated customer has answered
    _answered: set[str] = field(default_factory=set)
    #: the WhatsApp messages (by sid) the simulated WhatsApp customers have answered
    _whatsapp_answered: set[str] = field(default_factory=set)

    async def close(self) -> None:
        await self.runner.cleanup()

    async def simulate_customer(self, interval: float = 9.0) -> None:
        """Forever: a text, now and then a call, all signed as Twilio signs them. Every other call waits for an
        agent (accept it in the console: the simulator plays the agent's phone answering), the others leave a
        voicemail."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for n in itertools.count():
                await asyncio.sleep(interval * random.uniform(0.5, 1.5))
                try:
                    if await self._answer_surveys(http):
                        continue
                    if n % 4 == 3:
                        await self._call(http, wait_for_agent=n % 8 == 3)
                    else:
                        await self._text(http, TEXTS[n % len(TEXTS)])
                except aiohttp.ClientError as e:
                    log.warning("simulated phone customer could not reach the hub: %s", e)

    async def _answer_surveys(self, http: aiohttp.ClientSession) -> bool:
        """Answer the satisfaction surveys texted to the customer since last time (hub.csat), with a score and
        sometimes a comment. Returns whether there was one."""
        asked = [sid for sid, m in self.simulator.messages.items() if m["to"] == CUSTOMER
                 and "Reply with a number from 1" in m["body"] and sid not in self._answered]
        for sid in asked:
            self._answered.add(sid)
            score = random.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 6, 10])[0]
            await self._text(http, f"{score} {random.choice(COMMENTS[score])}".strip())
        return bool(asked)

    async def whatsapp_history(self, whatsapp: Channel) -> IngestResult:
        """Maria's WhatsApp message of 30 hours ago, as Twilio's webhook carries it, parsed by the WhatsApp adapter
        and stored through the one inbound path. The webhook has no time of its own (Twilio posts at once), so the
        time she wrote is set on the parsed event, which ingest keeps as the message's time."""
        name, phone = MARIA
        form = self._whatsapp_form(phone, name, MARIA_WROTE, MARIA_SID)
        wrote = utcnow() - timedelta(hours=MARIA_WROTE_HOURS_AGO)
        inbound = dataclasses.replace(whatsapp.parse(form), occurred_at=format_time(wrote))
        result = await whatsapp.sink.ingest(inbound, raw=form)
        log.info("simulated WhatsApp customer %s wrote %d hours ago (window closed) -> %s", phone,
                 MARIA_WROTE_HOURS_AGO, "already there" if result.duplicate else result.conversation_how)
        return result

    async def simulate_whatsapp(self, interval: float = 9.0) -> None:
        """Forever: Diego writes on WhatsApp through the real webhook now and then; Maria and Diego answer what the
        simulator delivered to them (a template, an agent's reply, a survey), which opens their window again."""
        texts = iter(DIEGO_TEXTS)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for n in itertools.count():
                await asyncio.sleep(interval * random.uniform(0.5, 1.5))
                try:
                    if n % 3 == 0 and (text := next(texts, None)) is not None:
                        await self._whatsapp(http, DIEGO, text)
                    await self._answer_whatsapp(http)
                except aiohttp.ClientError as e:
                    log.warning("simulated WhatsApp customer could not reach the hub: %s", e)

    async def _answer_whatsapp(self, http: aiohttp.ClientSession) -> bool:
        """Answer each message the simulator delivered on WhatsApp to Maria or Diego since last time (a survey with
        a score). Returns whether there was one."""
        people = {f"whatsapp:{phone}": (name, phone) for name, phone in (MARIA, DIEGO)}
        delivered = [(sid, m) for sid, m in self.simulator.messages.items() if m["to"] in people
                     and m["status"] == "delivered" and sid not in self._whatsapp_answered]
        for sid, m in delivered:
            self._whatsapp_answered.add(sid)
            who = people[m["to"]]
            if "Reply with a number from 1" in m["body"]:
                text = str(random.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 6, 10])[0])
            else:
                text = random.choice(MARIA_ANSWERS if who == MARIA else DIEGO_ANSWERS)
            await self._whatsapp(http, who, text)
        return bool(delivered)

    def _whatsapp_form(self, phone: str, name: str, body: str, sid: str) -> dict[str, str]:
        """A WhatsApp message's webhook form, as Twilio posts it (webhooks/twilio/whatsapp_inbound.txt)."""
        return {"SmsMessageSid": sid, "NumMedia": "0", "ProfileName": name, "MessageType": "text", "SmsSid": sid,
                "WaId": phone.removeprefix("+"), "SmsStatus": "received", "Body": body, "To": f"whatsapp:{NUMBER}",
                "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": ACCOUNT,
                "From": f"whatsapp:{phone}", "ApiVersion": "2010-04-01"}

    async def _whatsapp(self, http: aiohttp.ClientSession, who: tuple[str, str], body: str) -> None:
        name, phone = who
        status = await self._post(http, "/webhooks/twilio/sms", self._whatsapp_form(phone, name, body, new_sid("SM")))
        log.info("simulated WhatsApp customer %s wrote to %s (hub answered %d)", phone, NUMBER, status)

    async def _post(self, http: aiohttp.ClientSession, path: str, params: dict[str, str]) -> int:
        url = self.public_url + path
        headers = {"X-Twilio-Signature": sign(TOKEN, url, params)}
        async with http.post(url, data=params, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def _text(self, http: aiohttp.ClientSession, body: str) -> None:
        sid = new_sid("SM")
        status = await self._post(http, "/webhooks/twilio/sms", {
            "AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "Body": body, "From": CUSTOMER, "To": NUMBER,
            "MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "SmsStatus": "received", "NumMedia": "0",
            "NumSegments": "1", "FromCity": "OAKLAND", "FromState": "CA", "FromCountry": "US",
        })
        log.info("simulated customer %s texted %s (hub answered %d)", CUSTOMER, NUMBER, status)

    async def _call(self, http: aiohttp.ClientSession, wait_for_agent: bool = False) -> None:
        call = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": new_sid("CA"), "From": CUSTOMER,
                "To": NUMBER, "Caller": CUSTOMER, "Called": NUMBER, "Direction": "inbound", "CallStatus": "ringing"}
        await self._post(http, "/webhooks/twilio/voice", call)
        await self._post(http, "/webhooks/twilio/voice/menu?retry=0", {**call, "CallStatus": "in-progress",
                                                                        "Digits": "2"})
        if wait_for_agent and await self._wait_for_agent(http, call):
            log.info("simulated customer %s called %s and an agent took the call", CUSTOMER, NUMBER)
            return
        await self._post(http, "/webhooks/twilio/voice/queue-result", {
            **call, "CallStatus": "in-progress", "QueueResult": "leave", "QueueTime": "60", "QueueSid": new_sid("QU")})
        recording_sid, recording_url = self.simulator.add_recording(self.simulator_url, b"ID3 (simulated voicemail)")
        recording = {"AccountSid": ACCOUNT, "CallSid": call["CallSid"], "RecordingSid": recording_sid,
                     "RecordingUrl": recording_url, "RecordingStatus": "completed", "RecordingDuration": "9",
                     "RecordingChannels": "1", "RecordingSource": "RecordVerb", "ErrorCode": "0"}
        await self._post(http, f"/webhooks/twilio/voice/recording?from=%2B{CUSTOMER[1:]}&to=%2B{NUMBER[1:]}",
                         recording)
        await self._post(http, "/webhooks/twilio/voice/transcription", {
            **call, "CallStatus": "completed", "RecordingSid": recording_sid, "RecordingUrl": recording_url,
            "TranscriptionSid": new_sid("TR"), "TranscriptionStatus": "completed", "TranscriptionText": VOICEMAIL,
            "TranscriptionType": "fast"})
        await self._post(http, "/webhooks/twilio/voice/status", {
            **call, "CallStatus": "completed", "CallDuration": "85"})
        log.info("simulated customer %s called %s and left a voicemail", CUSTOMER, NUMBER)


    async def _wait_for_agent(self, http: aiohttp.ClientSession, call: dict[str, str], most: int = 90) -> bool:
        """Hold in the queue (asking the wait URL, as Twilio does) until the hub moves the call to an agent."""
        queue = {**call, "CallStatus": "in-progress", "QueueSid": new_sid("QU"), "QueuePosition": "1"}
        for waited in range(most):
            if self.simulator.calls.get(call["CallSid"], {}).get("twiml"):
                # The hub redirected the caller to their hand-off queue; the simulator bridges them to the agent.
                await self._post(http, "/webhooks/twilio/voice/queue-result",
                                 {**queue, "QueueResult": "redirected", "QueueTime": str(waited)})
                return True
            if waited % 20 == 0:
                await self._post(http, "/webhooks/twilio/voice/wait", {**queue, "QueueTime": str(waited)})
            await asyncio.sleep(1)
        return False


async def start(settings: Settings, host: str, port: int) -> DemoTwilio:
    """Start the simulator and point the hub's Twilio channels at it. PORT 0 picks the hub's port now, since the
    public URL (which Twilio signatures cover) must be known before the hub starts."""
    port = port or _free_port(host)
    simulator = TwilioSimulator(ACCOUNT, TOKEN)
    for name, body, samples, approval in TEMPLATES:
        simulator.add_template(name, body, samples, status=approval)
    runner = web.AppRunner(simulator.app(), access_log=None)
    await runner.setup()
    sim_port = _free_port(host)
    await web.TCPSite(runner, host, sim_port).start()
    simulator_url = f"http://{host}:{sim_port}"
    public_url = f"http://{host}:{port}"
    simulator.hub_url = public_url  # delivery receipts come back as signed status callbacks
    settings.server.public_url = public_url
    settings.channels.twilio = TwilioSettings(
        enabled=True, account_sid=ACCOUNT, auth_token=TOKEN, api_base_url=simulator_url,
        sms_from=NUMBER,  # what a campaign's SMS go out from (no inbound message to answer from)
        whatsapp_from=NUMBER,  # WhatsApp on the same number: templates go out from it
        numbers={NUMBER: TwilioNumberSettings(
            line="main", menu_prompt="For sales, press 1. For support, press 2.",
            menu={"1": "sales", "2": "support"} if "sales" in settings.routing.queues else {},
        )},
    )
    return DemoTwilio(simulator, runner, simulator_url, public_url, port)
