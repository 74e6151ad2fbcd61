"""REST API handlers, /api/v1: customers, timelines, conversations, replies. Every route needs a bearer token."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from hub import downloads, event_log, fail_points, mentions, visibility
from hub.api.auth import PRINCIPAL, Principal, require_admin
from hub.api.errors import BadBody, read_json
from hub.api.params import limit, path_id, query_id
from hub.api.profile_routes import attribute_values
from hub.api.schemas import MergeBody, ReplyBody, ResolveBody
from hub.campaigns import campaign_store, templates
from hub.campaigns.render import Profile
from hub.campaigns.templates import TemplateChoice
from hub.channels.base import Channel
from hub.csat import surveys as csat_surveys
from hub.events import Event
from hub.history import store
from hub.history.db import Tx
from hub.history.merge import merge_customers
from hub.identities import IdentityError, parse
from hub.inbox import labels
from hub.keys import BUS, DB, OUTBOX, ROUTER, SETTINGS
from hub.model import AttachmentIn, Conversation, Message, format_time, utcnow
from hub.outbox import ReplyError, outside_window, recipient, session_window

STATUSES = ("open", "assigned", "snoozed", "resolved")
#: the channel an approved template goes out on when the request names none
TEMPLATE_CHANNEL = "whatsapp"


def _int(request: web.Request, name: str) -> int:
    return path_id(request, name)


def _limit(request: web.Request, default: int = 50, most: int = 200) -> int:
    return limit(request, default, most)


def _scope(p: Principal) -> tuple[tuple[str, ...] | None, int | None]:
    """The visibility rule's arguments for the store's list and search queries: None, None for an admin."""
    return (None, None) if visibility.sees_everything(p) else (p.queues, p.agent_id)


async def list_customers(request: web.Request) -> web.Response:
    p = request[PRINCIPAL]
    db = request.app[DB]
    region = request.app[SETTINGS].identities.default_region
    ident_q, text_q = request.query.get("identity"), request.query.get("q")
    if not ident_q and not text_q:
        raise web.HTTPBadRequest(text="pass ?identity=kind:value or ?q=text")
    limit = _limit(request)
    try:
        wanted = parse(ident_q, region) if ident_q else None
    except IdentityError as e:
        raise BadBody(400, f"identity: {e}") from None

    def find(tx: Tx) -> list[dict[str, Any]]:
        if wanted is not None:
            cid = store.customer_by_identity(tx, wanted)
            found = [store.customer(tx, cid)] if cid is not None and visibility.sees_customer(tx, p, cid) else []
        else:
            found = store.search_customers(tx, text_q or "", limit, *_scope(p))
        return [c.to_json() for c in found]

    return web.json_response({"items": await db.read(find)})


async def get_customer(request: web.Request) -> web.Response:
    p, cid = request[PRINCIPAL], _int(request, "id")

    def load(tx: Tx) -> dict[str, Any]:
        c = store.customer(tx, cid)
        if not visibility.sees_customer(tx, p, cid):
            raise visibility.hidden("customer", cid)
        out = c.to_json() | {"attributes": attribute_values(tx, cid)}
        out["labels"] = labels.of(tx, "customer", cid)
        convs, _ = store.list_conversations(tx, None, None, None, cid, None, None, 20, None)
        out["conversations"] = [cv.to_json() for cv in convs]
        return out

    return web.json_response(await request.app[DB].read(load))


async def timeline(request: web.Request) -> web.Response:
    p, cid = request[PRINCIPAL], _int(request, "id")
    limit, cursor = _limit(request), request.query.get("cursor")
    order = request.query.get("order", "asc")
    if order not in ("asc", "desc"):
        raise web.HTTPBadRequest(text="order must be asc (oldest first) or desc (newest first)")

    def load(tx: Tx) -> dict[str, Any]:
        store.customer(tx, cid)
        if not visibility.sees_customer(tx, p, cid):
            raise visibility.hidden("customer", cid)
        try:
            items, nxt = store.timeline(tx, cid, limit, cursor, newest_first=order == "desc")
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        return {"items": [m.to_json() for m in items], "next": nxt}

    return web.json_response(await request.app[DB].read(load))


async def merge(request: web.Request) -> web.Response:
    p = require_admin(request)
    survivor = _int(request, "id")
    body = await read_json(request, MergeBody)
    now = format_time(utcnow())
    db = request.app[DB]
    event_id = await db.write(lambda tx: merge_customers(tx, survivor, body.customer_id, now, p.agent_id))
    result = await db.read(lambda tx: (store.customer(tx, survivor), store.message(tx, event_id)))
    await request.app[BUS].publish(
        Event("customer.merged", {"customer": result[0].to_json(), "merged_customer_id": body.customer_id})
    )
    return web.json_response({"customer": result[0].to_json(), "event": result[1].to_json()})


async def list_conversations(request: web.Request) -> web.Response:
    p: Principal = request[PRINCIPAL]
    status = request.query.get("status")
    if status and status not in STATUSES:
        raise web.HTTPBadRequest(text=f"status must be one of {', '.join(STATUSES)}")
    agent, customer = query_id(request, "agent"), query_id(request, "customer")
    limit, cursor = _limit(request), request.query.get("cursor")

    def load(tx: Tx) -> dict[str, Any]:
        try:
            items, nxt = store.list_conversations(
                tx, status, request.query.get("queue"), agent, customer,
                *_scope(p), limit, cursor,
            )
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        return {"items": [c.to_json() for c in items], "next": nxt}

    return web.json_response(await request.app[DB].read(load))


def _windows(tx: Tx, channels: Mapping[str, Channel], customer_id: int, now: str) -> list[dict[str, Any]]:
    """Each configured channel with a session window (WhatsApp's 24 hours): when the customer's closes, or that it
    has, so the console can say so before the agent writes."""
    out = []
    for name, adapter in sorted(channels.items()):
        hours = adapter.capabilities.session_window_hours
        if hours is None:
            continue
        last, closes = session_window(tx, customer_id, name, hours)
        out.append({"channel": name, "hours": hours, "last_inbound_at": last, "closes_at": closes,
                    "open": outside_window(tx, customer_id, name, hours, now) is None})
    return out


async def get_conversation(request: web.Request) -> web.Response:
    p, conv_id = request[PRINCIPAL], _int(request, "id")
    now = format_time(utcnow())

    def load(tx: Tx) -> dict[str, Any]:
        c = store.conversation(tx, conv_id)
        if not visibility.sees_customer(tx, p, c.customer_id):
            raise visibility.hidden("conversation", conv_id)
        out = c.to_json()
        out["customer"] = store.customer(tx, c.customer_id).to_json()
        out["messages"] = [m.to_json() for m in store.conversation_messages(tx, conv_id)]
        out["labels"] = event_log.labels(tx, conv_id)  # by agents, rules and bots
        out["customer"]["labels"] = labels.of(tx, "customer", c.customer_id)
        snooze = tx.one("SELECT snoozed_until, snoozed_by FROM conversations WHERE id = ?", (conv_id,))
        out["snooze"] = ({"until": snooze["snoozed_until"], "owner": snooze["snoozed_by"]}
                         if snooze and c.status == "snoozed" else None)
        prio = tx.one("SELECT priority FROM conversations WHERE id = ?", (conv_id,))
        out["priority"] = int(prio["priority"]) if prio else 0
        survey = csat_surveys.of_conversation(tx, conv_id)
        out["csat"] = survey.summary() if survey is not None else None
        out["session_windows"] = _windows(tx, request.app[OUTBOX].channels, c.customer_id, now)
        return out

    return web.json_response(await request.app[DB].read(load))


async def check_conversation(request: web.Request, conv_id: int) -> None:
    """Refuse, unless the principal may act on the conversation: 404 if they cannot even see it, 403 if they see
    it (its customer is theirs) but it is another queue's work."""
    p = request[PRINCIPAL]

    def load(tx: Tx) -> tuple[Conversation, bool]:
        c = store.conversation(tx, conv_id)
        return c, visibility.sees_customer(tx, p, c.customer_id)

    c, seen = await request.app[DB].read(load)
    if not seen:
        raise visibility.hidden("conversation", conv_id)
    if not visibility.may_act(p, c.queue, c.agent_id):
        raise web.HTTPForbidden(text=f"conversation {conv_id} is queue {c.queue}'s work: replying, resolving and "
                                     "transferring stay with that queue and its agent")


async def post_message(request: web.Request) -> web.Response:
    conv_id = _int(request, "id")
    settings = request.app[SETTINGS]
    # Files travel base64-encoded (4/3 of their size) on top of an ordinary body.
    limit = settings.server.max_body_bytes + settings.outbox.max_attachment_bytes * 4 // 3 + 4096
    body = await read_json(request, ReplyBody, max_bytes=limit)
    await check_conversation(request, conv_id)
    files = []
    for a in body.attachments:
        try:
            files.append(AttachmentIn(a.filename, a.content_type, base64.b64decode(a.data_base64, validate=True)))
        except (binascii.Error, ValueError):
            raise BadBody(422, f"attachment {a.filename!r}: data_base64 is not valid base64") from None
    if body.template is not None:
        msg = await send_template(request, conv_id, body.template, body.channel)
        return web.json_response(msg.to_json(), status=201)
    if not body.note:
        msg = await send_reply(request, conv_id, body.text, body.channel, files, body.reply_all)
        return web.json_response(msg.to_json(), status=201)
    author = request[PRINCIPAL].agent_id
    named: tuple[list[int], list[str]] = ([], [])

    def mention(tx: Tx, note_id: int) -> None:  # in the note's transaction: a note and its mentions, or neither
        nonlocal named
        named = mentions.record(tx, note_id, body.text, author, format_time(utcnow()))

    msg = await request.app[OUTBOX].reply(conv_id, body.text, agent_id=author, note=True, attachments=files,
                                          also=mention)
    written = await request.app[DB].read(lambda tx: mentions.of_message(tx, msg.id))
    for m in written:  # the mentioned agent's console shows it at once; their Mentions list has it after a reload
        await request.app[BUS].publish(Event("mention.created", {"mention": m, "agent_id": m["agent_id"],
                                                                 "conversation_id": conv_id}))
    return web.json_response(msg.to_json() | {"mentioned": named[0], "not_mentioned": named[1]}, status=201)


async def send_reply(request: web.Request, conv_id: int, text: str, channel: str | None = None,
                     files: list[AttachmentIn] | None = None, reply_all: bool = False) -> Message:
    """An agent's reply to the customer, as POST .../messages and a macro's reply send it: claimed on the first
    reply when nobody holds the conversation (console.claim_on_first_reply)."""
    await check_conversation(request, conv_id)
    author = request[PRINCIPAL].agent_id
    msg = await request.app[OUTBOX].reply(conv_id, text, channel=channel, agent_id=author, attachments=files or [],
                                          reply_all=reply_all)
    await request.app[ROUTER].claim_after_reply(conv_id, author)
    return msg


async def template_message(request: web.Request, conv_id: int, choice: TemplateChoice,
                           channel: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """(channel, the text the customer reads, the message's meta) of an approved template sent in a conversation,
    checked as a campaign's is (approved, every variable given) and filled with the customer's profile: 422 with
    the reason when it cannot be sent, 502 when the provider cannot be asked."""
    name = channel or TEMPLATE_CHANNEL
    outbox = request.app[OUTBOX]

    def profile(tx: Tx) -> Profile:
        conv = store.conversation(tx, conv_id)
        to = recipient(tx, conv.id, conv.customer_id, name)
        return campaign_store.candidate(tx, conv.customer_id, str(to)).profile()

    try:
        found = await templates.fetch(outbox.channels.get(name), choice.sid)
        text, values = templates.for_one(found, choice, await request.app[DB].read(profile))
    except (templates.Refused, ReplyError) as e:
        raise web.HTTPUnprocessableEntity(text=str(e)) from None
    except templates.Unavailable as e:
        raise web.HTTPBadGateway(text=str(e)) from None
    return name, text, {"template": {"sid": found.sid, "name": found.name, "variables": values}}


async def send_template(request: web.Request, conv_id: int, choice: TemplateChoice,
                        channel: str | None = None) -> Message:
    """An agent's approved template, through the outbox like any reply: the channel sends ContentSid and
    ContentVariables, the timeline shows the text it reads. Allowed outside the session window, which it does not
    reopen: only the customer's answer does."""
    await check_conversation(request, conv_id)
    name, text, meta = await template_message(request, conv_id, choice, channel)
    author = request[PRINCIPAL].agent_id
    msg = await request.app[OUTBOX].reply(conv_id, text, channel=name, agent_id=author, meta=meta)
    await request.app[ROUTER].claim_after_reply(conv_id, author)
    return msg


async def resolve(request: web.Request) -> web.Response:
    conv_id = _int(request, "id")
    body = await read_json(request, ResolveBody) if request.body_exists else ResolveBody()
    return web.json_response(await resolve_conversation(request, conv_id, body.note))


async def resolve_conversation(request: web.Request, conv_id: int, note: str | None = None) -> dict[str, Any]:
    """Resolve, as POST .../resolve and a macro's resolve do it: in the store, then routing frees the agent."""
    await check_conversation(request, conv_id)
    p = request[PRINCIPAL]
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        before = store.conversation(tx, conv_id)
        if before.status == "resolved":
            raise web.HTTPConflict(text=f"conversation {conv_id} is already resolved")
        if note:
            store.insert_message(
                tx, conversation_id=conv_id, customer_id=before.customer_id, channel="hub", direction="out",
                kind="note", text=note, status="internal", agent_id=p.agent_id, now=now,
            )
        return event_log.resolve(tx, conv_id, now, agent_id=p.agent_id).to_json()

    conv: dict[str, Any] = await request.app[DB].write(write)
    await request.app[BUS].publish(Event("conversation.resolved", {"conversation": conv}))
    fail_points.hit("resolve.after_store")  # resolved in the store, still held by routing: the reconciler frees it
    await request.app[ROUTER].resolve(conv_id)  # frees the agent's capacity (after wrap-up)
    return conv


async def get_message(request: web.Request) -> web.Response:
    p, mid = request[PRINCIPAL], _int(request, "id")

    def load(tx: Tx) -> Message:
        msg = store.message(tx, mid)
        if not visibility.sees_customer(tx, p, msg.customer_id):
            raise visibility.hidden("message", mid)
        return msg

    return web.json_response((await request.app[DB].read(load)).to_json())


async def get_attachment(request: web.Request) -> web.Response:
    p, aid = request[PRINCIPAL], _int(request, "id")

    def load(tx: Tx) -> tuple[Any, bytes]:
        att, data, customer_id = store.attachment_data(tx, aid)
        if not visibility.sees_customer(tx, p, customer_id):
            raise visibility.hidden("attachment", aid)
        return att, data

    att, data = await request.app[DB].read(load)
    if att.status != "stored":
        raise web.HTTPConflict(text=f"attachment {aid} is {att.status}: {att.error or 'not fetched yet'}")
    # Customer files never run as a page of ours: download, no sniffing, sandboxed if opened.
    return downloads.file_response(data, att.filename, att.content_type)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/customers", list_customers),
        web.get(r"/api/v1/customers/{id:\d+}", get_customer),
        web.get(r"/api/v1/customers/{id:\d+}/timeline", timeline),
        web.post(r"/api/v1/customers/{id:\d+}/merge", merge),
        web.get("/api/v1/conversations", list_conversations),
        web.get(r"/api/v1/conversations/{id:\d+}", get_conversation),
        web.post(r"/api/v1/conversations/{id:\d+}/messages", post_message),
        web.post(r"/api/v1/conversations/{id:\d+}/resolve", resolve),
        web.get(r"/api/v1/messages/{id:\d+}", get_message),
        web.get(r"/api/v1/attachments/{id:\d+}", get_attachment),
    ]
