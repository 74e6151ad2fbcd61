"""REST API for campaigns (admins and supervisors): list, create (now or scheduled), preview, a test send to
yourself, progress and results, the recipients with each one's outcome, cancel."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api.auth import PRINCIPAL
from hub.api.errors import read_json
from hub.api.params import limit, path_id, whole_number
from hub.campaigns import campaign_store, templates
from hub.campaigns.campaign_store import CampaignBody, Candidate, rendered
from hub.campaigns.render import TemplateError, check
from hub.campaigns.templates import TemplateChoice
from hub.channels.base import APPROVED, SendError
from hub.history import store
from hub.history.db import Tx
from hub.identities import parse
from hub.keys import CAMPAIGNS, DB, OUTBOX, SETTINGS
from hub.model import CHANNEL_IDENTITY_KIND, format_time, utcnow
from hub.outbox import ReplyError

MANAGERS = ("admin", "supervisor")


async def _manager(request: web.Request) -> None:
    p = request[PRINCIPAL]
    role = p.role
    if role == "agent" and p.agent_id is not None:  # an agent token acts with its agent's role
        row = await request.app[DB].read(lambda tx: tx.one("SELECT role FROM agents WHERE id = ?", (p.agent_id,)))
        role = str(row["role"]) if row else role
    if role not in MANAGERS:
        raise web.HTTPForbidden(text="campaigns are for admins and supervisors")


def _configured(request: web.Request, channel: str) -> None:
    if channel not in request.app[OUTBOX].channels:
        configured = ", ".join(c for c in campaign_store.CHANNELS if c in request.app[OUTBOX].channels) or "none"
        raise web.HTTPUnprocessableEntity(text=f"channel {channel} is not configured on this hub "
                                               f"(campaign channels configured: {configured})")


def _with_results(tx: Tx, c: campaign_store.Campaign) -> dict[str, Any]:
    return c.to_json() | {"results": campaign_store.results(tx, c)}


async def _templated(request: web.Request, body: CampaignBody) -> str:
    """Fill in a template campaign's text from its approved template (asked of the provider); returns the
    template's name ("" without one). 422 when it cannot be sent, 502 when the provider cannot be asked."""
    if body.template is None:
        return ""
    try:
        found = await templates.fetch(request.app[OUTBOX].channels.get(body.channel), body.template.sid)
        body.text = templates.campaign_text(found, body.template)
    except templates.Refused as e:
        raise web.HTTPUnprocessableEntity(text=str(e)) from None
    except templates.Unavailable as e:
        raise web.HTTPBadGateway(text=str(e)) from None
    return found.name


async def list_templates(request: web.Request) -> web.Response:
    """The WhatsApp templates of the account, with their variables and approval status, for a campaign to send."""
    await _manager(request)
    return web.json_response({"items": await template_items(request)})


async def template_items(request: web.Request) -> list[dict[str, Any]]:
    """The account's WhatsApp templates as the API lists them (for campaigns, and for agents' conversations):
    422 when WhatsApp is not configured or Twilio refuses, 502 when it cannot be reached."""
    try:
        found = await templates.source(request.app[OUTBOX].channels.get("whatsapp")).templates()
    except templates.Refused as e:
        raise web.HTTPUnprocessableEntity(text=str(e)) from None
    except SendError as e:
        raise (web.HTTPUnprocessableEntity if e.permanent else web.HTTPBadGateway)(text=e.reason) from None
    return [t.to_json() | {"slots": templates.slots(t), "sendable": t.approval == APPROVED} for t in found]


async def list_campaigns(request: web.Request) -> web.Response:
    await _manager(request)

    def read(tx: Tx) -> list[dict[str, Any]]:
        return [_with_results(tx, c) for c in campaign_store.listing(tx)]

    return web.json_response({"items": await request.app[DB].read(read)})


