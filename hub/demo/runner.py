"""`hub demo`: the embedded default with demo queues, agents and an admin, and simulated customers writing in through
their real channels (Twilio SMS, voice and WhatsApp and Telegram webhooks against local simulators, email, the web
chat's WebSocket), so a newcomer sees live traffic at once, and one customer's timeline across every channel."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hub import tasks as background
from hub.agents import add_agent, find_agent, sync_queues
from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.email.channel import EmailChannel
from hub.config import QueueSettings, Settings, load_settings
from hub.demo import sample_data, telegram_customer, twilio_customer
from hub.demo.webchat_customer import WebchatVisitor
from hub.history import store
from hub.history.db import Tx, open_database
from hub.history.schema import migrate
from hub.keys import CHANNELS
from hub.model import Identity, format_time, utcnow
from hub.serve import run_server

log = logging.getLogger("hub.demo")

DEMO_AGENTS = [
    # name, email, password, role, queues
    ("Ada Admin", "admin@demo.hub", "admin-demo-1", "admin", ["support", "sales"]),
    ("Alice Agent", "alice@demo.hub", "alice-demo-1", "agent", ["support"]),
    ("Bob Agent", "bob@demo.hub", "bob-demo-12", "agent", ["sales"]),
    ("Sam Supervisor", "sam@demo.hub", "sam-demo-123", "supervisor", ["support", "sales"]),
]

# The phones the hub rings when a demo agent accepts a call (answered by the local Twilio simulator).
DEMO_PHONES = {"alice@demo.hub": "+14155550111", "bob@demo.hub": "+14155550112", "sam@demo.hub": "+14155550113"}

# Jordan, a known customer (phone and email on file, as a CRM import would leave them), texts and calls, emails a
# follow-up and opens the shop's web chat signed in: one customer, one timeline, four channels.
JORDAN = ("Jordan Blake", "jordan@example.com", twilio_customer.CUSTOMER)
JORDAN_EMAIL = ("Order #2211: the kettle", "Hi again, writing by email as promised: order #2211 still shows "
                "'processing'. My office address is 1 Market St, San Francisco.\n\nJordan")
JORDAN_CHAT = ["Hi, it's Jordan again (I texted and emailed about order #2211).",
               "Could you tell me whether it ships today?"]
# Other customers, each on their own channel: Raj emails sales, an anonymous visitor tries the web chat.
RAJ_EMAIL = ("Volume pricing", "Hello, do you offer volume pricing for 50 seats? Can we pay by invoice?\n\nRaj Patel")
VISITOR_CHAT = ["hello? anyone there", "Is the store open on Sunday?"]


def demo_settings(data: Path) -> Settings:
    settings = load_settings(None)
    settings.database.url = f"sqlite:///{data / 'hub.db'}"
    # Both queues ask for a satisfaction score a few seconds after a resolve; the simulated customers answer.
    settings.routing.queues = {"support": QueueSettings(title="Support", csat=True, csat_delay=5.0),
                               "sales": QueueSettings(title="Sales", csat=True, csat_delay=5.0)}
    # A routing rule to watch work: questions about buying go to sales, the rest to support.
    settings.routing.rules = [{"name": "buying", "queue": "sales", "keywords": ["price", "pricing", "quote", "seats"]}]
    # Chat channels: the web chat page to try, and a Telegram bot whose customer is simulated through the real
    # webhook; its Bot API is the local simulator (hub/demo/telegram_customer.py) unless a real token is given.
    settings.channels.webchat.enabled = True
    if not settings.channels.webchat.identity_secret:
        # The "shop" signs in its customers (Jordan) so their chats join the timeline they already have.
        settings.channels.webchat.identity_secret = secrets.token_urlsafe(24)
    tg = settings.channels.telegram
    if not tg.bot_token:
        tg.bot_token, tg.webhook_secret = DEMO_TELEGRAM_TOKEN, secrets.token_urlsafe(24)
    tg.enabled = True
    em = settings.channels.email
    if not em.enabled:
        # Email without a mail server: the simulated customer's mail goes through the real parse + ingest path,
        # and agents' replies go by SMTP to her (local) mail server.
        em.address, em.from_name = DEMO_EMAIL_ADDRESS, "Demo Support"
        em.smtp_host, em.smtp_port, em.smtp_security = "127.0.0.1", _free_port(), "none"
        em.enabled = True
    return settings


DEMO_EMAIL_ADDRESS = "support@demo.hub"
CHLOE = "chloe@example.fr"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmailCustomer:
    """Chloé emails support (a real RFC 5322 email, parsed and ingested like one fetched over IMAP), reads the
    agents' replies on her mail server (local SMTP, when aiosmtpd is installed) and answers them in the thread."""

    def __init__(self, channel: EmailChannel, smtp_port: int) -> None:
        self.channel = channel
        self.smtp_port = smtp_port
        self.replies: asyncio.Queue[EmailMessage] = asyncio.Queue()
        self._server: Any = None
        self._loop = asyncio.get_running_loop()

    def start_mail_server(self) -> bool:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            log.warning("aiosmtpd is not installed: agents' email replies to the demo customer will not be delivered")
            return False
        customer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.content, policy=policy.default)
                to = {str(r).lower() for r in envelope.rcpt_tos}
                if isinstance(msg, EmailMessage) and CHLOE in to:
                    customer._loop.call_soon_threadsafe(customer.replies.put_nowait, msg)
                elif isinstance(msg, EmailMessage):
                    log.info("%s received %r", ", ".join(sorted(to)), msg["Subject"])
                return "250 OK"

        self._server = Controller(Handler(), hostname="127.0.0.1", port=self.smtp_port)
        self._server.start()
        return True

    async def stop_async(self, _app: object = None) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None

    async def write_once(self, sender: str, subject: str, text: str) -> None:
        """Another customer's one email (they read replies in their own mail client, not simulated)."""
        outcome = await self.channel.receive(self._email(subject, text, sender=sender), {"demo": "email customer"})
        log.info("simulated email customer %s wrote in -> %s", sender, outcome)

    def _email(self, subject: str, text: str, html: str | None = None, sender: str = f"Chloé Martin <{CHLOE}>",
               **headers: str) -> bytes:
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, DEMO_EMAIL_ADDRESS
        msg["Subject"], msg["Message-ID"] = subject, make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
        msg["Date"] = format_datetime(datetime.now(UTC))
        for name, value in headers.items():
            msg[name.replace("_", "-")] = value
        msg.set_content(text, charset="iso-8859-1")
        if html:
            msg.add_alternative(html, subtype="html")
        return msg.as_bytes()

    async def run(self, interval: float = 15.0) -> None:
        first = self._email(
            "Colis endommagé / damaged parcel",
            "Bonjour, my parcel arrived damaged (the lid is cracked). Can you send a new one?\n\n-- \nChloé",
            "<p>Bonjour, my parcel arrived <b>damaged</b> (the lid is cracked). Can you send a new one?</p>"
            "<img src='https://tracker.example.com/open.gif'><script>alert('never runs')</script>",
        )
        outcome = await self.channel.receive(first, {"demo": "email customer"})
        log.info("simulated email customer chloe@example.fr wrote in -> %s", outcome)
        answered = 0
        while True:
            try:
                reply = await asyncio.wait_for(self.replies.get(), interval * 4)
            except TimeoutError:
                continue
            answered += 1
            log.info("chloe@example.fr received %r (In-Reply-To %s)", reply["Subject"], reply["In-Reply-To"])
            await asyncio.sleep(interval * random.uniform(0.3, 0.7))
            refs = f"{reply['References'] or ''} {reply['Message-ID']}".strip()
            if answered == 2:
                # Her out-of-office answers too: recognized, flagged, never answered back.
                ooo = self._email(f"Absence: {reply['Subject']}", "Je suis absente jusqu'à lundi.",
                                  In_Reply_To=str(reply["Message-ID"]), Auto_Submitted="auto-replied")
                await self.channel.receive(ooo, {"demo": "email customer"})
            text = f"Merci ! That helps.\n\nOn {reply['Date']}, Demo Support wrote:\n> " + reply.get_body(
                ("plain",)).get_content().strip().replace("\n", "\n> ")  # type: ignore[union-attr]
            answer = self._email(str(reply["Subject"]), text, In_Reply_To=str(reply["Message-ID"]), References=refs)
            outcome = await self.channel.receive(answer, {"demo": "email customer"})
            log.info("simulated email customer answered in the thread -> %s", outcome)


