"""Views through the API: every view the caller has (built-in and saved) with its count, and saved views managed
(an agent's own; shared ones by admins and supervisors). GET /api/v1/inbox?view=<id> lists one."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from hub.api.auth import PRINCIPAL, Principal
from hub.api.canned_routes import acting_role
from hub.api.errors import BadBody, read_json
from hub.api.schemas import ViewBody, ViewFilters, ViewPatchBody
from hub.history.db import Tx
from hub.inbox import views
from hub.keys import DB, SETTINGS
from hub.model import format_time, utcnow

_FILTER_PARAMS = tuple(ViewFilters.model_fields)


def _queues(request: web.Request) -> list[tuple[str, str]]:
    return [(n, q.title or n) for n, q in request.app[SETTINGS].routing.queues.items()]


def _all(tx: Tx, p: Principal, queues: list[tuple[str, str]]) -> list[views.View]:
    return views.builtin(p, queues) + views.saved(tx, p)


async def requested_view(request: web.Request) -> views.View | None:
    """The view named by ?view=, or an unsaved one from filter parameters (?label=vip&status=open), or None."""
    p: Principal = request[PRINCIPAL]
    wanted = request.query.get("view")
    if wanted:
        known = await request.app[DB].read(lambda tx: _all(tx, p, _queues(request)))
        for v in known:
            if v.id == wanted:
                return v
        raise web.HTTPNotFound(text=f"no view {wanted!r}: GET /api/v1/views lists yours")
    given = {k: request.query[k] for k in _FILTER_PARAMS if k in request.query}
    if not given:
        return None
    try:
        return views.View("filter", "Filtered", "filter", ViewFilters.model_validate(given))
    except ValidationError as e:
        raise BadBody(400, "bad filter: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}"
                                                     for x in e.errors())) from None


async def list_views(request: web.Request) -> web.Response:
    p: Principal = request[PRINCIPAL]
    queues = _queues(request)
    now = utcnow()

    def load(tx: Tx) -> list[dict[str, Any]]:
        return [views.to_json(v, views.count(tx, p, v, now)) for v in _all(tx, p, queues)]

    return web.json_response({"items": await request.app[DB].read(load)})


async def _owner(request: web.Request, shared: bool) -> int | None:
    """Who a saved view belongs to: None (shared: admins and supervisors) or the calling agent."""
    p: Principal = request[PRINCIPAL]
    if shared:
        if await acting_role(request) not in ("admin", "supervisor"):
            raise web.HTTPForbidden(text="shared views are managed by admins and supervisors")
        return None
    if p.agent_id is None:
        raise web.HTTPBadRequest(text="a personal view needs an agent's token (or shared: true)")
    return p.agent_id


def _row_json(tx: Tx, view_id: int) -> dict[str, Any]:
    r = tx.one("SELECT id, agent_id, name, filters FROM saved_views WHERE id = ?", (view_id,))
    assert r is not None
    return views.to_json(views.View(f"saved:{r['id']}", str(r["name"]),
                                    "shared" if r["agent_id"] is None else "personal",
                                    ViewFilters.model_validate(json.loads(r["filters"]))))


async def create_view(request: web.Request) -> web.Response:
    body = await read_json(request, ViewBody)
    owner = await _owner(request, body.shared)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        row = tx.one("INSERT INTO saved_views (agent_id, name, filters, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?) RETURNING id",
                     (owner, body.name.strip(), body.filters.model_dump_json(exclude_none=True), now, now))
        assert row is not None
        return _row_json(tx, int(row["id"]))

    return web.json_response(await request.app[DB].write(write), status=201)


async def _existing(request: web.Request) -> int:
    view_id = int(request.match_info["id"])
    row = await request.app[DB].read(lambda tx: tx.one("SELECT agent_id FROM saved_views WHERE id = ?", (view_id,)))
    p: Principal = request[PRINCIPAL]
    if row is None or (row["agent_id"] is not None and row["agent_id"] != p.agent_id):
        raise web.HTTPNotFound(text="no such view")
    await _owner(request, row["agent_id"] is None)
    return view_id


async def update_view(request: web.Request) -> web.Response:
    view_id = await _existing(request)
    body = await read_json(request, ViewPatchBody)
    now = format_time(utcnow())

    def write(tx: Tx) -> dict[str, Any]:
        if body.name is not None:
            tx.exec("UPDATE saved_views SET name = ?, updated_at = ? WHERE id = ?", (body.name.strip(), now, view_id))
        if body.filters is not None:
            tx.exec("UPDATE saved_views SET filters = ?, updated_at = ? WHERE id = ?",
                    (body.filters.model_dump_json(exclude_none=True), now, view_id))
        return _row_json(tx, view_id)

    return web.json_response(await request.app[DB].write(write))


async def delete_view(request: web.Request) -> web.Response:
    view_id = await _existing(request)
    await request.app[DB].write(lambda tx: tx.exec("DELETE FROM saved_views WHERE id = ?", (view_id,)))
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/views", list_views),
        web.post("/api/v1/views", create_view),
        web.patch(r"/api/v1/views/{id:\d+}", update_view),
        web.delete(r"/api/v1/views/{id:\d+}", delete_view),
    ]
