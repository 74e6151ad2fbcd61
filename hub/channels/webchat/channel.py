"""The web chat channel: a widget any site embeds with one script tag (`/widget.js`), a standalone page (`/chat`),
and the WebSocket visitors talk over (`/webchat/ws`). Visitors are anonymous unless the host site signs who they are.

Visitor sockets live in the process that accepted them. With several hub processes (events.backend = "redis"), a
reply sent by one process reaches a socket held by another through the event bus: each process delivers what it holds
at once and publishes a `webchat.deliver` event (agent typing: a `typing` event) that every other process delivers
to the sockets it holds. A reply to a visitor connected nowhere is still on their history when they come back."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from hub import tasks as background
from hub.api.auth import PRINCIPAL
from hub.api.errors import BadBody, error, parse_json, read_json
from hub.api.schemas import TypingBody
from hub.channels.base import Capabilities, Channel, ChatSink, IngestFailed, SendError, SendResult
from hub.channels.webchat.limits import Bucket, NewVisitorGate
from hub.config import Settings, WebchatSettings
from hub.events import Event, Subscription
from hub.identities import IdentityError, normalize
from hub.model import ANSWER_META, AttachmentIn, Identity, Inbound, Message, Outbound, format_time, utcnow
from hub.sockets import OPEN_SOCKETS

log = logging.getLogger("hub.channels.webchat")

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {
    "client.js": "text/javascript",
    "ui.js": "text/javascript",
    "widget.css": "text/css",
}
# Visitor ids are minted here (128 random bits); a claimed id of another shape is replaced, so nobody can pick an id
# to read someone else's history.
VISITOR_ID = re.compile(r"^v_[A-Za-z0-9_-]{22}$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,100}$")
HELLO_TIMEOUT = 15.0
TYPING_EVERY = 2.0
DELIVER_EVENT = "webchat.deliver"
MAX_FILES = 5
CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
# A process that delivered a reply sent by another marks it delivered once the sender has recorded it as sent.
MARK_DELIVERED_TRIES = 20


def new_visitor_id() -> str:
    return "v_" + secrets.token_urlsafe(16)


def sign_identity(secret: str, value: str) -> str:
    """What the host site's server computes for a logged-in visitor: hex HMAC-SHA256 of their user id (or email)."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class VisitorSockets:
    """The visitors connected to this process, by the identity they write as (several tabs each)."""

    def __init__(self, per_visitor: int) -> None:
        self.per_visitor = per_visitor
        self._by_identity: dict[str, set[web.WebSocketResponse]] = {}

    def add(self, identity: str, ws: web.WebSocketResponse) -> bool:
        held = self._by_identity.setdefault(identity, set())
        if len(held) >= self.per_visitor:
            return False
        held.add(ws)
        return True

    def remove(self, identity: str, ws: web.WebSocketResponse) -> None:
        held = self._by_identity.get(identity)
        if held is not None:
            held.discard(ws)
            if not held:
                del self._by_identity[identity]

    def count(self, identity: str) -> int:
        return len(self._by_identity.get(identity, ()))

    async def deliver(self, identity: str, payload: dict[str, Any], skip: web.WebSocketResponse | None = None) -> int:
        """Push PAYLOAD to every open socket of IDENTITY here; returns how many got it."""
        n = 0
        for ws in list(self._by_identity.get(identity, ())):
            if ws is skip or ws.closed:
                continue
            try:
                await ws.send_json(payload)
                n += 1
            except (ConnectionError, RuntimeError):
                self.remove(identity, ws)
        return n

    async def close_all(self) -> None:
        for held in list(self._by_identity.values()):
            for ws in list(held):
                with contextlib.suppress(Exception):
                    await ws.close(code=1001, message=b"server shutting down")
        self._by_identity.clear()


@dataclass
class Visitor:
    """One connected browser tab, after its hello."""

    visitor_id: str
    identity: Identity
    verified: bool
    name: str | None = None
    email: str | None = None
    page: str | None = None
    last_typing: float = 0.0