async def prepare(settings: Settings) -> str:
    """Schema, queues and demo agents (once); returns a fresh admin token for the simulated traffic."""
    db = open_database(settings.database.url, 1)
    try:
        await migrate(db)
        await sync_queues(db, settings.routing.queues)
        for name, email, password, role, queues in DEMO_AGENTS:
            if await find_agent(db, email) is None:
                await add_agent(db, name, email, password, role, queues, phone=DEMO_PHONES.get(email))
        await db.write(_customer_on_file)
        return await create_token(db, "admin", label="hub demo")
    finally:
        await db.close()


def _customer_on_file(tx: Tx) -> None:
    """Jordan is known by phone and email before writing in, so every channel lands on one customer; the workspace
    has its customer attributes (Jordan's filled in), labels, canned responses and macros."""
    name, email, phone = JORDAN
    now = format_time(utcnow())
    customer_id, _ = store.resolve_identity(tx, Identity("phone", phone), name, now)
    tx.exec("INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, value) DO NOTHING", (customer_id, "email", email, now))
    sample_data.write(tx, customer_id, now)



DEMO_TELEGRAM_TOKEN = "1000000001:DEMO-token-replace-with-your-bots-own"  # = telegram_customer.TOKEN
TELEGRAM_SCRIPT = [
    "Hi! I ordered the waxed jacket yesterday. Can I still change the size?",
    "It's order #2231, size M -> L please",
    "Thanks a lot!",
]


