"""The Telegram channel: the business's bots customers write to (one, or several each with its own webhook).
Updates come by webhook (or polling), replies go out through the library's `Bot` of the bot the customer wrote to,
within Telegram's sending limits. Files are listed at once and fetched in the background."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import re
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    Update,
)
from telegram import MessageOriginUser as OriginUser
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from hub import tasks as background
from hub.api.errors import BadBody, error, parse_json
from hub.channels.base import Capabilities, Channel, ChatSink, IngestFailed, SendError, SendResult
from hub.config import Settings, TelegramSettings
from hub.identities import IdentityError, normalize_phone
from hub.model import ANSWER_META, AttachmentIn, Identity, Inbound, Outbound, format_time, utcnow

log = logging.getLogger("hub.channels.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: the top-level bot's webhook; a bot of channels.telegram.bots gets WEBHOOK_PATH/<name>
WEBHOOK_PATH = "/webhooks/telegram"
DEFAULT_BOT = "default"
# Attachments remember the file by id, never by download URL: that URL embeds the bot token.
FILE_REF = "telegram-file:"
# Update kinds the hub reads; everything else is journaled as ignored (named so the journal says what it was).
UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection", "business_message",
    "edited_business_message", "deleted_business_messages", "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
    "purchased_paid_media", "poll", "poll_answer", "my_chat_member", "chat_member", "chat_join_request",
    "chat_boost", "removed_chat_boost",
)
CAPTION_LIMIT = 1024
# A satisfaction survey's button (hub.csat): survey id and score. Telegram carries up to 64 bytes of callback data.
SURVEY_BUTTON = re.compile(r"csat:(\d{1,18}):([1-5])")
FETCH_ATTEMPTS = 6
FETCH_LEASE_SECONDS = 300.0


class Ignored(ValueError):
    """An update the hub deliberately does not turn into a message; the reason goes to the journal."""


def _seconds(obj: object, attribute: str) -> float:
    """A PTB duration (int or timedelta, depending on PTB_TIMEDELTA) as seconds, without the deprecation noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = getattr(obj, attribute)
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value or 0)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


