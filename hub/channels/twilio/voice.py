"""Phone calls through Twilio: each call lands on the caller's timeline as a "call" message; TwiML greets the
caller, offers an optional keypad menu and <Enqueue>s them (a wait URL tells their position); no agent in time, or
outside business hours (the number's own, else the stored hours of the queue the call goes to), means voicemail
with a transcript. Accepted calls are bridged by calling the agent."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from hub import tasks as background
from hub.api.params import optional_number
from hub.business_hours import is_open
from hub.channels.base import (
    MISSED,
    CallListener,
    CallQueue,
    Capabilities,
    Channel,
    Fact,
    IngestFailed,
    IngestResult,
    LegListener,
    LegStatus,
    MenuChoice,
    SendError,
    SendResult,
)
from hub.channels.twilio.account import TwilioAccount, TwilioSink, rest_error
from hub.channels.twilio.outcome import summary
from hub.channels.twilio.signature import Form
from hub.channels.twilio.sms import MAX_BODY, fact_answer, twiml
from hub.config import TwilioNumberSettings
from hub.identities import IdentityError
from hub.model import ANSWER_META, AttachmentIn, Identity, Inbound, Outbound, format_duration, utcnow

log = logging.getLogger("hub.channels.twilio")

BASE = "/webhooks/twilio/voice"
#: how long one announcement of the caller's position lasts before Twilio asks the wait URL again
HOLD_SECONDS = 20

#: the hand-off queue of one caller: the bridged agent dials it, so exactly the accepted caller is connected
HANDOFF_PREFIX = "hub-"
#: seconds a screened agent has to press 1 after the announcement
SCREEN_SECONDS = 8


#: whether a queue is open at a time by its stored business hours (its own, else the default's; none: open)
QueueOpen = Callable[[str, datetime], Awaitable[bool]]


async def _always_open(queue: str, at: datetime) -> bool:
    return True


async def _default_call_queue(choice: MenuChoice) -> str:
    return choice.option or choice.conversation_queue


async def _ignore_leg(status: LegStatus) -> None:
    return None


async def _ignore_call(call_sid: str) -> None:
    return None


def handoff_queue(caller_call_sid: str) -> str:
    return HANDOFF_PREFIX + caller_call_sid


def _seconds(form: Form, key: str) -> int | None:
    try:
        return int(form.get(key, ""))
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class VoiceChannel(Channel):
    name: ClassVar[str] = "voice"
    capabilities = Capabilities(max_text_length=MAX_BODY, voice=True)
    identity_kinds = ("phone",)

    def __init__(
        self,
        sink: TwilioSink,
        account: TwilioAccount,
        default_queue: str = "support",
        clock: Callable[[], datetime] = utcnow,
        call_queue: CallQueue = _default_call_queue,
    ) -> None:
        super().__init__(sink)
        self.twilio_sink = sink
        self.account = account
        self.default_queue = default_queue
        self.clock = clock
        self.call_queue = call_queue
        self.on_leg: LegListener = _ignore_leg
        self.on_waiting: CallListener = _ignore_call
        self.queue_open: QueueOpen = _always_open
        self._cleanups: set[asyncio.Task[None]] = set()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(BASE, self.handle_call),
            web.post(f"{BASE}/menu", self.handle_menu),
            web.post(f"{BASE}/wait", self.handle_wait),
            web.post(f"{BASE}/queue-result", self.handle_queue_result),
            web.post(f"{BASE}/csat", self.handle_csat),
            web.post(f"{BASE}/recorded", self.handle_recorded),
            web.post(f"{BASE}/status", self.handle_status),
            web.post(f"{BASE}/dialed", self.handle_dialed),
            web.post(f"{BASE}/screen", self.handle_screen),
            web.post(f"{BASE}/recording", self.handle_recording),
            web.post(f"{BASE}/transcription", self.handle_transcription),
        ]

    async def start(self) -> None:
        await self.account.start()

    async def stop(self) -> None:
        await background.stop(self._cleanups)
        await self.account.stop()

    async def send(self, outbound: Outbound) -> SendResult:
        raise SendError("a phone call cannot carry a text reply: send it on channel sms to the same number",
                        permanent=True)

    # -- TwiML -----------------------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock().timestamp()

    def _url(self, path: str, **query: str) -> str:
        return self.account.url(BASE + path + (("?" + urlencode(query)) if query else ""))

    def _enqueue(self, response: VoiceResponse, queue: str) -> VoiceResponse:
        response.enqueue(
            queue, action=self._url("/queue-result"), method="POST",
            wait_url=self._url("/wait"), wait_url_method="POST",
        )
        return response

    def _menu(self, response: VoiceResponse, prompt: str, retry: int) -> VoiceResponse:
        gather = response.gather(num_digits=1, action=self._url("/menu", retry=str(retry)), method="POST", timeout=6)
        gather.say(prompt)
        return response

    def _voicemail(self, prompt: str, caller: str, number: str, after: VoiceResponse | None = None) -> VoiceResponse:
        r = after or VoiceResponse()
        r.say(prompt)
        r.record(
            action=self._url("/recorded"), method="POST", max_length=120, play_beep=True, finish_on_key="#",
            transcribe=True, transcribe_callback=self._url("/transcription"),
            recording_status_callback=self._url("/recording", **{"from": caller, "to": number}),
            recording_status_callback_method="POST", recording_status_callback_event="completed",
        )
        r.say("We did not receive a message. Goodbye.")
        r.hangup()
        return r

    async def _closed(self, line: TwilioNumberSettings, queue: str) -> bool:
        """Out of hours for a call to LINE going to QUEUE: the number's own hours when set, else the queue's stored
        business hours (else the default's)."""
        now = self.clock()
        if line.hours:
            return not is_open(line.hours, line.timezone, now)
        return not await self.queue_open(queue, now)

    # -- the call's record on the timeline ---------------------------------------------------------------------

    def number(self, number: str) -> TwilioNumberSettings:
        return self.account.number(number)

    def handoff_queue(self, caller_call_sid: str) -> str:
        return handoff_queue(caller_call_sid)

    async def note(self, call_sid: str, **meta: Any) -> dict[str, Any] | None:
        """Add facts to a call's message (e.g. why bridging it failed); its summary text follows in the same write."""
        return await self._note(call_sid, **meta)

    async def _note(self, call_sid: str, **meta: Any) -> dict[str, Any] | None:
        """Add facts to the call's message and refresh its summary text in one transaction (no reader sees the
        facts without their text); the call's meta, or None if unknown."""
        msg = await self.twilio_sink.amend(self.name, call_sid, meta=meta, summarize=summary)
        if msg is None:
            log.info("callback for call %s, which is not on any timeline", call_sid)
            return None
        return msg.meta

    def parse(self, payload: Any) -> Inbound:
        form: dict[str, str] = dict(payload)
        sid, caller, to = form.get("CallSid", ""), form.get("From", ""), form.get("To", "")
        if not sid or not caller:
            raise ValueError("not a Twilio voice webhook: CallSid and From are required")
        meta = {"call_sid": sid, "from": caller, "to": to, "call_status": form.get("CallStatus", "ringing"),
                "outcome": "ringing"}
        return Inbound(
            channel=self.name, identity=Identity("phone", caller), kind="call", text=summary(meta),
            external_id=sid, name=form.get("CallerName") or None,
            business_line=self.account.line(to) if to else None, meta=meta,
        )

    # -- webhooks --------------------------------------------------------------------------------------------------

    async def handle_call(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        raw = dict(form)
        conversation_queue = self.default_queue
        result: IngestResult | None = None
        try:
            result = await self.sink.ingest(self.parse(raw), raw=raw)
            conversation_queue = result.conversation.queue or conversation_queue
        except (ValueError, IdentityError) as e:
            # The caller is still served; the event is kept and flagged (e.g. an anonymous caller id).
            await self.sink.flag(self.name, form.get("CallSid"), raw, str(e),
                                 "bad_number" if isinstance(e, IdentityError) else None)
        except IngestFailed:
            pass  # journaled; `hub events replay` finishes it. The caller is still served.
        sid, caller, number = form.get("CallSid", ""), form.get("From", ""), form.get("To", "")
        line = self.account.number(number)
        # With a menu and no hours of the number's own, the queue (so its hours) is known after the choice.
        if (line.hours or not line.menu) and await self._closed(line, conversation_queue):
            if result is not None:
                await self._note(sid, outcome="after_hours", after_hours=True)
            return twiml(str(self._voicemail(line.closed_prompt, caller, number)))
        if result is not None:
            # queued_at: the caller's wait (max_wait_seconds) counts from here, through any later hand-off queue.
            await self._note(sid, queue=conversation_queue, conversation_queue=conversation_queue,
                             outcome="menu" if line.menu else "queued", queued_at=self._now())
            if not result.duplicate and result.conversation_how == "joined":
                # (a new conversation is routed instead: a direct queue's assignment rings the agent itself)
                await self.on_waiting(sid)
        response = VoiceResponse()
        if line.greeting:
            response.say(line.greeting)
        if line.menu:
            self._menu(response, line.menu_prompt or "Please choose an option.", retry=0)
        # Without a menu, or when no key is pressed, the caller waits in the conversation's queue.
        return twiml(str(self._enqueue(response, conversation_queue)))

    async def handle_menu(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        sid, digits = form.get("CallSid", ""), form.get("Digits", "")
        line = self.account.number(form.get("To", ""))
        choice = line.menu.get(digits)
        retry = optional_number(request.query.get("retry", "")) or 0
        meta = await self._note(sid, ivr=digits or None, outcome="queued", queued_at=self._now()) if sid else None
        conversation_queue = str((meta or {}).get("conversation_queue") or self.default_queue)
        response = VoiceResponse()
        if choice is None and retry < 1:
            response.say("Sorry, that is not one of the options.")
            self._menu(response, line.menu_prompt or "Please choose an option.", retry=retry + 1)
        queue = await self.call_queue(MenuChoice(
            call_sid=sid, line=self.account.line(form["To"]) if form.get("To") else None, digits=digits,
            option=choice, conversation_queue=conversation_queue,
        ))
        if not line.hours and await self._closed(line, queue):
            # The chosen queue (or, asked again, the one a caller pressing nothing falls to) is closed: voicemail.
            if sid:
                await self._note(sid, queue=queue, outcome="after_hours", after_hours=True)
            return twiml(str(self._voicemail(line.closed_prompt, form.get("From", ""), form.get("To", ""),
                                             after=response)))
        if sid:
            await self._note(sid, queue=queue)
        return twiml(str(self._enqueue(response, queue)))

    async def handle_wait(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        line = self.account.number(form.get("To", ""))
        waited = _seconds(form, "QueueTime") or 0
        response = VoiceResponse()
        if request.query.get("handoff"):
            # An agent is being rung for this caller; should nobody pick up, routing offers the call again.
            # QueueTime restarts in the hand-off queue: the wait counts from when the caller first queued.
            since = _float(request.query.get("since", ""))
            in_all = max(waited, int(self._now() - since)) if since is not None else waited
            if in_all >= line.max_wait_seconds:
                response.leave()
                return twiml(str(response))
            if waited < HOLD_SECONDS:  # just moved here
                response.say("Connecting you to an agent.")
            response.pause(length=max(1, min(HOLD_SECONDS, int(line.max_wait_seconds - in_all))))
            return twiml(str(response))
        if waited >= line.max_wait_seconds:
            response.leave()  # the <Enqueue> action then offers voicemail
            return twiml(str(response))
        position = _seconds(form, "QueuePosition")
        if position == 1:
            response.say("You are next in line.")
        elif position:
            response.say(f"You are caller number {position} in line.")
        response.pause(length=max(1, min(HOLD_SECONDS, int(line.max_wait_seconds - waited))))
        return twiml(str(response))

    async def handle_queue_result(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        sid, result = form.get("CallSid", ""), form.get("QueueResult", "")
        waited = _seconds(form, "QueueTime")
        caller, number = form.get("From", ""), form.get("To", "")
        if request.query.get("handoff"):
            self._delete_queue(form.get("QueueSid", ""))
            before = await self._note(sid) or {}
            if isinstance(before.get("queue_seconds"), int) and waited is not None:
                waited += int(before["queue_seconds"])  # the time in the line before the hand-off counts too
        if result == "bridged":
            await self._note(sid, outcome="answered", queue_seconds=waited)
            response = VoiceResponse()
            # The agent hung up and the caller is still on the line: the satisfaction question, if their queue asks.
            survey = await self.twilio_sink.call_survey(sid)
            if survey is not None:
                gather = response.gather(num_digits=1, action=self._url("/csat", survey=str(survey[0])),
                                         method="POST", timeout=8)
                gather.say(f"{survey[1]} Press a number from 1, very unhappy, to 5, very happy.")
                response.say("Thank you for calling. Goodbye.")
            response.hangup()
            return twiml(str(response))
        if result == "hangup":
            await self._note(sid, outcome="abandoned", queue_seconds=waited)
            return twiml(str(VoiceResponse()))
        if result == "redirected":  # the hub moved the call on purpose (to its hand-off queue)
            await self._note(sid, queue_seconds=waited)
            return twiml(str(VoiceResponse()))
        # leave (waited too long), queue-full, error: nobody can take the call now.
        await self._note(sid, outcome="no_agent", queue_seconds=waited, queue_result=result or None)
        return twiml(str(self._voicemail(self.account.number(number).voicemail_prompt, caller, number)))

    async def handle_csat(self, request: web.Request) -> web.Response:
        """The caller's key press on the satisfaction question (<Gather>): 1-5 answers through the inbound path."""
        form = await self.account.signature.form(request)
        digits, survey = form.get("Digits", ""), request.query.get("survey", "")
        response = VoiceResponse()
        if digits in ("1", "2", "3", "4", "5") and survey.isdigit() and len(survey) <= 18:
            raw = dict(form)
            inbound = Inbound(
                channel=self.name, identity=Identity("phone", form.get("From", "")), text=f"{digits}/5",
                external_id=f"{form.get('CallSid', '')}:csat",
                meta={ANSWER_META: {"survey": int(survey), "score": int(digits)}, "call_sid": form.get("CallSid")},
            )
            try:
                await self.sink.ingest(inbound, raw=raw)
                response.say("Thank you for your answer. Goodbye.")
            except (ValueError, IdentityError) as e:
                await self.sink.flag(self.name, inbound.external_id, raw, str(e),
                                     "bad_number" if isinstance(e, IdentityError) else None)
                response.say("Thank you. Goodbye.")
            except IngestFailed:
                response.say("Thank you. Goodbye.")  # journaled: `hub events replay` finishes it
        else:
            response.say("Thank you for calling. Goodbye.")
        response.hangup()
        return twiml(str(response))

    async def handle_recorded(self, request: web.Request) -> web.Response:
        await self.account.signature.form(request)
        response = VoiceResponse()
        response.say("Thank you. We will get back to you soon. Goodbye.")
        response.hangup()
        return twiml(str(response))

    async def handle_status(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        status = form.get("CallStatus", "")
        duration = _seconds(form, "CallDuration")
        if request.query.get("leg") == "agent":
            return await self._placed_leg(request, form, status, duration)
        if request.query.get("leg") == "customer":
            return await self._dialed_leg(request, form, status, duration)
        sid = form.get("CallSid", "")
        if not sid or not status:
            raise web.HTTPBadRequest(text="not a Twilio call status callback: CallSid and CallStatus are required")
        # Journaled, and applied with call_outcome; a status for a call not on a timeline yet waits for it.
        fact = Fact("call", self.name, sid, key=status, meta={"call_status": status, "duration_seconds": duration})
        return fact_answer(await self.twilio_sink.record_fact(fact, raw=dict(form)))

    async def _placed_leg(self, request: web.Request, form: Form, status: str, duration: int | None) -> web.Response:
        """A call the hub placed: the agent leg of a bridge (who answered, for how long) or a click-to-call leg."""
        caller_sid, agent = request.query.get("call", ""), request.query.get("agent", "")
        message = request.query.get("message", "")
        leg = LegStatus(
            leg="agent", call_sid=form.get("CallSid", ""), status=status, duration=duration,
            caller_call_sid=caller_sid, agent_id=optional_number(agent),
            message_id=optional_number(message),
        )
        if caller_sid:
            facts: dict[str, Any] = {"agent_call_sid": leg.call_sid, "agent_call_status": status}
            if leg.agent_id is not None:
                facts["agent_id"] = leg.agent_id
            meta = await self._note(caller_sid, **facts) or {}
            # A screened agent who hung up, let voicemail answer or pressed nothing never took the call: missed.
            declined = (request.query.get("screen") == "1" and status == "completed"
                        and meta.get("screen_accepted") != leg.call_sid)
            if status == "completed" and duration is not None and not declined:
                await self._note(caller_sid, talk_seconds=duration)
            if status in MISSED or declined:
                log.info("agent %s did not take the bridge for call %s (%s)", agent or "?", caller_sid,
                         "did not press 1" if declined else status)
            if declined:
                leg = dataclasses.replace(leg, declined=True)
        await self.on_leg(leg)
        return web.Response(status=204)

    async def _dialed_leg(self, request: web.Request, form: Form, status: str, duration: int | None) -> web.Response:
        """Click-to-call: the customer's leg is ringing, answered (in-progress) or over, as it happens."""
        agent, message = request.query.get("agent", ""), request.query.get("message", "")
        message_id = optional_number(message)
        if message_id is None or not status:
            raise web.HTTPBadRequest(text="customer leg status without ?message= or CallStatus")
        await self.on_leg(LegStatus(
            leg="customer", call_sid=form.get("CallSid", ""), status=status, duration=duration, caller_call_sid="",
            agent_id=optional_number(agent), message_id=message_id,
        ))
        return web.Response(status=204)

    async def handle_dialed(self, request: web.Request) -> web.Response:
        """Click-to-call: the customer's leg ended (answered and hung up, busy, no answer...)."""
        form = await self.account.signature.form(request)
        agent, message = request.query.get("agent", ""), request.query.get("message", "")
        await self.on_leg(LegStatus(
            leg="customer", call_sid=form.get("DialCallSid", ""), status=form.get("DialCallStatus", ""),
            duration=_seconds(form, "DialCallDuration"), caller_call_sid="",
            agent_id=optional_number(agent), message_id=optional_number(message),
        ))
        response = VoiceResponse()
        response.hangup()
        return twiml(str(response))

    async def handle_screen(self, request: web.Request) -> web.Response:
        """A screened agent answered the announcement: 1 connects them to the caller's hand-off queue; anything else
        hangs up, and the leg's status callback puts the call back in line."""
        form = await self.account.signature.form(request)
        caller_sid, digits = request.query.get("call", ""), form.get("Digits", "")
        response = VoiceResponse()
        if not caller_sid:
            raise web.HTTPBadRequest(text="screen callback without ?call= (the waiting caller's CallSid)")
        if digits != "1":
            await self._note(caller_sid, screen_result=f"agent pressed {digits}" if digits else "no key")
            response.say("The call goes to another agent. Goodbye.")
            response.hangup()
            return twiml(str(response))
        meta = await self._note(caller_sid, screen_accepted=form.get("CallSid", ""), screen_result="accepted")
        if meta is None or meta.get("outcome") != "queued":
            response.say("Sorry, the caller is no longer waiting. Goodbye.")
            response.hangup()
            return twiml(str(response))
        response.dial().queue(handoff_queue(caller_sid))
        return twiml(str(response))

    def _voicemail_inbound(self, form: Form, caller: str, number: str, text: str, meta: dict[str, Any]) -> Inbound:
        recording_sid = form.get("RecordingSid", "")
        url = form.get("RecordingUrl", "")
        attachments = [AttachmentIn(f"voicemail-{recording_sid}.mp3", "audio/mpeg", url=url + ".mp3")] if url else []
        return Inbound(
            channel=self.name, identity=Identity("phone", caller), kind="voicemail", text=text,
            external_id=recording_sid, attachments=attachments,
            business_line=self.account.line(number) if number else None,
            meta={"call_sid": form.get("CallSid"), "to": number, **meta},
        )

    async def handle_recording(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        raw = dict(form)
        recording_sid, call_sid = form.get("RecordingSid", ""), form.get("CallSid", "")
        caller = request.query.get("from") or form.get("From") or ""
        number = request.query.get("to") or form.get("To") or ""
        if form.get("RecordingStatus", "completed") != "completed":
            await self._note(call_sid, voicemail=f"recording {form.get('RecordingStatus')}")
            return web.Response(status=204)
        seconds = _seconds(form, "RecordingDuration")
        if not recording_sid or not caller:
            jid = await self.sink.flag(self.name, recording_sid or None, raw, "recording callback without "
                                       "RecordingSid or caller (?from= in the callback URL)")
            return web.Response(status=202, headers={"X-Hub-Flagged": f"journal {jid}"})
        text = f"Voicemail ({format_duration(seconds or 0)}); transcript pending"
        try:
            result = await self.sink.ingest(
                self._voicemail_inbound(form, caller, number, text, {"recording_seconds": seconds,
                                                                      "transcript": "pending"}),
                raw=raw,
            )
        except (ValueError, IdentityError) as e:
            jid = await self.sink.flag(self.name, recording_sid, raw, str(e))
            return web.Response(status=202, headers={"X-Hub-Flagged": f"journal {jid}"})
        except IngestFailed as e:
            return web.Response(status=202, headers={"X-Hub-Flagged": f"journal {e.journal_id}"})
        if not result.duplicate:
            self.account.media_arrived()
        if call_sid:
            await self._note(call_sid, outcome="voicemail", voicemail_message_id=result.message.id)
        return web.Response(status=204)

    async def handle_transcription(self, request: web.Request) -> web.Response:
        form = await self.account.signature.form(request)
        raw = dict(form)
        recording_sid = form.get("RecordingSid", "")
        if not recording_sid:
            raise web.HTTPBadRequest(text="not a Twilio transcription callback: RecordingSid is required")
        ok = form.get("TranscriptionStatus", "") == "completed"
        transcript = form.get("TranscriptionText", "").strip()
        text = transcript if ok and transcript else "Voicemail (no transcript: listen to the recording)"
        meta = {"transcript": "completed" if ok else "failed", "transcription_sid": form.get("TranscriptionSid")}
        fact = Fact("amend", self.name, recording_sid, key="transcription", text=text, meta=meta)
        if (await self.twilio_sink.record_fact(fact, raw=raw)).state != "pending":
            return web.Response(status=204)
        # The transcript came first: the voicemail starts here (and takes the waiting transcript along); the
        # recording callback will be a duplicate.
        caller, number = form.get("From", ""), form.get("To", "")
        try:
            result = await self.sink.ingest(self._voicemail_inbound(form, caller, number, text, meta), raw=raw)
        except (ValueError, IdentityError) as e:
            jid = await self.sink.flag(self.name, recording_sid, raw, str(e))
            return web.Response(status=202, headers={"X-Hub-Flagged": f"journal {jid}"})
        except IngestFailed as e:
            return web.Response(status=202, headers={"X-Hub-Flagged": f"journal {e.journal_id}"})
        if result.duplicate:  # the recording callback won a race: the transcript waits no more
            await self.twilio_sink.record_fact(fact, raw=raw)
        else:
            self.account.media_arrived()
        return web.Response(status=204)

    # -- calls the hub places --------------------------------------------------------------------------------------

    async def bridge(
        self, *, queue: str, from_number: str, agent: str = "", caller_call_sid: str = "", agent_id: int | None = None,
        screen: str = "",
    ) -> str:
        """Connect an accepted call: ring the agent's phone (or "client:identity"; default: the number's
        agent_phone) with TwiML that dials the caller's queue. With SCREEN (who is calling, say "Call from Ann in
        Support."), the agent hears it first and must press 1 before the queue is dialed. Returns the agent leg's
        CallSid; raises SendError (permanent or not) if it cannot."""
        agent = agent or self.account.number(from_number).agent_phone
        if not agent:
            raise SendError(f"no phone to ring for the agent: pass one, or set channels.twilio.numbers."
                            f"\"{from_number}\".agent_phone", permanent=True)
        twiml_doc = VoiceResponse()
        query = {"call": caller_call_sid, "agent": "" if agent_id is None else str(agent_id)}
        if screen and caller_call_sid:
            # No key in time (or a voicemail greeting talking over it) falls through to the hang-up: a missed offer.
            gather = twiml_doc.gather(num_digits=1, timeout=SCREEN_SECONDS, action=self._url("/screen", **query),
                                      method="POST")
            gather.say(f"{screen} Press 1 to accept.")
            twiml_doc.say("The call goes to another agent. Goodbye.")
            twiml_doc.hangup()
            query["screen"] = "1"
        else:
            twiml_doc.dial().queue(queue)
        callback = self._url("/status", leg="agent", **query)
        try:
            call = await self.account.client.calls.create_async(
                to=agent, from_=from_number, twiml=str(twiml_doc), status_callback=callback,
                status_callback_method="POST", status_callback_event=["initiated", "answered", "completed"],
            )
        except Exception as e:
            raise rest_error(e, f"bridging call {caller_call_sid or queue} to {agent} failed") from None
        if caller_call_sid:
            await self._note(caller_call_sid, agent_call_sid=str(call.sid),
                             **({"agent_id": agent_id} if agent_id is not None else {}))
        return str(call.sid)

    async def hand_off(self, caller_call_sid: str, queued_at: float | None = None) -> str:
        """Move a waiting caller out of the shared line into their own hand-off queue, which the bridged agent
        dials: <Dial><Queue> takes whoever is first in a queue, and this way that is exactly the accepted caller.
        QUEUED_AT (epoch seconds) is when the caller first queued: their max_wait_seconds keeps counting from it.
        Returns the hand-off queue's name."""
        queue = handoff_queue(caller_call_sid)
        wait = {"handoff": "1"} | ({"since": str(int(queued_at))} if queued_at is not None else {})
        response = VoiceResponse()
        response.enqueue(
            queue, action=self._url("/queue-result", handoff="1"), method="POST",
            wait_url=self._url("/wait", **wait), wait_url_method="POST",
        )
        try:
            await self.account.client.calls(caller_call_sid).update_async(twiml=str(response))
        except Exception as e:
            raise rest_error(e, f"moving call {caller_call_sid} to its agent failed") from None
        await self._note(caller_call_sid, twilio_queue=queue)
        return queue

    def _delete_queue(self, queue_sid: str) -> None:
        """Twilio keeps every queue ever used; a caller's hand-off queue is removed once they have left it."""
        if not queue_sid.startswith("QU"):
            return

        async def delete() -> None:
            try:
                await self.account.client.queues(queue_sid).delete_async()
            except Exception as e:
                log.info("hand-off queue %s not deleted: %s", queue_sid, rest_error(e, "delete failed").reason)

        task = asyncio.create_task(delete(), name="hub-twilio-queue-cleanup")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def call_customer(
        self, *, agent: str, customer: str, from_number: str, agent_id: int | None = None, message_id: int | None = None
    ) -> str:
        """Click-to-call: ring the agent first; when they answer, Twilio dials the customer from the business
        number. The agent's leg reports to the status callback; the customer's leg reports its progress (ringing,
        answered: the console shows the call live) to the <Number> status callback and how it ended to the <Dial>
        action (all with MESSAGE_ID, the call's message on the timeline). Returns the agent leg's CallSid."""
        query = {"agent": "" if agent_id is None else str(agent_id),
                 "message": "" if message_id is None else str(message_id)}
        twiml_doc = VoiceResponse()
        twiml_doc.say("Connecting you to the customer.")
        # The <Dial> action reports how the customer's leg ended (DialCallStatus, DialCallDuration).
        dial = twiml_doc.dial(caller_id=from_number, action=self._url("/dialed", **query), method="POST")
        dial.number(customer, status_callback=self._url("/status", leg="customer", **query),
                    status_callback_event="initiated ringing answered completed", status_callback_method="POST")
        try:
            call = await self.account.client.calls.create_async(
                to=agent, from_=from_number, twiml=str(twiml_doc),
                status_callback=self._url("/status", leg="agent", **query), status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
            )
        except Exception as e:
            raise rest_error(e, f"calling {customer} failed") from None
        return str(call.sid)
