"""Canned responses through the API: an agent's personal ones and the team's (admins and supervisors manage those),
listed and searched for the composer's `/` picker, and rendered for one conversation (hub/canned.py fills the
variables)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.api.auth import PRINCIPAL, Principal
from hub.api.errors import read_json
from hub.api.profile_routes import attribute_values
from hub.api.responses import RenderedCanned, answer
from hub.api.routes import check_conversation
from hub.api.schemas import CannedBody, CannedPatchBody, CannedRenderBody
from hub.canned import render
from hub.history import store
from hub.history.db import Tx
from hub.keys import DB
from hub.model import format_time, utcnow

COLUMNS = "id, agent_id, shortcut, title, body, created_at, updated_at"


def _json(row: Any) -> dict[str, Any]:
    return {"id": int(row["id"]), "scope": "team" if row["agent_id"] is None else "personal",
            "shortcut": row["shortcut"], "title": row["title"], "body": row["body"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


async def acting_role(request: web.Request) -> str:
    p: Principal = request[PRINCIPAL]
    if p.role == "agent" and p.agent_id is not None:  # an agent token acts with its agent's role
        row = await request.app[DB].read(lambda tx: tx.one("SELECT role FROM agents WHERE id = ?", (p.agent_id,)))
        return str(row["role"]) if row else p.role
    return p.role


async def _may_manage(request: web.Request, agent_id: int | None) -> None:
    """A team response: admins and supervisors. A personal one: its agent only."""
    p: Principal = request[PRINCIPAL]
    if agent_id is None:
        if await acting_role(request) not in ("admin", "supervisor"):
            raise web.HTTPForbidden(text="team canned responses are managed by admins and supervisors")
    elif agent_id != p.agent_id:
        raise web.HTTPNotFound(text="no such canned response")


def _taken(tx: Tx, shortcut: str, agent_id: int | None, not_id: int | None = None) -> None:
    row = tx.one("SELECT id FROM canned_responses WHERE shortcut = ? AND agent_id IS NOT DISTINCT FROM ? AND id <> ?"
                 if tx.dialect == "postgresql" else
                 "SELECT id FROM canned_responses WHERE shortcut = ? AND agent_id IS ? AND id <> ?",
                 (shortcut, agent_id, not_id or 0))
    if row is not None:
        raise web.HTTPConflict(text=f"/{shortcut} is already taken: choose another shortcut")


async def list_canned(request: web.Request) -> web.Response:
    """The caller's personal responses and the team's, personal first; ?q= matches shortcut, title or text."""
    p: Principal = request[PRINCIPAL]
    q = request.query.get("q", "").strip().lower()

    def load(tx: Tx) -> list[dict[str, Any]]:
        rows = tx.all(f"SELECT {COLUMNS} FROM canned_responses WHERE agent_id IS NULL OR agent_id = ? "
                      "ORDER BY agent_id IS NULL, shortcut", (p.agent_id if p.agent_id is not None else -1,))
        items = [_json(r) for r in rows]
        if q:
            items = [i for i in items if q in i["shortcut"] or q in i["title"].lower() or q in i["body"].lower()]
        return items

    return web.json_response({"items": await request.app[DB].read(load)})


async def create_canned(request: web.Request) -> web.Response:
    p: Principal = request[PRINCIPAL]
    body = await read_json(request, CannedBody)
    if body.scope == "personal" and p.agent_id is None:
        raise web.HTTPBadRequest(text="a personal canned response needs an agent's token (or scope team)")
    owner = p.agent_id if body.scope == "personal" else None
    await _may_manage(request, owner)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        _taken(tx, body.shortcut, owner)
        row = tx.one("INSERT INTO canned_responses (agent_id, shortcut, title, body, created_at, updated_at, "
                     f"updated_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}",
                     (owner, body.shortcut, body.title, body.body, now, now, p.agent_id))
        assert row is not None
        return _json(row)

    return web.json_response(await request.app[DB].write(write), status=201)


async def _existing(request: web.Request) -> Any:
    cid = int(request.match_info["id"])
    row = await request.app[DB].read(lambda tx: tx.one(f"SELECT {COLUMNS} FROM canned_responses WHERE id = ?", (cid,)))
    if row is None:
        raise web.HTTPNotFound(text="no such canned response")
    await _may_manage(request, row["agent_id"])
    return row


async def update_canned(request: web.Request) -> web.Response:
    row = await _existing(request)
    body = await read_json(request, CannedPatchBody)
    now = format_time(utcnow())
    changes = body.model_dump(exclude_none=True)

    def write(tx: Tx) -> dict[str, Any]:
        if "shortcut" in changes:
            _taken(tx, changes["shortcut"], row["agent_id"], int(row["id"]))
        sets = ", ".join(f"{k} = ?" for k in changes)
        tx.exec(f"UPDATE canned_responses SET {sets}{', ' if sets else ''}updated_at = ?, updated_by = ? WHERE id = ?",
                (*changes.values(), now, request[PRINCIPAL].agent_id, int(row["id"])))
        return _json(tx.one(f"SELECT {COLUMNS} FROM canned_responses WHERE id = ?", (int(row["id"]),)))

    return web.json_response(await request.app[DB].write(write))


async def delete_canned(request: web.Request) -> web.Response:
    row = await _existing(request)
    await request.app[DB].write(lambda tx: tx.exec("DELETE FROM canned_responses WHERE id = ?", (int(row["id"]),)))
    return web.Response(status=204)


async def render_canned(request: web.Request) -> web.Response:
    """The response's text for one conversation, variables filled; `missing` names those with no value."""
    p: Principal = request[PRINCIPAL]
    cid = int(request.match_info["id"])
    body = await read_json(request, CannedRenderBody)
    await check_conversation(request, body.conversation_id)
    filled = await request.app[DB].read(lambda tx: fill(tx, cid, body.conversation_id, p.agent_id))
    if filled is None:
        raise web.HTTPNotFound(text="no such canned response")
    return answer(RenderedCanned(text=filled[0], missing=filled[1]))


