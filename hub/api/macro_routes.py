"""Macros: a named sequence of actions (reply with a team canned response, label, assign, resolve) applied to a
conversation in one click. Admins manage them; agents apply them. Each action runs through the same function as its
single-action endpoint (reply, label, claim or transfer, resolve), so its checks and side effects are theirs. What can
be known beforehand (the canned response and its variables, the agent) is checked before the first action runs;
an action refused later (say the agent reached capacity) stops the rest and the answer says which ran."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.api import label_routes, ownership, routing_routes
from hub.api import routes as conversations
from hub.api.auth import PRINCIPAL, Principal, require_admin
from hub.api.canned_routes import fill
from hub.api.errors import BadBody, read_json
from hub.api.params import path_id
from hub.api.schemas import MacroAction, MacroApplyBody, MacroBody, MacroPatchBody
from hub.history import store
from hub.history.db import Tx
from hub.inbox import labels
from hub.keys import DB
from hub.model import format_time, utcnow

COLUMNS = "id, name, actions, created_at, updated_at"
NEEDS = {"reply": "canned_response_id", "label": "label", "assign": None, "resolve": None}


def _json(row: Any) -> dict[str, Any]:
    return {"id": int(row["id"]), "name": row["name"], "actions": json.loads(row["actions"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _check_actions(tx: Tx, actions: list[MacroAction]) -> list[dict[str, Any]]:
    """The actions as stored, or a 422 naming the first one that cannot work."""
    out = []
    for n, a in enumerate(actions, 1):
        given = a.model_dump(exclude_none=True)
        needed = NEEDS[a.type]
        extra = set(given) - {"type", *([needed] if needed else []), *(["agent_id"] if a.type == "assign" else [])}
        if extra:
            raise BadBody(422, f"actions.{n}: a {a.type} action takes no {', '.join(sorted(extra))}")
        if needed and needed not in given:
            raise BadBody(422, f"actions.{n}: a {a.type} action needs {needed}")
        if a.type == "reply" and tx.one("SELECT id FROM canned_responses WHERE id = ? AND agent_id IS NULL",
                                        (a.canned_response_id,)) is None:
            raise BadBody(422, f"actions.{n}: canned response {a.canned_response_id} is not a team canned response "
                               "(a macro is everyone's, so it sends team responses only)")
        if a.type == "assign" and a.agent_id is not None and tx.one(
                "SELECT id FROM agents WHERE id = ? AND disabled = 0", (a.agent_id,)) is None:
            raise BadBody(422, f"actions.{n}: agent {a.agent_id} does not exist or is disabled")
        out.append(given)
    return out


async def list_macros(request: web.Request) -> web.Response:
    rows = await request.app[DB].read(lambda tx: tx.all(f"SELECT {COLUMNS} FROM macros ORDER BY name"))
    return web.json_response({"items": [_json(r) for r in rows]})


def _name_taken(tx: Tx, name: str, not_id: int = 0) -> None:
    if tx.one("SELECT id FROM macros WHERE name = ? AND id <> ?", (name, not_id)) is not None:
        raise web.HTTPConflict(text=f"there is already a macro called {name!r}")


async def create_macro(request: web.Request) -> web.Response:
    p = require_admin(request)
    body = await read_json(request, MacroBody)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        _name_taken(tx, body.name.strip())
        actions = _check_actions(tx, body.actions)
        row = tx.one(f"INSERT INTO macros (name, actions, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?) "
                     f"RETURNING {COLUMNS}", (body.name.strip(), json.dumps(actions), now, now, p.agent_id))
        assert row is not None
        return _json(row)

    return web.json_response(await request.app[DB].write(write), status=201)


async def update_macro(request: web.Request) -> web.Response:
    p = require_admin(request)
    mid = path_id(request)
    body = await read_json(request, MacroPatchBody)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        row = tx.one(f"SELECT {COLUMNS} FROM macros WHERE id = ?", (mid,))
        if row is None:
            raise web.HTTPNotFound(text=f"macro {mid} does not exist")
        name = body.name.strip() if body.name is not None else str(row["name"])
        _name_taken(tx, name, mid)
        actions = json.dumps(_check_actions(tx, body.actions)) if body.actions is not None else str(row["actions"])
        tx.exec("UPDATE macros SET name = ?, actions = ?, updated_at = ?, updated_by = ? WHERE id = ?",
                (name, actions, now, p.agent_id, mid))
        return _json(tx.one(f"SELECT {COLUMNS} FROM macros WHERE id = ?", (mid,)))

    return web.json_response(await request.app[DB].write(write))


async def delete_macro(request: web.Request) -> web.Response:
    require_admin(request)
    mid = path_id(request)

    def write(tx: Tx) -> None:
        if tx.one("SELECT id FROM macros WHERE id = ?", (mid,)) is None:
            raise web.HTTPNotFound(text=f"macro {mid} does not exist")
        tx.exec("DELETE FROM macros WHERE id = ?", (mid,))

    await request.app[DB].write(write)
    return web.Response(status=204)


async def label_conversation(request: web.Request, conv_id: int, label: str) -> None:
    """Add LABEL through the labels' own path (hub/api/label_routes.py). A macro naming a label no admin defined
    defines it (titled by its name), as an automation rule's add_label does."""
    await conversations.check_conversation(request, conv_id)
    await request.app[DB].write(lambda tx: labels.ensure(tx, label, format_time(utcnow())))
    await label_routes.label_conversation(request, conv_id, label, True)


