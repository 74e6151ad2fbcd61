"""Who owns a conversation, from the console or the API: "Assign to me" (a claim through the routing engine) and
Reopen (also how the console undoes Resolve). Claiming on an agent's first reply is Router.claim_after_reply."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub import event_log
from hub.api.auth import PRINCIPAL, Principal
from hub.api.routes import check_conversation
from hub.events import Event
from hub.history import store
from hub.history.db import Tx
from hub.keys import BUS, DB, ROUTER
from hub.model import format_time, utcnow
from hub.routing.service import RoutingError


def _agent(request: web.Request) -> tuple[Principal, int]:
    p: Principal = request[PRINCIPAL]
    if p.agent_id is None:
        raise web.HTTPBadRequest(text="this needs an agent's token or session (an admin token acts as no agent)")
    return p, p.agent_id


async def _conversation(request: web.Request, conv_id: int) -> dict[str, Any]:
    return (await request.app[DB].read(lambda tx: store.conversation(tx, conv_id))).to_json()


async def claim(request: web.Request) -> web.Response:
    """POST /conversations/{id}/claim: the conversation becomes the calling agent's, or 409 with the reason."""
    conv_id = int(request.match_info["id"])
    return web.json_response(await claim_conversation(request, conv_id))


async def claim_conversation(request: web.Request, conv_id: int) -> dict[str, Any]:
    """Assign to me, as POST .../claim and a macro's assign (to whoever applies it) do it."""
    _, agent = _agent(request)
    await check_conversation(request, conv_id)
    try:
        await request.app[ROUTER].claim(conv_id, agent)
    except RoutingError as e:
        raise web.HTTPConflict(text=str(e)) from None
    return await _conversation(request, conv_id)


async def reopen(request: web.Request) -> web.Response:
    """POST /conversations/{id}/reopen: a resolved conversation is open again and, for an agent, theirs again."""
    conv_id = int(request.match_info["id"])
    await check_conversation(request, conv_id)
    p: Principal = request[PRINCIPAL]
    now = format_time(utcnow())

    def write(tx: Tx) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        c = store.conversation(tx, conv_id)
        if c.status != "resolved":
            raise web.HTTPConflict(text=f"conversation {conv_id} is not resolved")
        newer = tx.one("SELECT id FROM conversations WHERE customer_id = ? AND status <> 'resolved'", (c.customer_id,))
        if newer is not None:
            raise web.HTTPConflict(text=f"the customer already has an open conversation (#{newer['id']}): "
                                        "continue there")
        tx.exec("UPDATE conversations SET status = 'open', resolved_at = NULL, agent_id = NULL, offered_to = NULL, "
                "offer_deadline = NULL, updated_at = ? WHERE id = ?", (now, conv_id))
        event_log.record(tx, "conversation.reopened", conv_id, now)  # rules and webhooks hear of it too
        who = tx.one("SELECT name FROM agents WHERE id = ?", (p.agent_id,)) if p.agent_id is not None else None
        event_id = store.insert_message(
            tx, conversation_id=conv_id, customer_id=c.customer_id, channel="hub", direction="out", kind="event",
            text=f"Reopened by {who['name']}" if who else "Reopened", status="internal", agent_id=p.agent_id,
            now=now, meta={"event": "conversation.reopened"},
        )
        return (store.conversation(tx, conv_id).to_json(), store.message(tx, event_id).to_json(),
                store.customer(tx, c.customer_id).to_json())

    conv, event, customer = await request.app[DB].write(write)
    bus = request.app[BUS]
    await bus.publish(Event("conversation.reopened", {"conversation": conv}))
    await bus.publish(Event("message.created", {"message": event, "conversation": conv, "customer": customer}))
    router = request.app[ROUTER]
    try:
        await router.reopen(conv_id, conv["queue"] or "", conv["channel"], conv["customer_id"])
    except KeyError:
        pass  # already back in routing (a customer's message reopened it a moment ago)
    reason = None
    if p.agent_id is not None:
        try:
            await router.claim(conv_id, p.agent_id)
        except RoutingError as e:
            reason = str(e)  # it waits in its queue; the console says why it is not yours
    return web.json_response(await _conversation(request, conv_id) | {"claim_refused": reason})


def routes() -> list[web.RouteDef]:
    return [
        web.post(r"/api/v1/conversations/{id:\d+}/claim", claim),
        web.post(r"/api/v1/conversations/{id:\d+}/reopen", reopen),
    ]
