"""SMS, MMS and WhatsApp through Twilio: signed inbound webhooks to Inbound, replies through Twilio's Messages API
with delivery status callbacks, STOP/START opt-outs. WhatsApp is its own channel with the same phone identity."""

from __future__ import annotations

import json
import logging
import mimetypes
from typing import Any, ClassVar

from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.twiml.messaging_response import MessagingResponse

from hub import downloads
from hub.api.params import path_id
from hub.channels.base import (
    Capabilities,
    Channel,
    Fact,
    FactResult,
    IngestFailed,
    MessageTemplate,
    SendError,
    SendResult,
)
from hub.channels.twilio import content as twilio_content
from hub.channels.twilio import media as twilio_media
from hub.channels.twilio.account import TwilioAccount, TwilioSink, rest_error
from hub.identities import IdentityError
from hub.model import AttachmentIn, Identity, Inbound, Outbound

log = logging.getLogger("hub.channels.twilio")

#: Twilio's own limit on a message body
MAX_BODY = 1600
#: Twilio's limits on media: an MMS carries up to 10 files of 5 MB in all; a WhatsApp message one file of 16 MB
MMS_FILES, MMS_BYTES = 10, 5_000_000
WHATSAPP_FILES, WHATSAPP_BYTES = 1, 16_000_000

# Twilio's default opt-out keywords (its Advanced Opt-Out sends OptOutType too, which wins when present).
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP", "OPTIN"})

# Twilio message status -> the hub's (see outbox._RANK); "queued"/"accepted" are where the send left it already.
STATUS = {
    "accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "sending", "sent": "sent",
    "delivered": "delivered", "read": "read", "undelivered": "undelivered", "failed": "failed", "canceled": "failed",
    "partially_delivered": "delivered",
}

# What the agent is shown for the delivery errors customers hit most (https://www.twilio.com/docs/api/errors).
ERRORS = {
    "11200": "Twilio could not fetch an attached file from the hub (is server.public_url reachable from the internet?)",
    "12300": "Twilio refused an attached file's content type",
    "21610": "the recipient has opted out (texted STOP)",
    "21614": "the number is not a mobile number",
    "30003": "unreachable destination handset (phone off or out of coverage)",
    "30004": "message blocked by the recipient or their carrier",
    "30005": "unknown destination handset (number no longer in service)",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown delivery error",
    "63016": "outside WhatsApp's 24-hour window: only a template message can be sent",
}

TWIML_XML = "text/xml"


def twiml(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=body, status=status, content_type=TWIML_XML, headers=headers)


#: what every handled message is answered with: built once (the TwiML builder took 23 us a message, 6% of the
#: event loop's busy time on the SMS webhook path under py-spy)
EMPTY_TWIML = str(MessagingResponse())


def empty_response() -> web.Response:
    return twiml(EMPTY_TWIML)


def fact_answer(result: FactResult) -> web.Response:
    """Twilio's answer to a later-fact callback: it is journaled whatever happened, so always 2xx (a retry would not
    help); 202 and a header say when it waits for its message or was flagged."""
    if result.state == "pending":
        return web.Response(status=202, headers={"X-Hub-Pending": f"journal {result.journal_id}: {result.reason}"})
    if result.state == "failed":
        return web.Response(status=202, headers={"X-Hub-Flagged": f"journal {result.journal_id}: {result.reason}"})
    return web.Response(status=204)


def error_reason(code: str, message: str = "") -> str:
    known = ERRORS.get(code)
    text = known or message or "see https://www.twilio.com/docs/api/errors/" + code
    return f"Twilio error {code}: {text}"


def _address(raw: str) -> tuple[str, str]:
    """('whatsapp' or 'sms', bare E.164) of a Twilio address such as whatsapp:+14155550100."""
    if raw.startswith("whatsapp:"):
        return "whatsapp", raw.removeprefix("whatsapp:")
    return "sms", raw


def opt_keyword(form: dict[str, str]) -> tuple[str, str] | None:
    """('out' | 'in', keyword) when the message is an opt-out or opt-in keyword."""
    kind = form.get("OptOutType", "").upper()
    word = form.get("Body", "").strip().upper().rstrip(".!")
    if kind == "STOP" or (not kind and word in OPT_OUT):
        return "out", word or "STOP"
    if kind == "START" or (not kind and word in OPT_IN):
        return "in", word or "START"
    return None


