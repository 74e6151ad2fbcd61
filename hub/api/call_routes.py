"""REST API for phone calls an agent places from the console (click-to-call)."""

from __future__ import annotations

from aiohttp import web

from hub.api.auth import PRINCIPAL
from hub.api.errors import read_json
from hub.api.params import path_id
from hub.api.routes import check_conversation
from hub.api.schemas import CallBody
from hub.routing.calls import CALLS, CallError


async def place_call(request: web.Request) -> web.Response:
    conv_id = path_id(request)
    body = await read_json(request, CallBody) if request.body_exists else CallBody()
    await check_conversation(request, conv_id)
    agent_id = request[PRINCIPAL].agent_id
    if agent_id is None:
        raise web.HTTPBadRequest(text="calling needs an agent's token or session: the hub rings that agent first")
    calls = request.app.get(CALLS)
    if calls is None:
        raise web.HTTPConflict(text="voice is not configured on this hub: enable channels.twilio")
    try:
        msg = await calls.place(conv_id, agent_id, body.to)
    except CallError as e:
        raise web.HTTPConflict(text=str(e)) from None
    return web.json_response(msg.to_json(), status=202)


def routes() -> list[web.RouteDef]:
    return [web.post(r"/api/v1/conversations/{id:\d+}/call", place_call)]