class SendPacer:
    """Telegram's limits on a bot: about RATE messages a second overall, and one per INTERVAL to any one chat.
    Each send reserves the next free slot of both, so concurrent senders queue instead of tripping flood control;
    a chat waiting for its own slot does not hold up other chats."""

    def __init__(self, rate: float, per_chat_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = 1.0 / rate
        self.per_chat = per_chat_interval
        self.clock = clock
        self._next_any = 0.0
        self._next_chat: dict[int, float] = {}

    def reserve(self, chat_id: int) -> float:
        """Seconds to wait before sending to CHAT_ID (the slot is taken)."""
        now = self.clock()
        overall = max(now, self._next_any)
        self._next_any = overall + self.gap
        slot = max(overall, self._next_chat.get(chat_id, 0.0))
        self._next_chat[chat_id] = slot + self.per_chat
        if len(self._next_chat) > 10_000:  # forget chats whose slot is long past
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
        return slot - now

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram said "retry after SECONDS": nothing more to this chat until then."""
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), self.clock() + seconds)

    async def wait(self, chat_id: int) -> None:
        delay = self.reserve(chat_id)
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class BotSpec:
    """One configured bot: the top-level bot_token (named "default") or an entry of channels.telegram.bots."""

    name: str
    token: str
    mode: str
    secret: str
    groups: str
    path: str

    @property
    def bot_id(self) -> str:
        """The token's public half: the bot's numeric id, stable whatever the bot is called in the config."""
        return self.token.split(":", 1)[0]


def bot_specs(settings: TelegramSettings) -> list[BotSpec]:
    specs = []
    if settings.bot_token:
        specs.append(BotSpec(DEFAULT_BOT, settings.bot_token, settings.mode, settings.webhook_secret,
                             settings.groups, WEBHOOK_PATH))
    for b in settings.bots:
        specs.append(BotSpec(b.name, b.bot_token, b.mode, b.webhook_secret, b.groups or settings.groups,
                             f"{WEBHOOK_PATH}/{b.name}"))
    return specs


def make_bot(settings: TelegramSettings, token: str | None = None) -> tuple[Bot, list[HTTPXRequest]]:
    """The library's Bot for TOKEN (default: the top-level bot_token) pointed at SETTINGS' Bot API, and the request
    objects to shut down with it."""
    requests = [
        HTTPXRequest(connection_pool_size=16, read_timeout=settings.timeout_seconds,
                     write_timeout=settings.timeout_seconds, connect_timeout=10.0),
        # Long polling holds a request open for poll_timeout_seconds: its read timeout must outlast that.
        HTTPXRequest(read_timeout=settings.poll_timeout_seconds + 15.0, connect_timeout=10.0),
    ]
    bot = Bot(token or settings.bot_token, base_url=settings.api_url, base_file_url=settings.file_url,
              request=requests[0], get_updates_request=requests[1])
    return bot, requests


class TelegramBot:
    """One bot of the business as the channel runs it: the library's Bot and its own pacing (Telegram's limits are
    per bot)."""

    def __init__(self, spec: BotSpec, settings: TelegramSettings) -> None:
        self.spec = spec
        self.id = spec.bot_id
        self.bot, self.requests = make_bot(settings, spec.token)
        self.pacer = SendPacer(settings.rate_per_second, settings.per_chat_interval_seconds)


class TelegramChannel(Channel):
    name = "telegram"
    capabilities = Capabilities(max_text_length=4096, media=True, rate_per_second=30.0)
    identity_kinds = ("telegram",)

    def __init__(self, sink: ChatSink, settings: TelegramSettings, max_file_bytes: int | None = None,
                 region: str = "US") -> None:
        super().__init__(sink)
        self.chat_sink = sink
        self.settings = settings
        self.bots = [TelegramBot(spec, settings) for spec in bot_specs(settings)]
        if not self.bots:
            raise ValueError("channels.telegram has no bot: set bot_token or add [[channels.telegram.bots]]")
        self._by_name = {b.spec.name: b for b in self.bots}
        self._by_id = {b.id: b for b in self.bots}
        self.max_file_bytes = min(settings.max_file_bytes, max_file_bytes or settings.max_file_bytes)
        self.region = region
        self._tasks: list[asyncio.Task[None]] = []
        self._fetch_wake = asyncio.Event()

    @property
    def bot(self) -> Bot:
        """The first bot's Bot (the only one in a single-bot setup)."""
        return self.bots[0].bot

    @classmethod
    def from_settings(cls, sink: ChatSink, settings: Settings) -> TelegramChannel:
        return cls(sink, settings.channels.telegram, settings.ingest.max_attachment_bytes,
                   settings.identities.default_region)

    def _safe(self, text: str) -> str:
        """Library errors can quote request URLs, which contain the token: never let it reach a log or the store."""
        for b in self.bots:
            text = text.replace(b.spec.token, "<bot token>")
        return text

    @staticmethod
    def external_id(b: TelegramBot, chat_id: int, message_id: int) -> str:
        """Message ids count per chat. A private chat is one user with one bot, so the bot is part of the id; a
        group's ids are the same for every member, so a group message two of our bots see is stored once."""
        return f"{b.id}:{chat_id}:{message_id}" if chat_id > 0 else f"{chat_id}:{message_id}"

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        # A polling bot has no webhook: nobody may push updates to us for it.
        return [web.post(b.spec.path, self._webhook_of(b)) for b in self.bots if b.spec.mode == "webhook"]

    def _webhook_of(self, b: TelegramBot) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await self.handle_webhook(request, b)

        return handler

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._fetch_forever(), name="hub-telegram-files"))
        for b in self.bots:
            if b.spec.mode == "polling":
                self._tasks.append(asyncio.create_task(self._poll_forever(b), name=f"hub-telegram-poll-{b.spec.name}"))

    async def stop(self) -> None:
        await background.stop(self._tasks)
        self._tasks.clear()
        for b in self.bots:
            for r in b.requests:
                await r.shutdown()

    # -- inbound -------------------------------------------------------------------------------------------------

    async def handle_webhook(self, request: web.Request, b: TelegramBot | None = None) -> web.Response:
        b = b or self.bots[0]
        got = request.headers.get(SECRET_HEADER)
        if got is None:
            return error(401, f"missing {SECRET_HEADER}: register the webhook with `hub telegram set-webhook`")
        if not hmac.compare_digest(got.encode(), b.spec.secret.encode()):
            where = "channels.telegram" if b.spec.name == DEFAULT_BOT else f"bot {b.spec.name}'s"
            return error(403, f"{SECRET_HEADER} does not match {where} webhook_secret")
        raw = await request.read()
        why = f"not a JSON object, so not a Telegram update (bot {b.spec.name})"
        try:
            data = parse_json(raw)
        except BadBody as e:
            data, why = None, f"{e} (bot {b.spec.name})"
        if not isinstance(data, dict):
            # Authenticated but unreadable: keep it for a human and answer 200, since a retry would not read better.
            await self.sink.flag(self.name, None, raw.decode(errors="replace")[:100_000], why)
            return web.json_response({"ok": True, "status": "flagged"})
        return web.json_response({"ok": True, "status": await self.handle_update(data, b)})

    async def handle_update(self, data: dict[str, Any], b: TelegramBot | None = None) -> str:
        """Journal and apply one update of bot B (from its webhook or from polling). Returns what became of it."""
        b = b or self.bots[0]
        update_id = data.get("update_id")
        if not isinstance(update_id, int):
            await self.sink.flag(self.name, None, data, f"no numeric update_id: not a Telegram update (bot "
                                                        f"{b.spec.name})")
            return "flagged"
        key = f"{b.id}:u{update_id}"  # update ids count per bot
        try:
            update = Update.de_json(data, b.bot)
        except Exception as e:  # the library's own reading failed: keep the update for a human
            await self.sink.flag(self.name, key, data, f"python-telegram-bot cannot read this update: "
                                                       f"{type(e).__name__}: {e}")
            return "flagged"
        for m in (update.message, update.edited_message):
            # The library reads a message without `chat` (or `date`) as one with None there: Telegram never sends
            # such a thing, so it is kept for a human instead of failing here on every retry.
            if m is not None and (not isinstance(getattr(m, "chat", None), Chat) or m.date is None):
                await self.sink.flag(self.name, key, data, f"a message without chat or date: not a Telegram update "
                                                           f"the hub can place (bot {b.spec.name})")
                return "flagged"
        if update.message is not None:
            m = update.message
            if m.migrate_to_chat_id or m.migrate_from_chat_id:
                return await self._group_upgraded(m, key, data, b)
            try:
                inbound = self._parse(update, b)
            except Ignored as e:
                await self.sink.flag(self.name, key, data, f"ignored: {e}")
                return "ignored"
            try:
                result = await self.sink.ingest(inbound, raw=data)
            except IdentityError as e:
                await self.sink.flag(self.name, key, data, str(e))
                return "flagged"
            except IngestFailed:
                return "failed"  # journaled with the reason; `hub events replay` retries it
            if inbound.attachments and not result.duplicate:
                self._fetch_wake.set()
            return "duplicate" if result.duplicate else "stored"
        if update.edited_message is not None:
            m = update.edited_message
            edited_at = format_time(m.edit_date) if m.edit_date else format_time(utcnow())
            text = m.text or m.caption or ""
            if m.chat.type != "private":
                if b.spec.groups != "accept":
                    await self.sink.flag(self.name, key, data, f"ignored: an edit in a {m.chat.type} chat "
                                                               f"(bot {b.spec.name} ignores groups)")
                    return "ignored"
                text = _said_by(m, text)
                # The same edit seen by two of our bots in one group is one event.
                key = f"{m.chat.id}:{m.message_id}:edit:{int(m.edit_date.timestamp()) if m.edit_date else update_id}"
            msg = await self.chat_sink.edit(self.name, key, self.external_id(b, m.chat.id, m.message_id), text,
                                            edited_at, raw=data)
            return "edited" if msg is not None else "flagged"
        if update.callback_query is not None and SURVEY_BUTTON.fullmatch(update.callback_query.data or ""):
            return await self._survey_pressed(update.callback_query, key, data, b)
        kind = next((k for k in UPDATE_KINDS if data.get(k) is not None), None)
        if kind is None:
            kind = next((k for k in data if k != "update_id"), "empty")
        await self.sink.flag(self.name, key, data, f"ignored: the hub does not handle {kind} updates")
        return "ignored"

    async def _survey_pressed(self, q: CallbackQuery, key: str, data: dict[str, Any], b: TelegramBot) -> str:
        """A score button of a survey we sent: the answer goes through the inbound path like a reply (journaled,
        stored once however often Telegram retries), then Telegram is told, so the button stops spinning."""
        m = SURVEY_BUTTON.fullmatch(q.data or "")
        assert m is not None
        survey_id, score = int(m.group(1)), int(m.group(2))
        # The survey went to a chat (a group is one customer): whoever presses in it answers for it.
        chat_id = q.message.chat.id if q.message is not None else q.from_user.id
        meta: dict[str, Any] = {
            ANSWER_META: {"survey": survey_id, "score": score},
            "telegram": {"update_id": data.get("update_id"), "chat_id": chat_id, "callback_query_id": q.id,
                         "bot": b.spec.name},
        }
        inbound = Inbound(channel=self.name, identity=Identity("telegram", str(chat_id)), text=f"{score}/5",
                          external_id=f"{b.id}:cb{q.id}", name=q.from_user.full_name, meta=meta)
        try:
            result = await self.sink.ingest(inbound, raw=data)
        except IdentityError as e:
            await self.sink.flag(self.name, key, data, str(e))
            return "flagged"
        except IngestFailed:
            return "failed"
        answer = result.message.meta.get("csat")
        if not isinstance(answer, dict):
            said, status = "Thank you!", "stored"  # not a survey of this chat: kept as a message for an agent
        elif answer.get("ignored"):
            said, status = "Thank you, we already have your answer.", "ignored"
            if "closed" in str(answer["ignored"]):
                said = "Thank you, this survey has closed."
        else:
            said, status = f"Thank you for your answer ({score}/5)!", "answered"
        try:  # the answer is stored: a failure to tell Telegram only leaves the button spinning a while
            await b.bot.answer_callback_query(q.id, text=said)
            if q.message is not None and status == "answered":
                await b.bot.edit_message_reply_markup(chat_id, q.message.message_id, reply_markup=None)
        except TelegramError as e:
            log.warning("Telegram: answering a survey button failed: %s", self._safe(str(e)))
        return "duplicate" if result.duplicate else status

    async def _group_upgraded(self, msg: Message, key: str, data: dict[str, Any], b: TelegramBot) -> str:
        """A group became a supergroup, with a new chat id: Telegram says so in the old group (`migrate_to_chat_id`)
        and in the new supergroup (`migrate_from_chat_id`), in either order, maybe both to two of our bots. The new
        id joins the group's customer: same timeline, and replies go to the supergroup (the old id refuses them)."""
        if b.spec.groups != "accept":
            await self.sink.flag(self.name, key, data, f"ignored: a group upgrade (bot {b.spec.name} ignores groups)")
            return "ignored"
        if msg.migrate_to_chat_id:
            old, new = msg.chat.id, msg.migrate_to_chat_id
        else:
            old, new = int(msg.migrate_from_chat_id or 0), msg.chat.id
        # Keyed like a group message: the same service message through two of our bots is one event.
        return await self._record_upgrade(old, new, f"{msg.chat.id}:{msg.message_id}", data, b, _sent_at(msg.date))

    async def _record_upgrade(self, old: int, new: int, key: str, raw: Any, b: TelegramBot,
                              occurred_at: str | None = None) -> str:
        meta = {"event": "telegram.group_upgraded", "telegram": {"bot": b.spec.name, "chat_id": new,
                                                                 "migrated_from_chat_id": old}}
        return await self.chat_sink.link_identity(
            self.name, key, Identity("telegram", str(old)), Identity("telegram", str(new)), raw,
            text="Group upgraded to a supergroup", meta=meta, occurred_at=occurred_at,
        )

    def parse(self, payload: Any) -> Inbound:
        """An update to the first bot (the only one in a single-bot setup) as an Inbound."""
        return self._parse(payload, self.bots[0])

    def _parse(self, payload: Any, b: TelegramBot) -> Inbound:
        update = payload if isinstance(payload, Update) else Update.de_json(payload, b.bot)
        msg = update.message
        if msg is None:
            raise Ignored("not a message")
        group = msg.chat.type != "private"
        if group and b.spec.groups != "accept":
            raise Ignored(f"a message in a {msg.chat.type} chat; bot {b.spec.name} serves private chats "
                          '(channels.telegram.groups = "ignore")')
        user = msg.from_user
        if user is None:
            raise Ignored("a message without a sender (anonymous admin or channel)")
        if user.is_bot and not (group and msg.sender_chat is not None):
            raise Ignored("a message from another bot")
        meta: dict[str, Any] = {"telegram": {"update_id": update.update_id, "chat_id": msg.chat.id,
                                             "message_id": msg.message_id, "bot": b.spec.name}}
        if user.username and not group:
            meta["telegram"]["username"] = user.username
        text, attachments = self._content(msg, meta, b)
        if not text and not attachments:
            raise Ignored("a service message with nothing for an agent to read")
        if group:
            # The group is the customer (its members talk to the business together, and agents answer in the group);
            # who said what stays on each message.
            meta["telegram"]["chat_type"] = msg.chat.type
            meta["telegram"]["sender"] = _sender(msg)
            return Inbound(
                channel=self.name,
                identity=Identity("telegram", str(msg.chat.id)),
                text=_said_by(msg, text),
                external_id=self.external_id(b, msg.chat.id, msg.message_id),
                name=msg.chat.title or "Telegram group",
                attachments=attachments,
                occurred_at=_sent_at(msg.date),
                meta=meta,
            )
        return Inbound(
            channel=self.name,
            identity=Identity("telegram", str(user.id)),
            text=text,
            external_id=self.external_id(b, msg.chat.id, msg.message_id),
            name=user.full_name,
            attachments=attachments,
            occurred_at=_sent_at(msg.date),
            meta=meta,
        )

    def _content(self, msg: Message, meta: dict[str, Any], b: TelegramBot) -> tuple[str, list[AttachmentIn]]:
        """What the customer sent, as text (their words, else a short description) and files to fetch."""
        text = msg.text or msg.caption or ""
        described = ""
        files: list[AttachmentIn] = []
        mid = msg.message_id

        def file(file_id: str, filename: str, content_type: str) -> None:
            # File ids are valid only for the bot that received them.
            files.append(AttachmentIn(filename, content_type, url=f"{FILE_REF}{b.id}:{file_id}"))

        if msg.photo:
            best = msg.photo[-1]  # Telegram lists sizes smallest first
            file(best.file_id, f"photo-{mid}.jpg", "image/jpeg")
            described = "[photo]"
        if msg.document:
            d = msg.document
            file(d.file_id, d.file_name or f"document-{mid}", d.mime_type or "application/octet-stream")
            described = f"[document {d.file_name or ''}]".replace(" ]", "]")
        if msg.audio:
            a = msg.audio
            file(a.file_id, a.file_name or f"audio-{mid}.mp3", a.mime_type or "audio/mpeg")
            title = " - ".join(x for x in (a.performer, a.title) if x)
            described = f"[audio {title} {_clock(_seconds(a, 'duration'))}]".replace("  ", " ")
        if msg.voice:
            v = msg.voice
            file(v.file_id, f"voice-{mid}.ogg", v.mime_type or "audio/ogg")
            described = f"[voice message {_clock(_seconds(v, 'duration'))}]"
        if msg.video:
            vd = msg.video
            file(vd.file_id, vd.file_name or f"video-{mid}.mp4", vd.mime_type or "video/mp4")
            described = f"[video {_clock(_seconds(vd, 'duration'))}]"
        if msg.video_note:
            vn = msg.video_note
            file(vn.file_id, f"video-note-{mid}.mp4", "video/mp4")
            described = f"[video message {_clock(_seconds(vn, 'duration'))}]"
        if msg.animation and not msg.document:
            an = msg.animation
            file(an.file_id, an.file_name or f"animation-{mid}.mp4", an.mime_type or "video/mp4")
            described = "[GIF]"
        if msg.sticker:
            st = msg.sticker
            meta["sticker"] = {"emoji": st.emoji, "set_name": st.set_name}
            described = f"[sticker {st.emoji or ''}]".replace(" ]", "]")
        if msg.location and not msg.venue:
            loc = msg.location
            meta["location"] = {"latitude": loc.latitude, "longitude": loc.longitude,
                                "url": f"https://maps.google.com/?q={loc.latitude},{loc.longitude}"}
            described = f"[location {loc.latitude:.5f}, {loc.longitude:.5f}]"
        if msg.venue:
            ve = msg.venue
            meta["location"] = {"latitude": ve.location.latitude, "longitude": ve.location.longitude,
                                "title": ve.title, "address": ve.address,
                                "url": f"https://maps.google.com/?q={ve.location.latitude},{ve.location.longitude}"}
            described = f"[place {ve.title}, {ve.address}]"
        if msg.contact:
            described = self._contact(msg, meta)
        if msg.reply_to_message is not None:
            r = msg.reply_to_message
            meta["reply_to"] = {"external_id": self.external_id(b, r.chat.id, r.message_id),
                                "text": (r.text or r.caption or "")[:200]}
        origin = msg.forward_origin
        if origin is not None:
            if isinstance(origin, OriginUser):
                who = origin.sender_user.full_name
            elif isinstance(origin, MessageOriginHiddenUser):
                who = origin.sender_user_name
            elif isinstance(origin, MessageOriginChat):
                who = origin.sender_chat.title or origin.sender_chat.full_name or "a chat"
            elif isinstance(origin, MessageOriginChannel):
                who = origin.chat.title or "a channel"
            else:
                who = "someone"
            meta["forwarded_from"] = {"name": who, "date": format_time(origin.date)}
        entities = msg.entities or msg.caption_entities
        if entities:
            meta["entities"] = [
                {k: v for k, v in {"type": str(e.type), "offset": e.offset, "length": e.length, "url": e.url}.items()
                 if v is not None}
                for e in entities
            ]
        return text or described, files

    def _contact(self, msg: Message, meta: dict[str, Any]) -> str:
        c = msg.contact
        assert c is not None
        name = " ".join(x for x in (c.first_name, c.last_name) if x)
        meta["contact"] = {"name": name, "phone_number": c.phone_number, "user_id": c.user_id}
        # In a group the customer is the group: a member's number is not the group's to link.
        own = (c.user_id is not None and msg.from_user is not None and c.user_id == msg.from_user.id
               and msg.chat.type == "private")
        if own:
            # The customer shared their own number: offer to link it to this customer. Never merged silently:
            # an agent confirms in the console (the number may already belong to another customer).
            raw = c.phone_number if c.phone_number.startswith("+") else "+" + c.phone_number
            try:
                phone = normalize_phone(raw, self.region)
            except IdentityError as e:
                meta["identity_offer"] = {"status": "invalid", "reason": str(e)}
            else:
                meta["identity_offer"] = {
                    "identity": f"phone:{phone}", "status": "offered",
                    "reason": "the customer shared their own phone number in Telegram",
                }
        return f"[contact {name} {c.phone_number}]"

    # -- files -------------------------------------------------------------------------------------------------

    async def _fetch_forever(self) -> None:
        while True:
            try:
                await self.fetch_pending()
            except Exception:
                log.exception("fetching Telegram files failed; will retry")
            self._fetch_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fetch_wake.wait(), 5.0)

    async def fetch_pending(self) -> int:
        """Download files listed on messages (getFile, then the file URL). Returns how many were stored."""
        stored = 0
        # Leased, so that with several hub processes each file is downloaded by one of them.
        for attachment_id, ref in await self.chat_sink.claim_attachments(self.name, FETCH_LEASE_SECONDS):
            if await self._fetch_one(attachment_id, ref):
                stored += 1
        return stored

    async def _fetch_one(self, attachment_id: int, ref: str) -> bool:
        finish = self.chat_sink.finish_attachment
        if not ref.startswith(FILE_REF):
            await finish(attachment_id, error=f"not a Telegram file reference: {ref[:80]}")
            return False
        bot_id, _, file_id = ref[len(FILE_REF):].rpartition(":")
        b = self._by_id.get(bot_id) if bot_id else self.bots[0]  # no bot id: stored before there were several
        if b is None:
            await finish(attachment_id, error=f"the bot with id {bot_id} that received this file is no longer "
                                              "configured")
            return False
        try:
            f = await b.bot.get_file(file_id)
            if f.file_size is not None and f.file_size > self.max_file_bytes:
                await finish(attachment_id, error=f"file is {f.file_size} bytes, over the "
                                                  f"{self.max_file_bytes}-byte limit; not downloaded")
                return False
            data = bytes(await f.download_as_bytearray())
        except RetryAfter as e:
            await finish(attachment_id, error="Telegram flood control", retry_in=_seconds(e, "retry_after"))
            return False
        except (BadRequest, Forbidden, InvalidToken) as e:  # e.g. "file is too big", a file id from another bot
            await finish(attachment_id, error=f"Telegram refused the file: {self._safe(str(e))}")
            return False
        except (TelegramError, OSError) as e:
            attempts = await self.chat_sink.attachment_attempts(attachment_id) + 1
            why = f"download failed ({attempts} of {FETCH_ATTEMPTS} tries): {self._safe(str(e))}"
            retry = min(600.0, 5.0 * 2 ** (attempts - 1)) * random.uniform(0.75, 1.25)
            await finish(attachment_id, error=why, retry_in=retry if attempts < FETCH_ATTEMPTS else None)
            return False
        if len(data) > self.max_file_bytes:
            await finish(attachment_id, error=f"file is {len(data)} bytes, over the {self.max_file_bytes}-byte limit")
            return False
        await finish(attachment_id, data=data)
        return True

    # -- polling ---------------------------------------------------------------------------------------------

    async def _poll_forever(self, b: TelegramBot) -> None:
        """getUpdates in a loop. The offset moves past an update only once it is journaled, so a crash re-reads it."""
        delay = 1.0
        offset: int | None = None
        removed_webhook = False
        while True:
            try:
                if not removed_webhook:
                    # Telegram refuses getUpdates while a webhook is set: polling mode means no webhook.
                    await b.bot.delete_webhook()
                    removed_webhook = True
                updates = await b.bot.get_updates(
                    offset=offset, timeout=self.settings.poll_timeout_seconds, allowed_updates=Update.ALL_TYPES
                )
                for u in updates:
                    await self.handle_update(u.to_dict(), b)
                    offset = u.update_id + 1
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except RetryAfter as e:
                await asyncio.sleep(_seconds(e, "retry_after"))
            except InvalidToken:
                log.error("Telegram rejected bot %s's bot_token; polling again in 60s", b.spec.name)
                await asyncio.sleep(60)
            except Exception as e:  # network trouble, or the store is down: back off and re-read the same updates
                log.warning("Telegram polling: %s; retrying in %.0fs", self._safe(f"{type(e).__name__}: {e}"), delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(60.0, delay * 2)

    # -- outbound ---------------------------------------------------------------------------------------------

    async def bot_for(self, outbound: Outbound) -> TelegramBot:
        """The bot the customer last wrote to in this conversation (else ever): a bot can only write to people who
        started it, and the customer expects the answer where they asked."""
        if len(self.bots) == 1:
            return self.bots[0]
        recent = await self.chat_sink.thread_messages(outbound.conversation_id, self.name)
        earlier = [m for m, _agent in await self.chat_sink.history(outbound.to, self.name, 50)]
        for m in [*reversed(recent), *reversed(earlier)]:
            name = (m.meta.get("telegram") or {}).get("bot") if m.direction == "in" else None
            if isinstance(name, str) and name in self._by_name:
                return self._by_name[name]
        return self.bots[0]

    async def send(self, outbound: Outbound) -> SendResult:
        try:
            chat_id = int(outbound.to.value)
        except ValueError:
            raise SendError(f"{outbound.to} is not a Telegram chat id", permanent=True) from None
        b = await self.bot_for(outbound)
        files = await self.chat_sink.outbound_files(outbound.message_id)
        markup = _survey_buttons(outbound)
        try:
            first = await self._send_to(b, chat_id, outbound.text, files, markup)
        except ChatMigrated as e:
            # The group became a supergroup (its old id refuses messages now): record it as the service message
            # would have, and send to the supergroup. Once only: a second move in one send is not Telegram's way.
            new_id = int(e.new_chat_id)
            try:
                await self._record_upgrade(chat_id, new_id, f"{chat_id}:migrated", {"migrate_to_chat_id": new_id}, b)
            except Exception:  # the reply matters more; the next send to the old id records it again
                log.exception("could not record that Telegram group %s became %s", chat_id, new_id)
            chat_id = new_id
            try:
                first = await self._send_to(b, chat_id, outbound.text, files, markup)
            except ChatMigrated as again:
                raise SendError(f"Telegram says group {chat_id} moved again, to {again.new_chat_id}",
                                permanent=True) from None
        return SendResult(external_id=self.external_id(b, chat_id, first))

    async def _send_to(self, b: TelegramBot, chat_id: int, text: str, files: list[tuple[str, str, bytes]],
                       markup: InlineKeyboardMarkup | None = None) -> int:
        """_send_all with Telegram's errors as SendErrors an agent can read (ChatMigrated passes through)."""
        try:
            return await self._send_all(b, chat_id, text, files, markup)
        except ChatMigrated:
            raise
        except RetryAfter as e:
            wait = _seconds(e, "retry_after")
            b.pacer.hold(chat_id, wait)
            raise SendError(f"Telegram flood control: retry in {wait:.0f}s", permanent=False,
                            retry_after=wait) from None
        except Forbidden as e:
            raise SendError(_forbidden_reason(self._safe(e.message), chat_id), permanent=True) from None
        except InvalidToken:
            raise SendError(f"Telegram rejected bot {b.spec.name}'s bot_token", permanent=True) from None
        except BadRequest as e:
            why = self._safe(e.message)
            if "chat not found" in why.lower():
                why += " (the chat is gone, or this bot was never in it)"
            raise SendError(f"Telegram refused: {why}", permanent=True) from None
        except (TimedOut, NetworkError, TelegramError) as e:
            raise SendError(f"Telegram unreachable: {self._safe(str(e))}", permanent=False) from None

    async def _send_all(self, b: TelegramBot, chat_id: int, text: str, files: list[tuple[str, str, bytes]],
                        markup: InlineKeyboardMarkup | None = None) -> int:
        """Text, photos and documents; a short text rides as the first file's caption. Returns the first id.
        MARKUP (a survey's buttons) goes with the text."""
        ids: list[int] = []
        caption: str | None = None
        if files and len(text) <= CAPTION_LIMIT:
            caption = text or None
        elif text:
            await b.pacer.wait(chat_id)
            ids.append((await b.bot.send_message(chat_id, text, reply_markup=markup)).message_id)
        for i, (filename, content_type, data) in enumerate(files):
            await b.pacer.wait(chat_id)
            cap = caption if i == 0 else None
            if content_type in ("image/jpeg", "image/png", "image/webp") and len(data) <= 10_000_000:
                sent = await b.bot.send_photo(chat_id, data, caption=cap, filename=filename)
            else:
                sent = await b.bot.send_document(chat_id, data, caption=cap, filename=filename)
            ids.append(sent.message_id)
        return ids[0]


def _survey_buttons(outbound: Outbound) -> InlineKeyboardMarkup | None:
    """A satisfaction survey (hub.csat) is sent with one button per score."""
    csat = outbound.meta.get("csat")
    if not isinstance(csat, dict) or not csat.get("question"):
        return None
    survey = int(csat["survey"])
    return InlineKeyboardMarkup([[InlineKeyboardButton(str(n), callback_data=f"csat:{survey}:{n}")
                                  for n in range(1, 6)]])


def _sent_at(date: datetime) -> str:
    """When the customer sent it. Telegram's dates are whole seconds: a message that has just arrived is timed on
    arrival instead, so that it sorts after the agent's reply it answers within the same second."""
    now = utcnow()
    return format_time(now if timedelta(0) <= now - date < timedelta(seconds=2) else date)


def _forbidden_reason(said: str, chat_id: int) -> str:
    """Telegram's 403 as the agent reads it: who stopped the bot, and that retrying will not help."""
    low = said.lower()
    if "blocked by the user" in low:
        return f"the customer blocked the bot: Telegram refuses messages to them until they unblock it ({said})"
    if "kicked" in low or "not a member" in low:
        return f"the bot is no longer in this group: add it back to reach the group ({said})"
    if "deactivated" in low:
        return f"the customer's Telegram account was deleted ({said})"
    who = "group" if chat_id < 0 else "customer"
    return f"Telegram refused: {said} (the {who} does not accept messages from this bot)"


def _sender(msg: Message) -> dict[str, Any]:
    """Who wrote a group message: a member (their own Telegram identity, for an agent to look up; never merged),
    or the group itself when an admin posts anonymously."""
    user = msg.from_user
    if msg.sender_chat is not None or user is None:
        chat = msg.sender_chat or msg.chat
        return {"name": chat.title or "the group", "chat_id": chat.id}
    out: dict[str, Any] = {"name": user.full_name, "identity": f"telegram:{user.id}"}
    if user.username:
        out["username"] = user.username
    return out


def _said_by(msg: Message, text: str) -> str:
    """A group message's text as agents read it: who wrote it first, since several people share the conversation."""
    return f"{_sender(msg)['name']}: {text}" if text else text


async def set_webhook(settings: TelegramSettings, url: str, bot: str = DEFAULT_BOT) -> str:
    """Register URL as the webhook of the bot named BOT, with the secret Telegram must send back. Returns what
    Telegram said."""
    spec = next((s for s in bot_specs(settings) if s.name == bot), None)
    if spec is None:
        raise ValueError(f"no Telegram bot named {bot!r}")
    tg_bot, requests = make_bot(settings, spec.token)
    try:
        await tg_bot.set_webhook(url, secret_token=spec.secret or None, allowed_updates=Update.ALL_TYPES)
        info = await tg_bot.get_webhook_info()
        return f"webhook set to {info.url} ({info.pending_update_count} update(s) waiting)"
    finally:
        for r in requests:
            await r.shutdown()