class SmsChannel(Channel):
    name: ClassVar[str] = "sms"
    capabilities = Capabilities(max_text_length=MAX_BODY, media=True, max_files=MMS_FILES, max_media_bytes=MMS_BYTES)
    identity_kinds = ("phone",)

    def __init__(self, sink: TwilioSink, account: TwilioAccount) -> None:
        super().__init__(sink)
        self.twilio_sink = sink
        self.account = account

    def routes(self) -> list[web.RouteDef]:
        if self.name != "sms":
            return []  # WhatsApp arrives on the same webhooks as SMS
        return [
            web.post("/webhooks/twilio/sms", self.handle_inbound),
            web.post("/webhooks/twilio/sms/status", self.handle_status),
            web.get(twilio_media.PATH + r"/{id:\d+}/{name}", self.handle_media),
        ]

    async def start(self) -> None:
        await self.account.start()

    async def stop(self) -> None:
        await self.account.stop()

    # -- inbound ---------------------------------------------------------------------------------------------------

    def parse(self, payload: Any) -> Inbound:
        form: dict[str, str] = dict(payload)
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")
        if not sid:
            raise ValueError("no MessageSid: not a Twilio message webhook")
        sender = form.get("From", "")
        if not sender:
            raise ValueError(f"message {sid} has no From")
        channel, phone = _address(sender)
        to = form.get("To", "")
        try:
            count = int(form.get("NumMedia", "0") or 0)
        except ValueError:
            raise ValueError(f"message {sid}: NumMedia {form.get('NumMedia')!r} is not a number") from None
        attachments = []
        for i in range(count):
            url = form.get(f"MediaUrl{i}")
            if not url:
                raise ValueError(f"message {sid}: NumMedia is {count} but MediaUrl{i} is missing")
            content_type = form.get(f"MediaContentType{i}") or "application/octet-stream"
            ext = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
            attachments.append(AttachmentIn(f"{sid}-{i}{ext}", content_type, url=url))
        meta: dict[str, Any] = {"to": to, "twilio_sid": sid}
        for key, name in (("FromCity", "from_city"), ("FromState", "from_state"), ("FromCountry", "from_country"),
                          ("MessagingServiceSid", "messaging_service_sid"), ("NumSegments", "segments")):
            if form.get(key):
                meta[name] = form[key]
        opt = opt_keyword(form)
        if opt is not None:
            meta["opt_out" if opt[0] == "out" else "opt_in"] = opt[1]
        return Inbound(
            channel=channel,
            identity=Identity("phone", phone),
            text=form.get("Body", ""),
            external_id=sid,
            name=form.get("ProfileName") or None,
            attachments=attachments,
            business_line=self.account.line(to) if to else None,
            meta=meta,
        )

    async def handle_inbound(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        raw = dict(form)
        sid = raw.get("MessageSid") or raw.get("SmsSid")
        try:
            inbound = self.parse(raw)
            result = await self.sink.ingest(inbound, raw=raw)
        except (ValueError, IdentityError) as e:
            # Kept, flagged with the reason, and answered 2xx: Twilio has nothing to retry, an operator can look.
            jid = await self.sink.flag("sms", sid, raw, str(e), "bad_number" if isinstance(e, IdentityError) else None)
            return twiml(EMPTY_TWIML, status=202, headers={"X-Hub-Flagged": f"journal {jid}: {e}"})
        except IngestFailed as e:
            return twiml(EMPTY_TWIML, status=202, headers={"X-Hub-Flagged": f"journal {e.journal_id}"})
        opt = opt_keyword(raw)
        if opt is not None:
            # Applied on retries too (idempotent), so a crash between the two writes cannot lose a STOP.
            await self.twilio_sink.set_opt_out(inbound.identity, inbound.channel, opt[1] if opt[0] == "out" else None)
            log.info("%s %s opted %s with %s", inbound.channel, result.customer.id, opt[0], opt[1])
        if inbound.attachments and not result.duplicate:
            self.account.media_arrived()
        return empty_response()

    async def handle_status(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        twilio_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        status = STATUS.get(twilio_status)
        if not sid or status is None:
            raise web.HTTPBadRequest(
                text=f"not a Twilio message status callback (MessageSid {sid!r}, MessageStatus {twilio_status!r})"
            )
        code = form.get("ErrorCode", "")
        reason = error_reason(code, form.get("ErrorMessage", "")) if code and code != "0" else None
        channel, _ = _address(form.get("To", ""))
        fact = Fact("status", channel, sid, key=twilio_status, status=status, reason=reason)
        result = await self.twilio_sink.record_fact(fact, raw=dict(form))
        if result.state not in ("applied", "pending"):
            log.debug("status %s for message %s: %s", twilio_status, sid, result.state)
        if code == "21610":
            to = form.get("To", "")
            if to:
                await self.twilio_sink.set_opt_out(Identity("phone", _address(to)[1]), channel, "STOP")
        return fact_answer(result)

    async def handle_media(self, request: web.Request) -> web.Response:
        """A file an agent sent, fetched by Twilio at the signed URL given with the message."""
        attachment_id = path_id(request)
        why = twilio_media.check(self.account.media_key, attachment_id, request.query.get("expires", ""),
                                 request.query.get("sig", ""))
        if why is not None:
            raise web.HTTPForbidden(text=f"media URL refused: {why}")
        found = await self.twilio_sink.outgoing_file(attachment_id)
        if found is None:
            raise web.HTTPNotFound(text=f"no outgoing file {attachment_id}")
        name, content_type, data = found
        # Anyone holding the signed URL may open it in a browser: a download, never a page of ours.
        return downloads.file_response(data, name, content_type)

    # -- outbound --------------------------------------------------------------------------------------------------

    async def _sender(self, to: Identity) -> dict[str, str]:
        """Who the reply comes from: the Messaging Service, else the number the customer last wrote to."""
        if self.account.settings.messaging_service_sid:
            return {"messaging_service_sid": self.account.settings.messaging_service_sid}
        for msg, _agent in reversed(await self.twilio_sink.history(to, self.name, 20)):
            number = msg.meta.get("to")
            if msg.direction == "in" and isinstance(number, str) and number:
                return {"from_": number}
        fallback = self.account.settings.whatsapp_from if self.name == "whatsapp" else self.account.settings.sms_from
        fallback = fallback or next(iter(self.account.settings.numbers), "")
        if not fallback:
            raise SendError(
                f"no {self.name} sender: set channels.twilio.messaging_service_sid or "
                f"channels.twilio.{'whatsapp_from' if self.name == 'whatsapp' else 'sms_from'}",
                permanent=True,
            )
        return {"from_": self._address(fallback.removeprefix("whatsapp:"))}

    def _address(self, phone: str) -> str:
        return f"whatsapp:{phone}" if self.name == "whatsapp" else phone

    async def send(self, outbound: Outbound) -> SendResult:
        if outbound.to.kind != "phone":
            raise SendError(f"{self.name} reaches phone numbers, not {outbound.to.kind} identities", permanent=True)
        if len(outbound.text) > MAX_BODY:
            raise SendError(f"text is {len(outbound.text)} characters; Twilio allows at most {MAX_BODY}",
                            permanent=True)
        stopped = await self.twilio_sink.opted_out(outbound.to, self.name)
        if stopped is not None:
            raise SendError(
                f"not sent: {outbound.to.value} opted out by texting {stopped[0]} on {stopped[1]}; "
                f"{self.name} messages are refused until they text START",
                permanent=True,
            )
        sender = await self._sender(outbound.to)
        settings = self.account.settings
        media = [
            twilio_media.signed_url(self.account.public_url, self.account.media_key, aid, filename,
                                    settings.media_url_seconds)
            for aid, filename in await self.twilio_sink.outgoing_attachments(outbound.message_id)
        ]
        # An approved template (a WhatsApp campaign): Twilio sends the template with these values, not our text.
        template = outbound.meta.get("template")
        content = ({"content_sid": template["sid"], "content_variables": json.dumps(template["variables"])}
                   if self.name == "whatsapp" and isinstance(template, dict) else {"body": outbound.text})
        try:
            msg = await self.account.client.messages.create_async(
                to=self._address(outbound.to.value),
                **content,
                status_callback=self.account.url("/webhooks/twilio/sms/status"),
                **({"media_url": media} if media else {}),
                **sender,
            )
        except Exception as e:
            if isinstance(e, TwilioRestException) and e.code == 21610:
                # Twilio knows they opted out (e.g. before this hub): remember it, say so.
                await self.twilio_sink.set_opt_out(outbound.to, self.name, "STOP")
                raise SendError(f"not sent: {error_reason('21610')}", permanent=True) from None
            raise rest_error(e, "sending failed") from None
        # Handed to Twilio; its status callbacks move it on to sent, delivered or failed.
        return SendResult(external_id=str(msg.sid), status="sending")


class WhatsAppChannel(SmsChannel):
    name: ClassVar[str] = "whatsapp"
    capabilities = Capabilities(max_text_length=MAX_BODY, media=True, max_files=WHATSAPP_FILES,
                                max_media_bytes=WHATSAPP_BYTES, templates=True, session_window_hours=24)

    async def templates(self) -> list[MessageTemplate]:
        return await twilio_content.templates(self.account.client)

    async def template(self, sid: str) -> MessageTemplate:
        return await twilio_content.template(self.account.client, sid)