def fill(tx: Tx, canned_id: int, conversation_id: int, agent_id: int | None) -> tuple[str, list[str]] | None:
    """Canned response CANNED_ID (the team's, or AGENT_ID's own) with its variables filled for the conversation,
    and the variables that had no value; None when there is no such response for this agent."""
    row = tx.one(f"SELECT {COLUMNS} FROM canned_responses WHERE id = ? AND (agent_id IS NULL OR agent_id = ?)",
                 (canned_id, agent_id if agent_id is not None else -1))
    if row is None:
        return None
    conv = store.conversation(tx, conversation_id)
    customer = store.customer(tx, conv.customer_id)
    agent = tx.one("SELECT name FROM agents WHERE id = ?", (agent_id,)) if agent_id is not None else None
    attributes: dict[str, str] = {}
    # Oldest first, so the latest value of each attribute wins.
    for m in tx.all("SELECT meta FROM messages WHERE customer_id = ? AND direction = 'in' ORDER BY id DESC "
                    "LIMIT 200", (conv.customer_id,))[::-1]:
        found = json.loads(m["meta"] or "{}").get("attributes")
        if isinstance(found, dict):
            attributes.update({str(k): str(v) for k, v in found.items() if v is not None})
    # What an agent set on the profile wins over what messages carried.
    attributes.update(attribute_values(tx, conv.customer_id))
    return render(str(row["body"]), customer.name or "", str(agent["name"]) if agent else "", attributes)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/canned-responses", list_canned),
        web.post("/api/v1/canned-responses", create_canned),
        web.patch(r"/api/v1/canned-responses/{id:\d+}", update_canned),
        web.delete(r"/api/v1/canned-responses/{id:\d+}", delete_canned),
        web.post(r"/api/v1/canned-responses/{id:\d+}/render", render_canned),
    ]