async def create_campaign(request: web.Request) -> web.Response:
    await _manager(request)
    body = await read_json(request, CampaignBody)
    _configured(request, body.channel)
    template_name = await _templated(request, body)
    settings = request.app[SETTINGS].campaigns
    listed = body.listed()
    if listed is not None and not listed:
        raise web.HTTPUnprocessableEntity(text="the list holds no identities")
    if listed is not None and len(listed) > settings.max_recipients:
        raise web.HTTPUnprocessableEntity(text=f"the list has {len(listed)} identities, more than "
                                               f"{settings.max_recipients} (campaigns.max_recipients)")
    now = format_time(utcnow())
    agent = request[PRINCIPAL].agent_id

    def write(tx: Tx) -> dict[str, Any]:
        try:
            made = campaign_store.create(tx, body, settings.rate(body.channel), agent, now, settings.max_recipients,
                                         template_name)
        except ValueError as e:
            raise web.HTTPUnprocessableEntity(text=str(e)) from None
        return _with_results(tx, made)

    made = await request.app[DB].write(write)
    request.app[CAMPAIGNS].wake.set()
    return web.json_response(made, status=201)


async def get_campaign(request: web.Request) -> web.Response:
    await _manager(request)
    cid = path_id(request)
    return web.json_response(await request.app[DB].read(lambda tx: _with_results(tx, campaign_store.get(tx, cid))))


async def campaign_recipients(request: web.Request) -> web.Response:
    await _manager(request)
    cid = path_id(request)
    after = whole_number(request.query.get("after", "0"), "after")
    size = limit(request)

    def read(tx: Tx) -> tuple[list[dict[str, Any]], int | None]:
        return campaign_store.recipients(tx, campaign_store.get(tx, cid), after, size)

    items, nxt = await request.app[DB].read(read)
    return web.json_response({"items": items, "next": nxt})


async def cancel_campaign(request: web.Request) -> web.Response:
    """Stop a campaign: nobody not yet written to gets it (messages already in the outbox still go out)."""
    await _manager(request)
    cid = path_id(request)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        c = campaign_store.get(tx, cid, lock=True)
        if not campaign_store.finish(tx, cid, "cancelled", now):
            raise web.HTTPConflict(text=f"campaign {cid} is {c.status}; only a scheduled or running one can be "
                                        "cancelled")
        return _with_results(tx, campaign_store.get(tx, cid))

    return web.json_response(await request.app[DB].write(write))


async def preview(request: web.Request) -> web.Response:
    """What a campaign not saved yet would send: its first recipients' texts, who is skipped and why, the counts."""
    await _manager(request)
    body = await read_json(request, CampaignBody)
    await _templated(request, body)
    settings = request.app[SETTINGS]
    adapter = request.app[OUTBOX].channels.get(body.channel)
    # A template may go outside the session window; a free-form text, like the sender's, may not.
    window = adapter.capabilities.session_window_hours if adapter is not None and body.template is None else None
    now = format_time(utcnow())

    def read(tx: Tx) -> dict[str, Any]:
        try:
            return campaign_store.preview(tx, body, settings.identities.default_region,
                                          settings.campaigns.max_recipients, now, window)
        except ValueError as e:  # over campaigns.max_recipients
            raise web.HTTPUnprocessableEntity(text=str(e)) from None

    return web.json_response(await request.app[DB].read(read))


