"""REST API for WhatsApp's approved templates in a conversation: the account's templates for any agent, and one
filled in for the conversation's customer before it is sent (POST .../messages with `template` sends it)."""

from __future__ import annotations

from aiohttp import web

from hub.api.errors import read_json
from hub.api.params import path_id
from hub.api.routes import check_conversation, template_message
from hub.api.schemas import TemplatePreviewBody
from hub.campaigns.api import template_items


async def list_templates(request: web.Request) -> web.Response:
    """Every signed-in agent may read them: a conversation's composer offers the approved ones."""
    return web.json_response({"items": await template_items(request)})


async def preview_template(request: web.Request) -> web.Response:
    """What the customer would read, with the same checks as sending it; nothing is written or sent."""
    conv_id = path_id(request)
    body = await read_json(request, TemplatePreviewBody)
    await check_conversation(request, conv_id)
    channel, text, meta = await template_message(request, conv_id, body.template, body.channel)
    return web.json_response({"channel": channel, "text": text, "template": meta["template"]})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/templates", list_templates),
        web.post(r"/api/v1/conversations/{id:\d+}/template-preview", preview_template),
    ]