def visitor_json(m: Message, agent_name: str | None) -> dict[str, Any]:
    """A message as the visitor may see it: no internal fields, no meta, text only (and, for a satisfaction
    survey, its id, so the widget shows the score buttons; for an answer, which survey it answered)."""
    out = {
        "id": m.id,
        "client_id": (m.meta.get("webchat") or {}).get("client_id"),
        "direction": m.direction,
        "text": m.text,
        "created_at": m.created_at,
        "agent_name": agent_name if m.direction == "out" else None,
        "attachments": [{"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in m.attachments if a.status == "stored"],
    }
    csat = m.meta.get("csat")
    if isinstance(csat, dict):
        out["survey" if m.direction == "out" else "rated"] = csat.get("survey")
    return out


def _rating(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A message frame's answer to a survey ({"survey", "score", "comment"}), or why it is refused."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        return None, "rating must be {survey, score, comment}"
    survey, score, comment = raw.get("survey"), raw.get("score"), raw.get("comment", "")
    if not isinstance(survey, int) or isinstance(survey, bool) or not 0 < survey < 2**63:
        return None, "rating.survey must be the survey's id"
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        return None, "rating.score must be a whole number from 1 to 5"
    if not isinstance(comment, str):
        return None, "rating.comment must be text"
    return {"survey": survey, "score": score, "comment": comment.strip()}, None


class WebchatChannel(Channel):
    name = "webchat"
    capabilities = Capabilities(max_text_length=20_000, media=True, max_files=MAX_FILES)
    # A visitor signed in by the host site writes as their email identity; anonymous ones as webchat:<visitor id>.
    identity_kinds = ("webchat", "email")

    def __init__(self, sink: ChatSink, settings: WebchatSettings, public_url: str = "", region: str = "US",
                 max_attachment_bytes: int | None = None) -> None:
        super().__init__(sink)
        self.chat_sink = sink
        self.settings = settings
        # A visitor's file: this channel's limit, within what ingest stores at all.
        self.max_file_bytes = min(settings.max_file_bytes, max_attachment_bytes or settings.max_file_bytes)
        self.public_origin = _origin(public_url)
        self.region = region
        self.sockets = VisitorSockets(settings.max_sockets_per_visitor)
        self._limits: dict[str, Bucket] = {}  # messages per visitor
        self.new_visitors = NewVisitorGate(settings)
        # Names this process on the bus: it has delivered what it published, others deliver the rest.
        self.node = secrets.token_hex(8)
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Read once at start-up: a handful of small files, served from memory.
        self._static = {name: (STATIC / name).read_bytes() for name in (*STATIC_FILES, "widget.js", "chat.html")}

    @classmethod
    def from_settings(cls, sink: ChatSink, settings: Settings) -> WebchatChannel:
        return cls(sink, settings.channels.webchat, settings.server.public_url, settings.identities.default_region,
                   settings.ingest.max_attachment_bytes)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/widget.js", self.widget_js),
            web.get("/chat", self.chat_page),
            web.get("/webchat/static/{name}", self.static),
            web.get("/webchat/config", self.config),
            web.get("/webchat/ws", self.websocket),
            web.post("/api/v1/webchat/typing", self.agent_typing),
        ]

    async def start(self) -> None:
        self._sub = self.chat_sink.subscribe()
        self._spawn(self._listen(self._sub), "hub-webchat-bus")

    async def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()
        await background.stop(self._tasks)
        await self.sockets.close_all()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- other hub processes: what they deliver to visitors connected here -----------------------------------

    async def _listen(self, sub: Subscription) -> None:
        async for event in sub:
            if sub.lagged:
                sub.lagged = False
                log.warning("web chat fell behind the event bus; visitors get missed replies when they reconnect")
            data = event.data
            if event.type == "conversation.resolved":
                # Every process hears it and tells the tabs it holds.
                try:
                    await self._resolved(data.get("conversation"))
                except Exception:
                    log.exception("web chat could not tell a visitor their conversation is resolved")
                continue
            if data.get("origin") == self.node or not isinstance(data.get("to"), str):
                continue  # ours (delivered when published), or not for a visitor
            try:
                if event.type == DELIVER_EVENT and isinstance(data.get("payload"), dict):
                    n = await self.sockets.deliver(data["to"], data["payload"])
                    external_id = data.get("external_id")
                    if n and isinstance(external_id, str) and not data.get("delivered"):
                        self._spawn(self._mark_delivered(external_id), "hub-webchat-delivered")
                elif event.type == "typing" and data.get("who") == "agent" and data.get("channel") == self.name:
                    await self.sockets.deliver(data["to"], {"type": "typing", "typing": bool(data.get("typing")),
                                                            "agent_name": data.get("agent_name")})
            except Exception:
                log.exception("web chat could not deliver a %s event", event.type)

    async def _mark_delivered(self, external_id: str) -> None:
        """The sending process records the reply as sent when send() returns: wait for that, then move it on."""
        for _ in range(MARK_DELIVERED_TRIES):
            if await self.sink.update_status(self.name, external_id, "delivered"):
                return
            await asyncio.sleep(0.5)

    # -- static ------------------------------------------------------------------------------------------------

    @staticmethod
    def _public_headers() -> dict[str, str]:
        # Loaded by other sites' pages as module scripts, which browsers fetch with CORS.
        return {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300",
                "X-Content-Type-Options": "nosniff"}

    async def widget_js(self, request: web.Request) -> web.Response:
        return web.Response(body=self._static["widget.js"], content_type="text/javascript",
                            headers=self._public_headers())

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"no web chat file {name!r}")
        return web.Response(body=self._static[name], content_type=STATIC_FILES[name], headers=self._public_headers())

    async def chat_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._static["chat.html"], content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                           "connect-src 'self' ws: wss:; img-src 'self' data:; "
                                           "base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def config(self, request: web.Request) -> web.Response:
        s = self.settings
        return web.json_response(
            {"title": s.title, "welcome": s.welcome, "team_name": s.team_name, "accent_color": s.accent_color,
             "prechat_form": s.prechat_form, "max_message_chars": s.max_message_chars,
             "max_file_bytes": self.max_file_bytes, "max_files": MAX_FILES},
            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
        )

    # -- the visitor's socket ------------------------------------------------------------------------------------

    def origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: origin checks guard against other sites' pages, which always send one
        origin = origin.rstrip("/")
        own = {f"{request.scheme}://{request.host}", self.public_origin} - {""}
        return origin in own or "*" in self.settings.allowed_origins or origin in self.settings.allowed_origins

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            return error(403, f"origin {request.headers.get('Origin')} is not in channels.webchat.allowed_origins")
        # A frame carries a message's text and its files (base64: 4 bytes per 3).
        frame_bytes = self.settings.max_message_chars * 4 + (self.max_file_bytes * 4 // 3 + 1024) * MAX_FILES + 4096
        ws = web.WebSocketResponse(heartbeat=25.0, max_msg_size=frame_bytes)
        await ws.prepare(request)
        if OPEN_SOCKETS in request.app:
            request.app[OPEN_SOCKETS].add(ws)
        visitor: Visitor | None = None
        try:
            visitor = await self._hello(ws, request)
            if visitor is None:
                return ws
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = parse_json(msg.data)
                except BadBody as e:
                    await ws.send_json({"type": "error", "code": "bad_json", "reason": f"frames must be JSON: {e}"})
                    continue
                if isinstance(data, dict):
                    await self._on_frame(ws, visitor, data)
        except ConnectionError:
            pass  # the visitor went away mid-answer
        except Exception:
            # The socket is upgraded: an HTTP 500 cannot be written into it. Close it the WebSocket way (the
            # widget reconnects) and keep the traceback for us.
            log.exception("web chat socket of %s failed", visitor.visitor_id if visitor else "a new visitor")
            with contextlib.suppress(Exception):
                await ws.close(code=1011, message=b"internal error; reconnect")
        finally:
            if visitor is not None:
                self.sockets.remove(str(visitor.identity), ws)
                if visitor.last_typing:
                    with contextlib.suppress(Exception):
                        await self.chat_sink.customer_typing(self.name, visitor.identity, False)
        return ws

    async def _hello(self, ws: web.WebSocketResponse, request: web.Request) -> Visitor | None:
        try:
            first = parse_json(await ws.receive_str(timeout=HELLO_TIMEOUT))
        except (TimeoutError, TypeError, BadBody):
            await ws.close(code=4400, message=b"expected a hello frame first")
            return None
        if not isinstance(first, dict) or first.get("type") != "hello":
            await ws.close(code=4400, message=b"expected a hello frame first")
            return None
        claimed = first.get("visitor_id")
        visitor_id = claimed if isinstance(claimed, str) and VISITOR_ID.match(claimed) else new_visitor_id()
        identity, verified, why = self._identity(visitor_id, first.get("identity"))
        raw_profile, raw_claim = first.get("profile"), first.get("identity")
        profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
        claim: dict[str, Any] = raw_claim if verified and isinstance(raw_claim, dict) else {}
        visitor = Visitor(
            visitor_id, identity, verified,
            name=_short(claim.get("name")) or _short(profile.get("name")),
            email=_short(profile.get("email")),
            page=_short(first.get("page"), 500),
        )
        if not verified and not await self.chat_sink.is_customer(identity):
            refused = self.new_visitors.admit(request.remote or "")
            if refused is not None:
                which, wait = refused
                self.chat_sink.metrics.webchat_refused.labels(f"new_visitors_{which}").inc()
                await ws.send_json({"type": "error", "code": "too_many_new_chats", "retry_after": wait,
                                    "reason": f"Too many new chats are starting right now. Try again in {wait} s."})
                await ws.close(code=1013, message=b"too many new chats; try again later")
                return None
        if not self.sockets.add(str(identity), ws):
            self.chat_sink.metrics.webchat_refused.labels("tabs").inc()
            await ws.send_json({"type": "error", "code": "too_many_tabs",
                                "reason": f"at most {self.settings.max_sockets_per_visitor} open chats per visitor"})
            await ws.close(code=4429, message=b"too many open chats")
            return None
        history = await self.chat_sink.history(identity, self.name, self.settings.history_limit)
        last = history[-1][0].conversation_id if history else None
        await ws.send_json({
            "type": "welcome",
            "visitor_id": visitor_id,
            "verified": verified,
            "identity_error": why,
            "history": [visitor_json(m, agent) for m, agent in history],
            # the latest conversation, when it has been resolved since: the widget says so
            "resolved": last if last is not None and await self.chat_sink.is_resolved(last) else None,
        })
        return visitor

    def _identity(self, visitor_id: str, claim: Any) -> tuple[Identity, bool, str | None]:
        """The identity this visitor writes as: the signed one if its signature checks out, else anonymous."""
        anonymous = Identity("webchat", visitor_id)
        if not claim:
            return anonymous, False, None
        if not isinstance(claim, dict):
            return anonymous, False, "identity must be an object"
        secret = self.settings.identity_secret
        if not secret:
            return anonymous, False, "this hub does not accept signed identities (channels.webchat.identity_secret)"
        user_id, email, user_hash = claim.get("user_id"), claim.get("email"), claim.get("user_hash")
        value = str(user_id) if user_id not in (None, "") else (email if isinstance(email, str) else "")
        if not value or not isinstance(user_hash, str):
            return anonymous, False, "a signed identity needs user_id or email, and user_hash"
        if not hmac.compare_digest(sign_identity(secret, value).encode(), user_hash.strip().lower().encode()):
            log.warning("web chat visitor %s sent a badly signed identity; kept anonymous", visitor_id)
            return anonymous, False, "user_hash does not match: the visitor stays anonymous"
        try:
            if user_id not in (None, ""):
                if not USER_ID.match(value):
                    return anonymous, False, "user_id may use letters, digits and . _ : @ - (at most 100)"
                return normalize("webchat", "u." + value), True, None
            return normalize("email", value, self.region), True, None
        except IdentityError as e:
            return anonymous, False, str(e)

    async def _on_frame(self, ws: web.WebSocketResponse, v: Visitor, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message":
            await self._on_message(ws, v, data)
        elif kind == "typing":
            now = time.monotonic()
            typing = bool(data.get("typing"))
            if typing and now - v.last_typing < TYPING_EVERY:
                return  # a burst of keystrokes is one "typing" for the console
            v.last_typing = now if typing else 0.0
            await self.chat_sink.customer_typing(self.name, v.identity, typing)
        elif kind == "profile":
            v.name = _short(data.get("name")) or v.name
            v.email = _short(data.get("email")) or v.email
        elif kind == "ping":
            await ws.send_json({"type": "pong"})
        elif kind == "file":
            await self._send_file(ws, v, data.get("id"))
        else:
            await ws.send_json({"type": "error", "code": "unknown_type", "reason": f"unknown frame type {kind!r}"})

    async def _on_message(self, ws: web.WebSocketResponse, v: Visitor, data: dict[str, Any]) -> None:
        client_id, text = data.get("client_id"), data.get("text")

        async def refuse(code: str, reason: str, **extra: Any) -> None:
            await ws.send_json({"type": "error", "code": code, "reason": reason, "client_id": client_id, **extra})

        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            return await refuse("bad_message", "client_id must be 8-64 letters, digits, _ or -")
        files, why = self._files(data.get("files"))
        if why:
            return await refuse("bad_file", why)
        rating, why = _rating(data.get("rating"))
        if why:
            return await refuse("bad_message", why)
        if text is None and files:
            text = ""
        if not isinstance(text, str) or (not text.strip() and not files):
            return await refuse("bad_message", "text is empty")
        if len(text) > self.settings.max_message_chars:
            return await refuse("too_long", f"messages are at most {self.settings.max_message_chars} characters")
        limit = self._limits.setdefault(str(v.identity), Bucket(self.settings.messages_per_minute))
        wait = limit.take()
        if wait:
            return await refuse("rate_limited", "slow down a little", retry_after=round(wait, 1))
        if len(self._limits) > 50_000:
            self._limits.clear()
        meta: dict[str, Any] = {"webchat": {"visitor_id": v.visitor_id, "client_id": client_id,
                                            "verified": v.verified}}
        if v.page:
            meta["webchat"]["page"] = v.page
        if not v.verified and (v.name or v.email):
            # Typed into the pre-chat form, so unverified: shown to agents, never used to merge customers.
            meta["prechat"] = {"name": v.name, "email": v.email}
        if rating is not None:
            # The widget's score buttons: an explicit answer, wherever the visitor's conversation is now.
            meta[ANSWER_META] = rating
        if data.get("offline") is True:
            # Left in the offline form (nobody available, or outside hours): the agent answers when back.
            meta["webchat"]["offline"] = True
        inbound = Inbound(channel=self.name, identity=v.identity, text=text.strip(),
                          external_id=f"{v.visitor_id}:{client_id}", name=v.name, meta=meta, attachments=files)
        # The journal keeps the frame without the files' bytes (they are stored with the message).
        raw_frame = {**data, "files": [{"name": f.filename, "type": f.content_type, "size": len(f.data or b"")}
                                       for f in files]} if files else data
        try:
            result = await self.sink.ingest(inbound, raw={"visitor_id": v.visitor_id, "frame": raw_frame})
        except IngestFailed:
            await ws.send_json({"type": "ack", "client_id": client_id, "message": None})  # journaled: durable
            return None
        except Exception:
            log.exception("web chat message from %s could not be stored", v.visitor_id)
            return await refuse("unavailable", "the message could not be saved; it will be retried", retry_after=5)
        out = visitor_json(result.message, None)
        await ws.send_json({"type": "ack", "client_id": client_id, "message": out})
        if not result.duplicate:
            # The visitor's other tabs, here and in other hub processes, show what this one sent.
            frame = {"type": "message", "message": out}
            await self.sockets.deliver(str(v.identity), frame, skip=ws)
            await self.chat_sink.publish(Event(DELIVER_EVENT, {
                "conversation_id": result.message.conversation_id, "to": str(v.identity), "payload": frame,
                "origin": self.node,
            }))
        return None

    def _files(self, raw: Any) -> tuple[list[AttachmentIn], str | None]:
        """A message frame's files ([{"name", "type", "data" (base64)}]), or why they are refused."""
        if raw in (None, []):
            return [], None
        if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
            return [], "files must be a list of {name, type, data}"
        if not self.max_file_bytes:
            return [], "this chat does not accept files"
        if len(raw) > MAX_FILES:
            return [], f"at most {MAX_FILES} files per message"
        files = []
        for f in raw:
            name, kind, data = f.get("name"), f.get("type") or "application/octet-stream", f.get("data")
            if not isinstance(name, str) or not name.strip() or not isinstance(data, str) or not isinstance(kind, str):
                return [], "each file needs a name and its data (base64)"
            if len(data) > self.max_file_bytes * 4 // 3 + 4:
                return [], f"{_short(name, 80)} is larger than {_size(self.max_file_bytes)}"
            try:
                content = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return [], f"{_short(name, 80)} could not be read (data must be base64)"
            if len(content) > self.max_file_bytes:
                return [], f"{_short(name, 80)} is larger than {_size(self.max_file_bytes)}"
            if not CONTENT_TYPE.match(kind):
                kind = "application/octet-stream"
            files.append(AttachmentIn(filename=_filename(name), content_type=kind.lower(), data=content))
        return files, None

    async def _send_file(self, ws: web.WebSocketResponse, v: Visitor, attachment_id: Any) -> None:
        """A file of this visitor's chat, either way, as a frame the widget turns into a download."""
        found = None
        if isinstance(attachment_id, int) and not isinstance(attachment_id, bool):
            found = await self.chat_sink.customer_file(v.identity, self.name, attachment_id)
        if found is None:
            await ws.send_json({"type": "error", "code": "no_file", "reason": "that file is not in this chat",
                                "id": attachment_id})
            return
        filename, content_type, data = found
        await ws.send_json({"type": "file", "id": attachment_id, "filename": filename, "content_type": content_type,
                            "data": base64.b64encode(data).decode()})

    async def _resolved(self, conversation: Any) -> None:
        """Tell the visitor's open tabs (held here) that their conversation is resolved."""
        if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), int):
            return
        messages = await self.chat_sink.thread_messages(conversation["id"], self.name)
        for identity in {m.identity for m in messages if m.direction == "in" and m.identity}:
            await self.sockets.deliver(identity, {"type": "resolved", "conversation_id": conversation["id"],
                                                  "at": conversation.get("resolved_at")})

    # -- the agent side ---------------------------------------------------------------------------------------

    def parse(self, payload: Any) -> Inbound:
        raise ValueError("web chat messages arrive over the visitor's WebSocket, not as provider payloads")

    async def send(self, outbound: Outbound) -> SendResult:
        if outbound.to.kind not in self.identity_kinds:
            raise SendError(f"web chat cannot reach a {outbound.to.kind} identity", permanent=True)
        agent = await self.chat_sink.agent_name(outbound.message_id)
        files = await self.chat_sink.outgoing_attachments(outbound.message_id)
        message: dict[str, Any] = {
            "id": outbound.message_id, "client_id": None, "direction": "out", "text": outbound.text,
            "created_at": format_time(utcnow()), "agent_name": agent,
            "attachments": [{"id": fid, "filename": name} for fid, name in files],
        }
        survey = outbound.meta.get("csat")
        if isinstance(survey, dict) and survey.get("question"):
            message["survey"] = survey.get("survey")  # the widget shows the score buttons under it
        payload = {"type": "message", "message": message}
        delivered = await self.sockets.deliver(str(outbound.to), payload)
        # Tabs held by other hub processes get it through the bus; they mark it delivered by this id. Nobody
        # connected anywhere: the reply waits on the visitor's history for their next visit.
        external_id = f"out:{outbound.message_id}"
        await self.chat_sink.publish(Event(DELIVER_EVENT, {
            "conversation_id": outbound.conversation_id, "to": str(outbound.to), "payload": payload,
            "origin": self.node, "external_id": external_id, "delivered": bool(delivered),
        }))
        return SendResult(external_id=external_id, status="delivered" if delivered else "sent")

    async def agent_typing(self, request: web.Request) -> web.Response:
        """POST /api/v1/webchat/typing {"conversation_id", "typing"}: show the visitor that an agent is typing."""
        principal = request[PRINCIPAL]
        body = await read_json(request, TypingBody)
        conv_id, typing = body.conversation_id, body.typing
        ident, agent, customer_id = await self.chat_sink.typing_target(principal, conv_id, self.name)
        if ident is None:
            return error(404, f"conversation {conv_id} has no web chat visitor")
        n = await self.sockets.deliver(ident, {"type": "typing", "typing": typing, "agent_name": agent})
        # For the console (others see who is typing) and for the visitor's tabs held by other hub processes.
        await self.chat_sink.publish(Event("typing", {
            "conversation_id": conv_id, "customer_id": customer_id, "channel": self.name, "who": "agent",
            "agent_id": principal.agent_id, "agent_name": agent, "typing": typing, "to": ident, "origin": self.node,
        }))
        return web.json_response({"delivered": n})


def _size(n: int) -> str:
    return f"{n / 1_000_000:.0f} MB" if n >= 1_000_000 else f"{max(1, n // 1000)} kB"


def _filename(name: str) -> str:
    """The base name, without path or control characters, at most 200 characters."""
    base = re.split(r"[\\/]", name.strip())[-1]
    return "".join(ch for ch in base if ch.isprintable())[:200] or "file"


def _short(value: Any, most: int = 200) -> str | None:
    return value.strip()[:most] or None if isinstance(value, str) else None