class TestSendBody(BaseModel):
    """A campaign's text sent to yourself: to your agent email (email) or phone (SMS, WhatsApp), or TO. With a
    template (WhatsApp), the template itself, with your values."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=32)
    text: str | None = Field(None, min_length=1, max_length=4000, description="left out with a template")
    template: TemplateChoice | None = Field(None, description="WhatsApp: the approved template to send")
    subject: str | None = Field(None, max_length=200)
    to: str | None = Field(None, max_length=330, description="kind:value; default: your own email or phone")

    @model_validator(mode="after")
    def _one(self) -> TestSendBody:
        if (self.text is None) == (self.template is None):
            raise ValueError("give a text or (on whatsapp) a template, not both")
        if self.template is not None and self.channel != "whatsapp":
            raise ValueError("a template is sent on whatsapp only")
        return self


async def test_send(request: web.Request) -> web.Response:
    await _manager(request)
    body = await read_json(request, TestSendBody)
    if body.channel not in campaign_store.CHANNELS:
        raise web.HTTPUnprocessableEntity(text=f"channel is one of {', '.join(campaign_store.CHANNELS)}")
    _configured(request, body.channel)
    found = None
    if body.template is not None:
        try:
            found = await templates.fetch(request.app[OUTBOX].channels.get(body.channel), body.template.sid)
        except templates.Refused as e:
            raise web.HTTPUnprocessableEntity(text=str(e)) from None
        except templates.Unavailable as e:
            raise web.HTTPBadGateway(text=str(e)) from None
    try:
        if body.text is not None:
            check(body.text)
        if body.subject:
            check(body.subject)
    except TemplateError as e:
        raise web.HTTPUnprocessableEntity(text=str(e)) from None
    settings = request.app[SETTINGS]
    wanted = CHANNEL_IDENTITY_KIND[body.channel]
    agent_id = request[PRINCIPAL].agent_id
    outbox = request.app[OUTBOX]
    now = format_time(utcnow())

    def write(tx: Tx) -> int:
        raw = body.to
        if raw is None and agent_id is not None:
            me = tx.one("SELECT name, email, phone FROM agents WHERE id = ?", (agent_id,))
            own = {"email": me["email"], "phone": me["phone"]} if me else {}
            raw = f"{wanted}:{own[wanted]}" if own.get(wanted) else None
        if raw is None:
            raise web.HTTPUnprocessableEntity(text=f"give `to` ({wanted}:...): you have no {wanted} of your own "
                                                   "on your agent profile")
        ident = parse(raw, settings.identities.default_region)
        if ident.kind != wanted:
            article = "an" if ident.kind[0] in "aeiou" else "a"
            raise web.HTTPUnprocessableEntity(text=f"{article} {ident.kind} identity cannot be reached on "
                                                   f"{body.channel}")
        customer_id, _ = store.resolve_identity(tx, ident, None, now)
        who = campaign_store.candidate(tx, customer_id, str(ident))
        # Your own profile may lack the variables: a test shows each fallback, or the variable's name.
        sample = Candidate(customer_id, str(ident), who.name or "Sam Sample", who.attributes)
        meta: dict[str, Any] = {"automatic": True, "campaign_test": True}
        if body.subject:
            meta["email"] = {"subject": _sample(body.subject, sample)}
        if found is not None and body.template is not None:
            # The template itself, as the campaign will send it, with your values: WhatsApp sends only its body
            # (no "[test]" before it), so the message is marked a test instead.
            choice = body.template.model_copy(update={"variables": {
                k: _sample(v, sample) for k, v in body.template.variables.items()}})
            try:
                text, values = templates.for_one(found, choice, sample.profile())
            except templates.Refused as e:
                raise web.HTTPUnprocessableEntity(text=str(e)) from None
            meta["template"] = {"sid": found.sid, "name": found.name, "variables": values}
        else:
            text = "[test] " + _sample(body.text or "", sample)
        conv, _ = store.record_without_routing(tx, customer_id, body.channel, settings.routing.default_queue, None,
                                               now)
        return outbox.queue_reply(tx, conv.id, text, body.channel, meta=meta, to=ident)

    try:
        message_id = await request.app[DB].write(write)
    except ReplyError as e:
        raise web.HTTPUnprocessableEntity(text=str(e)) from None
    outbox.wake()
    msg = await request.app[DB].read(lambda tx: store.message(tx, message_id))
    return web.json_response({"message": msg.to_json()}, status=201)


def _sample(text: str, who: Candidate) -> str:
    out, _ = rendered(text, who)
    if out is not None:
        return out
    # A variable with no value and no fallback: shown by name, so the test says what a recipient would need.
    return re.sub(r"\{\{\s*([\w.]+)[^}]*\}\}", lambda m: rendered(m.group(0), who)[0] or f"[{m.group(1)}]", text)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/campaigns", list_campaigns),
        web.post("/api/v1/campaigns", create_campaign),
        web.post("/api/v1/campaigns/preview", preview),
        web.post("/api/v1/campaigns/test", test_send),
        web.get("/api/v1/campaigns/templates", list_templates),
        web.get(r"/api/v1/campaigns/{id:\d+}", get_campaign),
        web.get(r"/api/v1/campaigns/{id:\d+}/recipients", campaign_recipients),
        web.post(r"/api/v1/campaigns/{id:\d+}/cancel", cancel_campaign),
    ]
