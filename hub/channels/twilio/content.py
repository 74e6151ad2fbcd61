"""WhatsApp's approved templates through Twilio's Content API (content.twilio.com): the account's templates with
their variables and WhatsApp approval status, read with the official client. Sending one is a message with
ContentSid and ContentVariables (sms.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException

from hub.channels.base import MessageTemplate, SendError
from hub.channels.twilio.account import rest_error

#: the most templates read (WhatsApp allows an account 6,000 approved ones; a picker shows far fewer)
MAX_TEMPLATES = 500
#: approval requests read at once
CONCURRENCY = 8


def _body(types: Any) -> str:
    """The text a template sends: its twilio/text body, else the body of its first type that has one."""
    if not isinstance(types, dict):
        return ""
    text = types.get("twilio/text")
    if isinstance(text, dict) and isinstance(text.get("body"), str):
        return str(text["body"])
    for value in types.values():
        if isinstance(value, dict) and isinstance(value.get("body"), str):
            return str(value["body"])
    return ""


async def _approval(client: Any, sid: str) -> tuple[str, str]:
    """(WhatsApp's status, its rejection reason) of template SID; "unsubmitted" when never sent for approval."""
    found = await client.content.v1.contents(sid).approval_fetch().fetch_async()
    whatsapp = found.whatsapp if isinstance(found.whatsapp, dict) else {}
    return str(whatsapp.get("status") or "unsubmitted"), str(whatsapp.get("rejection_reason") or "")


async def _template(client: Any, content: Any) -> MessageTemplate:
    status, reason = await _approval(client, str(content.sid))
    variables = content.variables if isinstance(content.variables, dict) else {}
    return MessageTemplate(sid=str(content.sid), name=str(content.friendly_name or content.sid),
                           language=str(content.language or ""), body=_body(content.types),
                           variables={str(k): str(v) for k, v in variables.items()}, approval=status,
                           rejection_reason=reason)


def _page_error(e: Exception) -> Exception:
    """twilio's list pages raise a bare TwilioException holding the response: made the error a REST call raises."""
    response = e.args[1] if isinstance(e, TwilioException) and len(e.args) > 1 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return e
    try:
        body = json.loads(str(getattr(response, "text", "")))
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    made: Exception = TwilioRestException(status, "/v1/Content", msg=str(body.get("message") or f"HTTP {status}"),
                                          code=body.get("code"))
    return made


async def templates(client: Any) -> list[MessageTemplate]:
    """The account's templates (the newest MAX_TEMPLATES), each with its WhatsApp approval status."""
    try:
        contents = await client.content.v1.contents.list_async(limit=MAX_TEMPLATES)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(content: Any) -> MessageTemplate:
            async with gate:
                return await _template(client, content)

        return list(await asyncio.gather(*(one(c) for c in contents)))
    except SendError:
        raise
    except Exception as e:
        raise rest_error(_page_error(e), "reading the WhatsApp templates failed") from None


async def template(client: Any, sid: str) -> MessageTemplate:
    """Template SID with its approval status; SendError (permanent) when the account has no such template."""
    try:
        return await _template(client, await client.content.v1.contents(sid).fetch_async())
    except Exception as e:
        raise rest_error(e, f"template {sid}") from None
