"""The API channel: other systems feed the hub with `POST /api/v1/inbound` and receive replies at a signed webhook."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from hub.api.auth import require_admin
from hub.api.errors import BadBody, read_json
from hub.api.schemas import InboundBody
from hub.channels.base import Capabilities, Channel, InboundSink, IngestFailed, SendError, SendResult
from hub.config import ApiChannelSettings
from hub.identities import IdentityError
from hub.json_codec import json_response
from hub.model import IDENTITY_KINDS, AttachmentIn, Identity, Inbound, Outbound

log = logging.getLogger("hub.channels.api")

SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ApiChannel(Channel):
    name = "api"
    capabilities = Capabilities(max_text_length=100_000, media=True, html=True)
    identity_kinds = IDENTITY_KINDS

    def __init__(self, sink: InboundSink, settings: ApiChannelSettings) -> None:
        super().__init__(sink)
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v1/inbound", self.handle_inbound)]

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds))

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    def parse(self, payload: Any) -> Inbound:
        body = payload if isinstance(payload, InboundBody) else InboundBody.model_validate(payload)
        kind, sep, value = body.identity.partition(":")
        if not sep:
            raise IdentityError(f"identity {body.identity!r} must look like kind:value, e.g. phone:+14155550100")
        attachments = []
        for a in body.attachments:
            try:
                data = base64.b64decode(a.data_base64, validate=True) if a.data_base64 else None
            except (binascii.Error, ValueError):
                raise BadBody(422, f"attachment {a.filename!r}: data_base64 is not valid base64") from None
            if data is None and not a.url:
                raise BadBody(422, f"attachment {a.filename!r} needs data_base64 or url")
            attachments.append(AttachmentIn(a.filename, a.content_type, data, a.url))
        return Inbound(
            channel=self.name,
            identity=Identity(kind, value),
            text=body.text,
            external_id=body.external_id,
            name=body.name,
            html=body.html,
            business_line=body.business_line,
            attachments=attachments,
            meta=body.meta,
        )

    async def handle_inbound(self, request: web.Request) -> web.Response:
        require_admin(request)
        body = await read_json(request, InboundBody)
        inbound = self.parse(body)
        try:
            result = await self.sink.ingest(inbound, raw=body.model_dump(exclude={"attachments"}))
        except IngestFailed as e:
            return json_response(
                {"status": "flagged", "journal_id": e.journal_id, "reason": e.reason}, status=202
            )
        return json_response({**result.to_json(), "duplicate": result.duplicate},
                                 status=200 if result.duplicate else 201)

    async def send(self, outbound: Outbound) -> SendResult:
        if not self.settings.webhook_url:
            # No webhook configured: the integrator reads replies from the timeline API instead.
            return SendResult(external_id=None, status="sent")
        assert self._http is not None, "channel not started"
        files = await self.sink.outbound_files(outbound.message_id)
        body = json.dumps(
            {
                "message_id": outbound.message_id,
                "conversation_id": outbound.conversation_id,
                "to": str(outbound.to),
                "text": outbound.text,
                "attempt": outbound.attempt,
                # The same shape the inbound API takes.
                "attachments": [
                    {"filename": name, "content_type": ctype, "data_base64": base64.b64encode(data).decode()}
                    for name, ctype, data in files
                ],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.settings.webhook_secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.webhook_secret, body)
        try:
            async with self._http.post(self.settings.webhook_url, data=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status == 429 or resp.status == 408 or resp.status >= 500:
                    retry_after = resp.headers.get("Retry-After")
                    raise SendError(
                        f"webhook answered {resp.status}: {text[:200]}",
                        permanent=False,
                        retry_after=float(retry_after)
                        if retry_after and retry_after.isascii() and retry_after.isdigit() else None,
                    )
                if resp.status >= 400:
                    raise SendError(f"webhook answered {resp.status}: {text[:200]}", permanent=True)
                external_id = None
                try:
                    reply = json.loads(text) if text else {}
                    if isinstance(reply, dict) and reply.get("id") is not None:
                        external_id = str(reply["id"])
                except json.JSONDecodeError:
                    pass
                return SendResult(external_id=external_id, status="sent")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise SendError(f"webhook unreachable: {type(e).__name__}: {e}", permanent=False) from None
