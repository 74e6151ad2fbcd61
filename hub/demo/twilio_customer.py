"""`hub demo`'s phone customer: the Twilio channels enabled against the local Twilio REST simulator (no network, no
Twilio account), and a simulated customer who texts and calls through the real webhooks with real signatures."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from hub.channels.twilio.signature import sign
from hub.config import Settings, TwilioNumberSettings, TwilioSettings
from hub.demo.twilio_simulator import TwilioSimulator, new_sid

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
        numbers={NUMBER: TwilioNumberSettings(
            line="main", menu_prompt="For sales, press 1. For support, press 2.",
            menu={"1": "sales", "2": "support"} if "sales" in settings.routing.queues else {},
        )},
    )
    return DemoTwilio(simulator, runner, simulator_url, public_url, port)
