"""REST API for segments (admins and supervisors): saved segments with their size and trend, their customers a page
at a time or as a CSV file, a size preview for criteria not saved yet, and the RFM groups with their boundaries."""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial
from typing import Any

from aiohttp import web

from hub.api.auth import PRINCIPAL
from hub.api.errors import read_json
from hub.api.params import limit, path_id, whole_number
from hub.api.responses import DeletedId, answer
from hub.history.db import Tx
from hub.keys import DB
from hub.model import format_time, utcnow
from hub.segments import criteria as rfm
from hub.segments import export, segment_store
from hub.segments.criteria import Criteria
from hub.segments.segment_store import SegmentBody

MANAGERS = ("admin", "supervisor")
EXPORT_CHUNK = 5000
#: chunks of an export read at once (each holds one of the database's threads: others are left for other requests)
EXPORT_READERS = 2


def _manager(request: web.Request) -> None:
    if request[PRINCIPAL].role not in MANAGERS:
        raise web.HTTPForbidden(text="segments are for admins and supervisors")


async def list_segments(request: web.Request) -> web.Response:
    _manager(request)
    found = await request.app[DB].read(segment_store.listing)
    return web.json_response({"items": [s.to_json() | {"size": n} for s, n in found]})


async def create_segment(request: web.Request) -> web.Response:
    _manager(request)
    body = await read_json(request, SegmentBody)
    now = format_time(utcnow())
    seg = await request.app[DB].write(lambda tx: segment_store.create(tx, body, now))
    return web.json_response(seg.to_json(), status=201)


async def get_segment(request: web.Request) -> web.Response:
    _manager(request)
    sid = path_id(request)
    now = format_time(utcnow())

    bounds = await rfm.current_cuts(request.app[DB])

    def read(tx: Tx) -> dict[str, Any]:
        seg = segment_store.get(tx, sid)
        return seg.to_json() | {"size": segment_store.size(tx, seg.criteria, bounds),
                                "trend": segment_store.trend(tx, sid, now)}

    return web.json_response(await request.app[DB].read(read))


async def replace_segment(request: web.Request) -> web.Response:
    _manager(request)
    sid = path_id(request)
    body = await read_json(request, SegmentBody)
    now = format_time(utcnow())
    seg = await request.app[DB].write(lambda tx: segment_store.replace(tx, sid, body, now))
    return web.json_response(seg.to_json())


async def delete_segment(request: web.Request) -> web.Response:
    _manager(request)
    sid = path_id(request)
    await request.app[DB].write(lambda tx: segment_store.delete(tx, sid))
    return answer(DeletedId(deleted=sid))


async def segment_customers(request: web.Request) -> web.StreamResponse:
    _manager(request)
    sid = path_id(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise web.HTTPUnprocessableEntity(text="format is json or csv")
    if fmt == "csv":
        return await _export(request, sid)
    after = whole_number(request.query.get("after", "0"), "after")
    size = limit(request)

    bounds = await rfm.current_cuts(request.app[DB])

    def page(tx: Tx) -> tuple[list[dict[str, Any]], int | None]:
        return segment_store.customers(tx, segment_store.get(tx, sid).criteria, after, size, bounds)

    items, nxt = await request.app[DB].read(page)
    return web.json_response({"items": items, "next": nxt})


async def _export(request: web.Request, sid: int) -> web.StreamResponse:
    """Every customer of the segment as CSV, a chunk of about EXPORT_CHUNK at a time, EXPORT_READERS chunks read at
    once and written in order (each chunk one short read, its lines made by the database: hub/segments/export.py)."""
    db = request.app[DB]
    criteria = (await db.read(lambda tx: segment_store.get(tx, sid))).criteria  # a 404 before anything is sent
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                       "Content-Disposition": f'attachment; filename="segment-{sid}.csv"'})
    await resp.prepare(request)
    bounds = await rfm.current_cuts(db)  # one set of scores for the whole file
    edges = await db.read(partial(export.edges, criteria=criteria, every=EXPORT_CHUNK, bounds=bounds))
    await resp.write(export.header().encode())
    reading: deque[asyncio.Future[str]] = deque()
    try:
        for after, upto in zip([0, *edges], [*edges, None], strict=True):
            reading.append(asyncio.ensure_future(db.read(partial(export.chunk, criteria=criteria, after=after,
                                                                 upto=upto, bounds=bounds))))
            if len(reading) == EXPORT_READERS:
                await resp.write((await reading.popleft()).encode())
        while reading:
            await resp.write((await reading.popleft()).encode())
    finally:
        for left in reading:  # the client went away, or a read failed: nothing more to write
            if not left.cancel() and not left.cancelled():
                left.exception()  # taken, so a failed read is not also logged as never retrieved
    await resp.write_eof()
    return resp


async def preview(request: web.Request) -> web.Response:
    """How many customers criteria not saved yet would hold (the console's segment builder)."""
    _manager(request)
    body = await read_json(request, Criteria)
    bounds = await rfm.current_cuts(request.app[DB])
    return web.json_response({"size": await request.app[DB].read(lambda tx: segment_store.size(tx, body, bounds))})


async def rfm_groups(request: web.Request) -> web.Response:
    _manager(request)

    cuts = await rfm.current_cuts(request.app[DB])

    def read(tx: Tx) -> dict[str, Any]:
        group, params = rfm.Scorer(cuts, tx.dialect).group()
        rows = tx.all(f"SELECT {group} AS g, COUNT(*) AS n FROM customer_stats s GROUP BY 1", params)
        counts = {str(r["g"]): int(r["n"]) for r in rows}
        groups = [{"group": g, "rule": rfm.rule_text(g), "description": text, "size": counts.get(g, 0)}
                  for g, (_, text) in rfm.GROUPS.items()]
        groups.append({"group": "other", "rule": "none of the above", "description": "everyone else",
                       "size": counts.get("other", 0)})
        return {"groups": groups, "customers": sum(counts.values()), "boundaries": cuts.to_json()}

    return web.json_response(await request.app[DB].read(read))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/segments", list_segments),
        web.post("/api/v1/segments", create_segment),
        web.get("/api/v1/segments/rfm", rfm_groups),
        web.post("/api/v1/segments/preview", preview),
        web.get(r"/api/v1/segments/{id:\d+}", get_segment),
        web.put(r"/api/v1/segments/{id:\d+}", replace_segment),
        web.delete(r"/api/v1/segments/{id:\d+}", delete_segment),
        web.get(r"/api/v1/segments/{id:\d+}/customers", segment_customers),
    ]