async def simulate_telegram_customer(base_url: str, secret: str, interval: float = 9.0) -> None:
    """A Telegram user writing to the bot: Bot API updates POSTed to the real webhook with the real secret header."""
    from hub.channels.telegram.channel import SECRET_HEADER, WEBHOOK_PATH

    run = int(time.time()) % 1_000_000
    user = {"id": 4242001, "is_bot": False, "first_name": "Lena", "last_name": "Vogel", "username": "lena_v",
            "language_code": "de"}
    chat = {"id": 4242001, "first_name": "Lena", "last_name": "Vogel", "username": "lena_v", "type": "private"}
    async with aiohttp.ClientSession(base_url, headers={SECRET_HEADER: secret}) as http:
        for n, text in enumerate(itertools.cycle(TELEGRAM_SCRIPT)):
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            update = {"update_id": run * 1000 + n, "message": {"message_id": run * 1000 + n, "from": user,
                                                              "chat": chat, "date": int(time.time()), "text": text}}
            try:
                async with http.post(WEBHOOK_PATH, json=update) as resp:
                    body = await resp.json()
                    log.info("simulated Telegram customer wrote through the webhook: %s", body.get("status", body))
            except aiohttp.ClientError as e:
                log.warning("simulated Telegram customer could not reach the hub: %s", e)


async def _later(delay: float, what: Awaitable[None]) -> None:
    await asyncio.sleep(delay)
    await what


