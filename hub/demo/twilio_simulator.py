"""A local stand-in for Twilio's REST API, speaking its wire format (form-encoded requests, Twilio's JSON and error
bodies, basic auth with the account SID and auth token). `hub demo` runs it so the Twilio channels work with no
network and no Twilio account; the tests drive it, scripting failures (500, 429...) for the official client.
It is a simulator: nothing sent to it reaches a phone."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import MultiDict

from hub import tasks as background
from hub.channels.twilio.signature import sign

log = logging.getLogger("hub.channels.twilio.simulator")

API = "/2010-04-01/Accounts/{account}"
#: the Content API (content.twilio.com), served on the same port
CONTENT = "/v1/Content"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return email.utils.formatdate(usegmt=True).replace("GMT", "+0000")


def twilio_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status=status, headers=headers,
    )


@dataclass
class Scripted:
    """One scripted answer: an HTTP status with Twilio's error body (and headers, e.g. Retry-After)."""

    status: int
    code: int = 0
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class TwilioSimulator:
    def __init__(self, account_sid: str, auth_token: str, hub_url: str = "") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        #: where to deliver status callbacks (the hub as reachable from here); empty: no callbacks are sent
        self.hub_url = hub_url.rstrip("/")
        #: the hub's server.public_url when it differs from hub_url (behind a proxy); empty: the same
        self.public_url = ""
        self.messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        #: Content API templates by sid (add_template), each with its WhatsApp approval status
        self.contents: dict[str, dict[str, Any]] = {}
        self.approvals: dict[str, dict[str, Any]] = {}
        #: every request's form, in order: (resource, form)
        self.requests: list[tuple[str, MultiDict[str]]] = []
        #: path -> (bytes, content type) served to authenticated GETs (MMS media, recordings)
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_gets: list[str] = []
        #: (MediaUrl, HTTP status, bytes received) of every outgoing file fetched from the hub, as Twilio does
        self.fetched: list[tuple[str, int, int]] = []
        #: resource ("Messages", "Calls", "media") -> answers to give before succeeding again
        self.script: dict[str, list[Scripted]] = {}
        self.callback_delay = 0.5
        #: seconds each media download takes (tests make downloads overlap)
        self.media_delay = 0.0
        #: with hub_url set, calls the hub places are "answered" after ring_seconds and last talk_seconds
        self.ring_seconds, self.talk_seconds = 2.0, 8.0
        #: the key the person at a number presses when TwiML <Gather>s (default "1"; "" presses nothing)
        self.keypad: dict[str, str] = {}
        #: numbers nobody answers: To -> the final CallStatus reported ("no-answer", "busy", "failed")
        self.unanswered: dict[str, str] = {}
        #: hand-off queue name -> (caller CallSid, the <Enqueue> action URL) for callers the hub moved there
        self.handoffs: dict[str, tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        base = API.format(account="{account}")
        app.router.add_post(f"{base}/Messages.json", self.create_message)
        app.router.add_post(f"{base}/Calls.json", self.create_call)
        app.router.add_post(f"{base}/Calls/{{call}}.json", self.update_call)
        app.router.add_delete(f"{base}/Queues/{{queue}}.json", self.delete_queue)
        app.router.add_get(f"{base}/Messages/{{message}}/Media/{{media}}", self.get_media)
        app.router.add_get(f"{base}/Recordings/{{recording}}", self.get_media)
        app.router.add_get(CONTENT, self.list_contents)
        app.router.add_get(f"{CONTENT}/{{sid}}", self.get_content)
        app.router.add_get(f"{CONTENT}/{{sid}}/ApprovalRequests", self.get_approval)
        app.on_cleanup.append(self._close)
        return app

    # -- helpers for tests and the demo ---------------------------------------------------------------------------

    def add_media(self, base_url: str, message_sid: str, data: bytes, content_type: str) -> str:
        """Serve DATA as one of MESSAGE_SID's media; returns its MediaUrl."""
        path = f"{API.format(account=self.account_sid)}/Messages/{message_sid}/Media/{new_sid('ME')}"
        self.media[path] = (data, content_type)
        return base_url.rstrip("/") + path

    def add_recording(self, base_url: str, data: bytes) -> tuple[str, str]:
        """Serve DATA as a recording; returns (RecordingSid, RecordingUrl without extension, as Twilio sends it)."""
        sid = new_sid("RE")
        path = f"{API.format(account=self.account_sid)}/Recordings/{sid}"
        self.media[path + ".mp3"] = (data, "audio/mpeg")
        return sid, base_url.rstrip("/") + path

    def add_template(self, name: str, body: str, variables: dict[str, str], status: str = "approved",
                     rejection_reason: str = "", language: str = "en") -> str:
        """A twilio/text content template with BODY's {{1}}, {{2}}... (VARIABLES: their sample values), and its
        WhatsApp approval STATUS (approved, pending, rejected, unsubmitted...); returns its ContentSid."""
        sid, now = new_sid("HX"), _iso_now()
        url = f"https://content.twilio.com{CONTENT}/{sid}"
        self.contents[sid] = {
            "sid": sid, "account_sid": self.account_sid, "friendly_name": name, "language": language,
            "variables": variables, "types": {"twilio/text": {"body": body}}, "url": url,
            "date_created": now, "date_updated": now,
            "links": {"approval_fetch": f"{url}/ApprovalRequests",
                      "approval_create": f"{url}/ApprovalRequests/whatsapp"},
        }
        self.approvals[sid] = {
            "sid": sid, "account_sid": self.account_sid, "url": f"{url}/ApprovalRequests",
            "whatsapp": {"type": "whatsapp", "name": name, "category": "UTILITY", "content_type": "twilio/text",
                         "status": status, "rejection_reason": rejection_reason, "allow_category_change": True},
        }
        return sid

    def sent(self, resource: str = "Messages") -> list[MultiDict[str]]:
        return [form for name, form in self.requests if name == resource]

    # -- the wire format ---------------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and secrets.compare_digest(password, self.auth_token)

    async def _gate(self, request: web.Request, resource: str) -> web.Response | None:
        account = request.match_info.get("account", self.account_sid)
        if not self._authorized(request) or account != self.account_sid:
            return twilio_error(401, 20003, "Authenticate")
        queue = self.script.get(resource)
        if queue:
            s = queue.pop(0)
            return twilio_error(s.status, s.code or (20429 if s.status == 429 else 20500),
                                s.message or ("Too Many Requests" if s.status == 429 else "Internal Server Error"),
                                s.headers)
        return None

    async def create_message(self, request: web.Request) -> web.Response:
        form = MultiDict((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
        self.requests.append(("Messages", form))
        refused = await self._gate(request, "Messages")
        if refused is not None:
            return refused
        to, body, media = form.get("To", ""), form.get("Body", ""), form.getall("MediaUrl", [])
        sender = form.get("From") or form.get("MessagingServiceSid")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        content_sid = form.get("ContentSid", "")
        if content_sid:
            rendered = self._content_body(content_sid, form.get("ContentVariables", ""))
            if isinstance(rendered, web.Response):
                return rendered
            body = rendered
        elif not body and not media:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        sid, now = new_sid("SM"), _now()
        uri = f"{API.format(account=self.account_sid)}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body, "date_created": now,
            "date_sent": None, "date_updated": now, "direction": "outbound-api", "error_code": None,
            "error_message": None, "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": str(len(media)), "num_segments": str(max(1, -(-len(body) // 153))), "price": None,
            "price_unit": "USD", "sid": sid, "status": "queued" if form.get("From") else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": to, "uri": f"{uri}.json",
        }
        self.messages[sid] = message
        callback = form.get("StatusCallback")
        if callback and self.hub_url:
            self._spawn(self._deliver(sid, callback, media))
        return web.json_response(message, status=201)

    def _content_body(self, sid: str, variables: str) -> str | web.Response:
        """The text a template sends with VARIABLES (ContentVariables' JSON) filled in, or Twilio's error."""
        content = self.contents.get(sid)
        if content is None:
            return twilio_error(400, 21655, "The ContentSid is Invalid.")
        try:
            values = json.loads(variables) if variables else {}
        except ValueError:
            return twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")
        body = str(content["types"]["twilio/text"]["body"])
        for key, sample in content["variables"].items():
            body = body.replace("{{" + key + "}}", values.get(key, sample))
        return body

    async def list_contents(self, request: web.Request) -> web.Response:
        if (refused := await self._gate_content(request, "Content")) is not None:
            return refused
        size = int(request.query.get("PageSize", "50"))
        page = int(request.query.get("Page", "0"))
        items = list(self.contents.values())
        chunk = items[page * size:(page + 1) * size]
        base = f"https://content.twilio.com{CONTENT}"
        more = (page + 1) * size < len(items)
        meta = {"page": page, "page_size": size, "key": "contents", "url": f"{base}?PageSize={size}&Page={page}",
                "first_page_url": f"{base}?PageSize={size}&Page=0", "previous_page_url": None,
                "next_page_url": f"{request.scheme}://{request.host}{CONTENT}?PageSize={size}&Page={page + 1}"
                if more else None}
        return web.json_response({"contents": chunk, "meta": meta})

    async def get_content(self, request: web.Request) -> web.Response:
        if (refused := await self._gate_content(request, "Content")) is not None:
            return refused
        found = self.contents.get(request.match_info["sid"])
        if found is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return web.json_response(found)

    async def get_approval(self, request: web.Request) -> web.Response:
        if (refused := await self._gate_content(request, "ApprovalRequests")) is not None:
            return refused
        found = self.approvals.get(request.match_info["sid"])
        if found is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return web.json_response(found)

    async def _gate_content(self, request: web.Request, resource: str) -> web.Response | None:
        # The Content API has no account in its path: the credentials say whose templates these are.
        self.requests.append((resource, MultiDict(request.query)))
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        return await self._gate(request, resource)

    async def create_call(self, request: web.Request) -> web.Response:
        form = MultiDict((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
        self.requests.append(("Calls", form))
        refused = await self._gate(request, "Calls")
        if refused is not None:
            return refused
        if not form.get("To") or not form.get("From"):
            return twilio_error(400, 21201 if not form.get("To") else 21213, "'To' and 'From' are required.")
        if not form.get("Url") and not form.get("Twiml") and not form.get("ApplicationSid"):
            return twilio_error(400, 21205, "Url, Twiml or ApplicationSid is required.")
        sid, now = new_sid("CA"), _now()
        uri = f"{API.format(account=self.account_sid)}/Calls/{sid}"
        call = {
            "account_sid": self.account_sid, "annotation": None, "answered_by": None, "api_version": "2010-04-01",
            "caller_name": None, "date_created": now, "date_updated": now, "direction": "outbound-api",
            "duration": None, "end_time": None, "forwarded_from": None, "from": form["From"],
            "from_formatted": form["From"], "group_sid": None, "parent_call_sid": None, "phone_number_sid": None,
            "price": None, "price_unit": "USD", "sid": sid, "start_time": None, "status": "queued",
            "subresource_uris": {"recordings": f"{uri}/Recordings.json"}, "to": form["To"],
            "to_formatted": form["To"], "trunk_sid": None, "uri": f"{uri}.json", "queue_time": "0",
        }
        self.calls[sid] = call
        if self.hub_url and form.get("Twiml"):
            self._spawn(self._progress(sid, form))
        return web.json_response(call, status=201)

    async def update_call(self, request: web.Request) -> web.Response:
        """Modify a live call: new TwiML (Twiml or Url) or a new status (completed, canceled)."""
        form = MultiDict((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
        form.add("CallSid", request.match_info["call"])
        self.requests.append(("Calls.update", form))
        refused = await self._gate(request, "Calls.update")
        if refused is not None:
            return refused
        sid = request.match_info["call"]
        call = self.calls.get(sid)
        if call is None:
            if not sid.startswith("CA"):
                return twilio_error(404, 20404, f"The requested resource /Calls/{sid}.json was not found")
            # A call that reached the hub by webhook: Twilio knows it, the simulator learns of it now.
            call = self.calls[sid] = {"sid": sid, "account_sid": self.account_sid, "status": "in-progress",
                                      "direction": "inbound", "api_version": "2010-04-01"}
        if call.get("status") in ("completed", "canceled", "failed", "busy", "no-answer"):
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if form.get("Status") in ("completed", "canceled"):
            call["status"] = form["Status"]
        if form.get("Twiml"):
            call["twiml"] = form["Twiml"]
            enqueue = ET.fromstring(form["Twiml"]).find("Enqueue")
            if enqueue is not None and enqueue.text:
                self.handoffs[enqueue.text] = (sid, enqueue.get("action") or "")
        return web.json_response({**call, "date_updated": _now()})

    async def delete_queue(self, request: web.Request) -> web.Response:
        self.requests.append(("Queues.delete", MultiDict({"QueueSid": request.match_info["queue"]})))
        refused = await self._gate(request, "Queues.delete")
        return refused if refused is not None else web.Response(status=204)

    async def get_media(self, request: web.Request) -> web.StreamResponse:
        self.media_gets.append(request.path)
        if self.media_delay:
            await asyncio.sleep(self.media_delay)
        refused = await self._gate(request, "media")
        if refused is not None:
            return refused
        found = self.media.get(request.path)
        if found is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return web.Response(body=found[0], content_type=found[1])

    # -- a call's progress, as Twilio reports it (the demo's agents "answer" the calls the hub places) -------------

    async def post_signed(self, url: str, params: dict[str, str]) -> int:
        """POST PARAMS to the hub at URL's path and query, signed over URL as Twilio signs it."""
        return (await self.fetch_twiml(url, params))[0]

    async def fetch_twiml(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        """POST PARAMS signed to the hub, as Twilio asks a webhook for the next TwiML: (HTTP status, body)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        parts = urlsplit(url)
        target = self.hub_url + parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, params)}
        try:
            async with self._http.post(target, data=params, headers=headers) as resp:
                return resp.status, await resp.text()
        except aiohttp.ClientError as e:
            log.warning("simulated callback to %s failed: %s", target, e)
            return 0, ""

    async def _progress(self, sid: str, form: MultiDict[str]) -> None:
        """The callee answers, talks, hangs up. <Dial><Queue> connects the caller waiting in that queue;
        <Dial>number</Dial> reports the dialed leg to its action URL."""
        call = self.calls[sid]
        base = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": sid, "From": form["From"],
                "To": form["To"], "Direction": "outbound-api"}
        callback = form.get("StatusCallback", "")
        doc = ET.fromstring(form["Twiml"])
        await asyncio.sleep(self.ring_seconds)
        if form["To"] in self.unanswered:
            call["status"] = self.unanswered[form["To"]]
            if callback:
                await self.post_signed(callback, {**base, "CallStatus": call["status"], "CallDuration": "0"})
            return
        call["status"] = "in-progress"
        if callback:
            await self.post_signed(callback, {**base, "CallStatus": "in-progress"})
        gather = doc.find("Gather")
        if gather is not None and gather.get("action"):
            key = self.keypad.get(form["To"], "1")
            if key:
                status, body = await self.fetch_twiml(gather.get("action") or "", {**base, "CallStatus": "in-progress",
                                                                                  "Digits": key})
                doc = ET.fromstring(body) if status == 200 and body else ET.Element("Response")
            else:  # nothing pressed: Twilio carries on with the verbs after <Gather>
                await asyncio.sleep(float(gather.get("timeout") or 5) / 4)
        dial = doc.find("Dial")
        queue = dial.find("Queue") if dial is not None else None
        if queue is not None and queue.text:
            waited = 0.0
            while queue.text not in self.handoffs and waited < 30:
                await asyncio.sleep(0.5)
                waited += 0.5
            caller = self.handoffs.pop(queue.text, None)
            if caller is None:
                log.info("simulated call %s: nobody came to queue %s", sid, queue.text)
            else:
                caller_sid, action = caller
                await self.post_signed(action, {"AccountSid": self.account_sid, "CallSid": caller_sid,
                                                "QueueResult": "bridged", "QueueTime": str(int(self.ring_seconds)),
                                                "QueueSid": new_sid("QU"), "CallStatus": "in-progress"})
                await asyncio.sleep(self.talk_seconds)
                await self.post_signed(self.hub_url_public("/webhooks/twilio/voice/status"), {
                    "AccountSid": self.account_sid, "CallSid": caller_sid, "CallStatus": "completed",
                    "CallDuration": str(int(self.talk_seconds + self.ring_seconds))})
        elif dial is not None and dial.get("action"):
            dialed = new_sid("CA")
            number = dial.find("Number")
            events = (number.get("statusCallbackEvent") or "").split() if number is not None else []
            progress = number.get("statusCallback") or "" if number is not None else ""
            leg = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": dialed,
                   "ParentCallSid": sid, "From": dial.get("callerId") or form["From"],
                   "To": (number.text if number is not None else dial.text) or "", "Direction": "outbound-dial",
                   "CallbackSource": "call-progress-events"}

            async def report(event: str, status: str, **extra: str) -> None:
                # The dialed leg's own status callback (<Number statusCallback>), for the events asked for.
                if progress and event in events:
                    await self.post_signed(progress, {**leg, "CallStatus": status, "Timestamp": _now(), **extra})

            await report("initiated", "initiated")
            await report("ringing", "ringing")
            await asyncio.sleep(self.ring_seconds)
            await report("answered", "in-progress")
            await asyncio.sleep(self.talk_seconds)
            await report("completed", "completed", CallDuration=str(int(self.talk_seconds)))
            await self.post_signed(dial.get("action") or "", {**base, "CallStatus": "in-progress",
                                                             "DialCallStatus": "completed",
                                                             "DialCallSid": dialed,
                                                             "DialCallDuration": str(int(self.talk_seconds))})
        call["status"] = "completed"
        if callback:
            await self.post_signed(callback, {**base, "CallStatus": "completed",
                                              "CallDuration": str(int(self.talk_seconds))})

    def hub_url_public(self, path: str) -> str:
        """The hub's address as Twilio knows it (signatures cover it): the public URL, else hub_url."""
        return (self.public_url or self.hub_url) + path

    # -- status callbacks, as Twilio sends them ------------------------------------------------------------------

    async def fetch_media(self, url: str) -> tuple[int, bytes]:
        """GET an outgoing file from the hub as Twilio does before sending an MMS (the public URL's path, sent to
        hub_url); returns (HTTP status, body)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        parts = urlsplit(url)
        target = self.hub_url + parts.path + (f"?{parts.query}" if parts.query else "")
        async with self._http.get(target) as resp:
            body = await resp.read()
        self.fetched.append((url, resp.status, len(body)))
        return resp.status, body

    async def _deliver(self, sid: str, callback: str, media: list[str] | None = None) -> None:
        for url in media or []:
            try:
                got, _ = await self.fetch_media(url)
            except aiohttp.ClientError as e:
                log.warning("simulated media fetch of %s failed: %s", url, e)
                got = 0
            if got != 200:
                await asyncio.sleep(self.callback_delay)
                await self.status_callback(sid, callback, "failed", "11200")  # Twilio: HTTP retrieval failure
                return
        for status in ("sent", "delivered"):
            await asyncio.sleep(self.callback_delay)
            await self.status_callback(sid, callback, status)

    async def status_callback(self, sid: str, callback: str, status: str, error_code: str = "") -> int:
        """POST a signed message status callback for SID to the hub; returns the hub's HTTP status."""
        msg = self.messages[sid]
        msg["status"] = status
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": msg["from"] or "",
                  "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status, "To": msg["to"]}
        if error_code:
            params["ErrorCode"] = error_code
        if self._http is None:
            self._http = aiohttp.ClientSession()
        target = self.hub_url + urlsplit(callback).path
        headers = {"X-Twilio-Signature": sign(self.auth_token, callback, params)}
        try:
            async with self._http.post(target, data=params, headers=headers) as resp:
                return resp.status
        except aiohttp.ClientError as e:
            log.warning("simulated status callback to %s failed: %s", target, e)
            return 0

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, _app: web.Application) -> None:
        await background.stop(self._tasks)
        if self._http is not None:
            await self._http.close()