async def apply_macro(request: web.Request) -> web.Response:
    """Run the macro's actions on one conversation, in order; 409 names the action that could not run."""
    p: Principal = request[PRINCIPAL]
    mid = path_id(request)
    body = await read_json(request, MacroApplyBody)
    conv_id = body.conversation_id
    await conversations.check_conversation(request, conv_id)

    def load(tx: Tx) -> tuple[dict[str, Any], dict[int, str]]:
        row = tx.one(f"SELECT {COLUMNS} FROM macros WHERE id = ?", (mid,))
        if row is None:
            raise web.HTTPNotFound(text=f"macro {mid} does not exist")
        macro = _json(row)
        texts: dict[int, str] = {}
        for n, a in enumerate(macro["actions"], 1):
            if a["type"] != "reply":
                continue
            filled = fill(tx, int(a["canned_response_id"]), conv_id, p.agent_id)
            if filled is None:
                raise web.HTTPConflict(text=f"{macro['name']}: step {n} sends canned response "
                                            f"{a['canned_response_id']}, which no longer exists; nothing was done")
            if filled[1]:
                raise web.HTTPConflict(text=f"{macro['name']}: step {n}'s reply needs {', '.join(filled[1])}, which "
                                            "this conversation has no value for; nothing was done")
            texts[n] = filled[0]
        return macro, texts

    macro, texts = await request.app[DB].read(load)
    done: list[str] = []
    for n, a in enumerate(macro["actions"], 1):
        try:
            if a["type"] == "reply":
                await conversations.send_reply(request, conv_id, texts[n])
            elif a["type"] == "label":
                await label_conversation(request, conv_id, str(a["label"]))
            elif a["type"] == "assign" and a.get("agent_id") in (None, p.agent_id):
                await ownership.claim_conversation(request, conv_id)
            elif a["type"] == "assign":
                await routing_routes.transfer_conversation(request, conv_id, None, int(a["agent_id"]))
            elif a["type"] == "resolve":
                await conversations.resolve_conversation(request, conv_id)
        except web.HTTPException as e:
            ran = f"step{'s' if len(done) > 1 else ''} {', '.join(done)} done" if done else "nothing was done"
            why = e.text or e.reason
            raise web.HTTPConflict(text=f"{macro['name']}: step {n} ({a['type']}) not done: {why}; {ran}") from None
        done.append(f"{n} ({a['type']})")
    conv = (await request.app[DB].read(lambda tx: store.conversation(tx, conv_id))).to_json()
    return web.json_response({"macro_id": mid, "applied": [a["type"] for a in macro["actions"]],
                              "conversation": conv})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/macros", list_macros),
        web.post("/api/v1/macros", create_macro),
        web.patch(r"/api/v1/macros/{id:\d+}", update_macro),
        web.delete(r"/api/v1/macros/{id:\d+}", delete_macro),
        web.post(r"/api/v1/macros/{id:\d+}/apply", apply_macro),
    ]