async def run_demo(data: Path, host: str, port: int, traffic: bool = True) -> int:
    data = data.resolve()  # noqa: ASYNC240 (start-up, before serving)
    data.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(data)
    # Phone and SMS through Twilio, against a local simulator of Twilio's REST API: no network, no account.
    twilio = await twilio_customer.start(settings, host, port)
    port = twilio.port
    # Telegram against a local Bot API simulator: agents' replies reach the simulated customer, who answers.
    telegram = await telegram_customer.start(settings, host)
    token = await prepare(settings)
    app = build_app(settings)
    tasks: list[asyncio.Task[None]] = []
    # The app's hook lists freeze when it starts; what the simulators start later is stopped from here.
    stoppers: list[Callable[[web.Application], Awaitable[None]]] = []

    async def stop_traffic(app: web.Application) -> None:
        await background.stop(tasks)
        for stop in stoppers:
            await stop(app)

    app.on_shutdown.append(stop_traffic)

    async def started(bound: int) -> None:
        url = f"http://{host}:{bound}"
        lines = [
            "",
            "  hub demo is running",
            f"  start here:   {url}/   (links to the console, the web chat and the API docs)",
            f"  console:      {url}/console/",
            f"  API docs:     {url}/api/docs   (Authorize with the admin token to try it out)",
            f"  admin token:  {token}",
            "  demo logins (admin first):",
            *[f"    {email:<16} {password:<14} ({role}; queues: {', '.join(q)})"
              for _, email, password, role, q in DEMO_AGENTS],
            f"  data folder:  {data}",
            f"  twilio:       simulated (local Twilio REST simulator at {twilio.simulator_url}; number "
            f"{twilio_customer.NUMBER}; replay: hub webhooks replay webhooks/twilio/sms_inbound.txt --fresh --url "
            f"{url}/webhooks/twilio/sms with HUB_CHANNELS__TWILIO__AUTH_TOKEN={twilio_customer.TOKEN})",
            f"  whatsapp:     on the same number, templates {', '.join(t[0] for t in twilio_customer.TEMPLATES)} "
            "(the last one still pending)"
            + (f"; {twilio_customer.MARIA[0]} wrote {twilio_customer.MARIA_WROTE_HOURS_AGO} hours ago, so her window "
               "has closed: open her conversation and Send a template (she answers); "
               f"{twilio_customer.DIEGO[0]} writes live" if traffic else ""),
            f"  web chat:     {url}/chat   (or embed <script type=\"module\" src=\"{url}/widget.js\"></script>)",
            f"  telegram:     simulated customer Lena via {url}/webhooks/telegram (real secret header); "
            + (f"replies reach her through the local Bot API simulator at {telegram.simulator.url}"
               if telegram else "replies go to the real Telegram"),
            f"  email:        simulated customer chloe@example.fr (replies go to her local mail server on port "
            f"{settings.channels.email.smtp_port}; she answers in the thread)",
            f"  one timeline: {JORDAN[0]} texts and calls ({JORDAN[2]}), emails ({JORDAN[1]}) and opens the web chat "
            "signed in: one customer, every channel",
            f"  try:          curl -H 'Authorization: Bearer {token}' {url}/api/v1/conversations",
            "  stop with Ctrl-C",
            "",
        ]
        print("\n".join(lines), flush=True)
        if traffic:
            secret = settings.channels.webchat.identity_secret
            jordan_chat = WebchatVisitor(url, JORDAN[0], JORDAN_CHAT, email=JORDAN[1], identity_secret=secret)
            tasks.append(asyncio.create_task(jordan_chat.run(start_after=14.0)))
            tasks.append(asyncio.create_task(WebchatVisitor(url, "", VISITOR_CHAT).run(start_after=6.0)))
            if telegram is not None:
                try:
                    log.info("telegram: %s", await telegram.register_webhook(url))
                except Exception as e:  # the demo goes on without its Telegram customer
                    log.warning("could not register the demo bot's webhook with the simulator: %s", e)
                tasks.append(asyncio.create_task(telegram.simulate_customer()))
            else:
                tasks.append(asyncio.create_task(
                    simulate_telegram_customer(url, settings.channels.telegram.webhook_secret)))
            tasks.append(asyncio.create_task(twilio.simulate_customer()))
            await twilio.whatsapp_history(app[CHANNELS]["whatsapp"])
            tasks.append(asyncio.create_task(twilio.simulate_whatsapp()))
            email_channel = app[CHANNELS].get("email")
            if isinstance(email_channel, EmailChannel):
                chloe = EmailCustomer(email_channel, settings.channels.email.smtp_port)
                if settings.channels.email.address == DEMO_EMAIL_ADDRESS and chloe.start_mail_server():
                    stoppers.append(chloe.stop_async)
                tasks.append(asyncio.create_task(chloe.run()))
                tasks.append(asyncio.create_task(_later(8.0, chloe.write_once("Raj Patel <raj@example.com>",
                                                                             *RAJ_EMAIL))))
                tasks.append(asyncio.create_task(_later(16.0, chloe.write_once(f"{JORDAN[0]} <{JORDAN[1]}>",
                                                                              *JORDAN_EMAIL))))

    try:
        await run_server(app, host, port, settings.server.shutdown_timeout_seconds, started)
    finally:
        await twilio.close()
        if telegram is not None:
            await telegram.close()
    return 0
