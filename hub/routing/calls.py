"""Phone calls meet routing and agents: a waiting call an agent accepts is bridged to the agent's phone (or Twilio
Client), a keypad choice moves the call to the queue the routing rules pick, and agents call customers from the
console (click-to-call). The voice adapter only speaks Twilio; this is where calls touch the store and routing."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from hub import tasks as background
from hub.channels.base import MISSED, LegStatus, MenuChoice, PhoneLine, SendError
from hub.config import TwilioSettings
from hub.events import Event, EventBus
from hub.history import store
from hub.history.db import Database, Tx
from hub.identities import IdentityError, normalize_phone
from hub.model import Message, format_duration, format_time, parse_time, utcnow
from hub.routing.events import Assigned, Offered, RoutingEvent
from hub.routing.rules import Contact
from hub.routing.service import Router, RoutingError

log = logging.getLogger("hub.calls")

#: a caller on one of these is still on the line and can be bridged
LIVE = frozenset({"ringing", "menu", "queued"})
#: REST attempts for placing a call before the failure is recorded
ATTEMPTS = 3
#: seconds past the caller's max_wait_seconds an agent who missed their call in a direct queue gets no calls
#: (the caller's last wait announcement may end a little after it)
REST_MARGIN = 5.0
#: seconds between looks at whether that caller still waits
REST_POLL = 2.0
#: looks (0.1s apart) at a just-assigned call until the hub has answered its first webhook
SETTLE_TRIES = 30


class CallError(ValueError):
    """A call that cannot be placed or bridged as asked; the message says why and what to do."""


def device(phone: str | None, voice_client: str | None) -> str | None:
    """What Twilio rings for an agent: their Twilio Client identity (a softphone) first, else their phone."""
    if voice_client:
        return f"client:{voice_client}"
    return phone or None


def outbound_summary(meta: dict[str, Any]) -> str:
    """What the timeline says about a call an agent placed, from what the status callbacks told us so far."""
    to = meta.get("to", "")
    outcome = meta.get("outcome")
    if outcome == "answered":
        talk = meta.get("talk_seconds")
        return f"Call to {to}" + (f"; talk time {format_duration(int(talk))}" if isinstance(talk, int) else " answered")
    if outcome == "agent_missed":
        return f"Call to {to} not placed: the agent's phone was not answered ({meta.get('agent_call_status')})"
    if outcome == "no_answer":
        return f"Call to {to} not answered ({meta.get('customer_call_status')})"
    if outcome == "failed":
        return f"Call to {to} failed"
    if outcome == "talking":
        return f"Call to {to} in progress"
    if outcome == "dialing":
        if meta.get("customer_call_status") == "ringing":
            return f"Calling {to}: the customer's phone is ringing"
        return f"Calling {to}: the agent answered, dialing the customer"
    return f"Calling {to}: ringing the agent first"


class Calls:
    def __init__(
        self, db: Database, bus: EventBus, router: Router, voice: PhoneLine, settings: TwilioSettings,
        region: str = "US",
    ) -> None:
        self.db = db
        self.bus = bus
        self.router = router
        self.voice = voice
        self.settings = settings
        self.region = region
        self._tasks: set[asyncio.Task[None]] = set()
        #: agent id -> until when (epoch seconds) they get no voice capacity: they missed a call in a direct queue,
        #: where there is no offer to decline, so routing would assign it straight back to them
        self.resting: dict[int, float] = {}

    def install(self) -> None:
        """Plug into routing (accept checks, assignments) and the voice adapter (menu choices, call legs)."""
        self.router.accept_checks.append(self.accept_check)
        self.router.profile_checks.append(self.voice_capacity)
        self.router.listeners.append(self.on_routing)
        self.voice.call_queue = self.menu_queue
        self.voice.on_leg = self.on_leg
        self.voice.on_waiting = self.on_waiting

    async def close(self) -> None:
        await background.stop(self._tasks)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reading -------------------------------------------------------------------------------------------------

    async def waiting_call(self, conversation_id: int) -> Message | None:
        """The conversation's inbound call whose caller is still on the line, waiting for an agent."""

        def load(tx: Tx) -> Message | None:
            row = tx.one(
                "SELECT id FROM messages WHERE conversation_id = ? AND channel = 'voice' AND kind = 'call' "
                "AND direction = 'in' ORDER BY id DESC LIMIT 1",
                (conversation_id,),
            )
            msg = store.message(tx, int(row["id"])) if row else None
            return msg if msg is not None and msg.meta.get("outcome") in LIVE else None

        return await self.db.read(load)

    async def agent_device(self, agent_id: int) -> tuple[str, str | None]:
        """(the agent's name, what to ring for them or None)."""
        row = await self.db.read(
            lambda tx: tx.one("SELECT name, phone, voice_client FROM agents WHERE id = ?", (agent_id,))
        )
        if row is None:
            raise CallError(f"agent {agent_id} does not exist")
        return str(row["name"]), device(row["phone"], row["voice_client"])

    def _no_device(self, name: str) -> str:
        return (f"agent {name} has no phone or Twilio Client identity for the hub to ring: an admin sets one "
                "(hub agents add --phone/--voice-client, or PATCH /api/v1/agents/{id} with phone or voice_client)")

    # -- routing hooks -------------------------------------------------------------------------------------------

    async def accept_check(self, conversation_id: int, agent_id: int) -> str | None:
        """Refuse to hand a waiting caller to an agent the hub has no way to ring (the offer stays)."""
        call = await self.waiting_call(conversation_id)
        if call is None:
            return None
        name, ring = await self.agent_device(agent_id)
        if ring is None and not self.voice.number(str(call.meta.get("to", ""))).agent_phone:
            return f"conversation {conversation_id} is a phone call and " + self._no_device(name)
        return None

    def voice_capacity(self, profile: dict[str, Any], agent: dict[str, Any]) -> dict[str, Any]:
        """An agent the hub has no way to ring gets no voice capacity, so routing never offers them a call (the
        409 on accept stays as the backstop). Unless a number has an agent_phone: its calls can reach anyone."""
        no_voice = profile | {"capacity": {**profile["capacity"], "voice": 0}}
        if self.resting.get(int(agent.get("id") or 0), 0.0) > self.router.clock():
            return no_voice
        if device(agent.get("phone"), agent.get("voice_client")) is not None:
            return profile
        if any(n.agent_phone for n in self.settings.numbers.values()):
            return profile
        return no_voice

    async def on_routing(self, events: list[RoutingEvent]) -> None:
        for e in events:
            if isinstance(e, Assigned):
                # In the background: ringing a phone must not hold up the accept (or the routing tick).
                self._spawn(self.bridge(e.conversation, e.agent), f"hub-bridge-{e.conversation}")

    async def on_waiting(self, call_sid: str) -> None:
        """A call that joined a conversation an agent already has (say, mid-chat by SMS) is not routed again: the
        hub rings that agent straight away."""

        def load(tx: Tx) -> tuple[int, int] | None:
            mid = store.inbound_by_external_id(tx, "voice", call_sid)
            if mid is None:
                return None
            conv = store.conversation(tx, store.message(tx, mid).conversation_id)
            return (conv.id, conv.agent_id) if conv.status == "assigned" and conv.agent_id is not None else None

        found = await self.db.read(load)
        if found is not None:
            self._spawn(self.bridge(*found), f"hub-bridge-{found[0]}")

    async def menu_queue(self, choice: MenuChoice) -> str:
        """The routing rules decide where a caller goes after the menu (rule condition "ivr": the digits, or the
        menu's option name); the call's conversation moves there so it is offered to that queue's agents."""
        queues = self.router.engine.queues
        route = self.router.engine.choose_queue(Contact(channel="voice", line=choice.line, ivr=choice.digits))
        if route.rule is None and choice.option:
            route = self.router.engine.choose_queue(Contact(channel="voice", line=choice.line, ivr=choice.option))
        if route.rule is not None:
            queue = route.queue
        elif choice.option and choice.option in queues:
            queue = choice.option
        else:
            return choice.option or choice.conversation_queue  # a Twilio-only line: no routing queue to move
        if queue != choice.conversation_queue and choice.call_sid:
            await self._move(choice.call_sid, queue, f"caller pressed {choice.digits}")
        return queue

    async def _move(self, call_sid: str, queue: str, why: str) -> None:
        def load(tx: Tx) -> tuple[int, str, str | None] | None:
            mid = store.inbound_by_external_id(tx, "voice", call_sid)
            if mid is None:
                return None
            conv = store.conversation(tx, store.message(tx, mid).conversation_id)
            return conv.id, conv.status, conv.queue

        found = await self.db.read(load)
        if found is None or found[1] != "open" or found[2] == queue:
            return  # not on a timeline, already with an agent, or already there
        try:
            await self.router.transfer(found[0], queue, None, why)
        except RoutingError as e:
            log.warning("call %s: could not move conversation %d to queue %s: %s", call_sid, found[0], queue, e)

    # -- bridging an accepted call -------------------------------------------------------------------------------

    async def bridge(self, conversation_id: int, agent_id: int) -> str | None:
        """Move the caller into their own hand-off queue, then ring the agent with TwiML that dials it. Returns the
        agent leg's CallSid, or None when there is no caller to bridge or it failed (recorded on the call)."""
        call = await self.waiting_call(conversation_id)
        for _ in range(SETTLE_TRIES):
            # A direct queue assigns a new call while its first webhook is still being answered: wait for the
            # TwiML that queues the caller (and for queued_at), or moving them would race it.
            if call is None or call.meta.get("outcome") != "ringing":
                break
            await asyncio.sleep(0.1)
            call = await self.waiting_call(conversation_id)
        if call is None or not call.external_id:
            return None
        caller = call.external_id
        name, ring = await self.agent_device(agent_id)
        from_number = str(call.meta.get("to", ""))
        if not ring and not self.voice.number(from_number).agent_phone:
            await self._bridge_failed(caller, agent_id, self._no_device(name))
            return None
        # The caller first: if they are gone, no agent's phone rings for nothing. Already moved by an earlier
        # bridge (whose agent did not pick up): they are still waiting there.
        if call.meta.get("twilio_queue") != self.voice.handoff_queue(caller):
            queued_at = call.meta.get("queued_at")
            # (no queued_at: still ringing after the wait above; the wait counts from when the call came in)
            since = float(queued_at) if isinstance(queued_at, int | float) else parse_time(call.created_at).timestamp()
            try:
                await self._retrying(lambda: self.voice.hand_off(caller, since))
            except SendError as e:
                await self._bridge_failed(caller, agent_id, e.reason)
                return None
        screen = await self.announcement(conversation_id, call) if self.screens(ring) else ""
        try:
            agent_leg = await self._retrying(lambda: self.voice.bridge(
                queue=self.voice.handoff_queue(caller), from_number=from_number, agent=ring or "",
                caller_call_sid=caller, agent_id=agent_id, screen=screen,
            ))
        except SendError as e:
            # The caller waits on in the hand-off queue (voicemail after max_wait_seconds); the agent sees why.
            await self._bridge_failed(caller, agent_id, e.reason)
            return None
        if call.meta.get("bridge_error"):
            await self.voice.note(caller, bridge_error=None, bridge_agent_id=None)  # an earlier failure is over
        log.info("call %s (conversation %d): ringing agent %d on %s", caller, conversation_id, agent_id,
                 ring or "the number's agent_phone")
        return agent_leg

    def screens(self, ring: str | None) -> bool:
        """Whether the agent hears who is calling and presses 1 first (channels.twilio.screen_agent_calls). A
        softphone (Twilio Client) shows the call itself; a phone, which may be answered by voicemail, is screened."""
        mode = self.settings.screen_agent_calls
        return mode == "always" or (mode == "phone" and not (ring or "").startswith("client:"))

    async def announcement(self, conversation_id: int, call: Message) -> str:
        """What a screened agent hears: "Call from <name or number> in <queue>." (digits spoken one by one)."""

        def load(tx: Tx) -> tuple[str, str | None]:
            conv = store.conversation(tx, conversation_id)
            return store.customer(tx, conv.customer_id).name, conv.queue

        name, queue = await self.db.read(load)
        number = str(call.meta.get("from", ""))
        who = name.strip() if name and name.strip() and name.strip() != number else " ".join(number.lstrip("+"))
        queues = self.router.settings.routing.queues
        where = (queues[queue].title or queue) if queue in queues else queue
        return f"Call from {who or 'an unknown caller'}" + (f" in {where}." if where else ".")

    async def _retrying(self, place: Any) -> str:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return str(await place())
            except SendError as e:
                if e.permanent or attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(max(e.retry_after or 0.0, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    async def _bridge_failed(self, caller: str, agent_id: int, reason: str) -> None:
        log.warning("call %s: could not ring agent %d: %s", caller, agent_id, reason)
        # Kept on the call's message (and so pushed to the console); the caller keeps waiting in the line.
        await self.voice.note(caller, bridge_error=reason, bridge_agent_id=agent_id)

    async def on_leg(self, leg: LegStatus) -> None:
        if leg.message_id is not None:
            await self._outbound_leg(leg)
        elif leg.leg == "agent" and leg.caller_call_sid and (leg.status in MISSED or leg.declined):
            await self._agent_missed(leg)

    async def _agent_missed(self, leg: LegStatus) -> None:
        """The agent did not pick up: the caller (still waiting) goes back to their queue to be offered again."""

        def load(tx: Tx) -> tuple[int, str, int | None, str | None, dict[str, Any]] | None:
            mid = store.inbound_by_external_id(tx, "voice", leg.caller_call_sid)
            if mid is None:
                return None
            msg = store.message(tx, mid)
            if msg.meta.get("outcome") not in LIVE:
                return None
            conv = store.conversation(tx, msg.conversation_id)
            return conv.id, conv.status, conv.agent_id, conv.queue, msg.meta

        found = await self.db.read(load)
        if found is None or found[1] != "assigned" or found[2] != leg.agent_id or found[3] is None:
            return
        queue = self.router.engine.queues.get(found[3])
        if queue is not None and queue.direct and leg.agent_id is not None:
            # No offer to decline in a direct queue: the agent takes no calls until this caller's wait is over
            # (answered by someone else, or voicemail at max_wait_seconds), so the call goes to the next agent.
            await self._rest(leg.agent_id, found[0], found[4])
        try:
            why = "did not press 1 to take the call" if leg.declined else f"did not answer ({leg.status})"
            events = await self.router.transfer(found[0], found[3], None, f"agent {leg.agent_id} {why}")
            again = [e for e in events if isinstance(e, Offered) and e.conversation == found[0]
                     and e.agent == leg.agent_id]
            if again:
                # Offered straight back to the agent who missed it: count it as their decline, so routing offers
                # it to the next agent (and only returns to this one when nobody else can take it).
                await self.router.reject(found[0], again[0].agent)
        except RoutingError as e:
            log.warning("call %s: could not re-offer conversation %d: %s", leg.caller_call_sid, found[0], e)

    async def _rest(self, agent_id: int, conversation_id: int, call: dict[str, Any]) -> None:
        line = self.voice.number(str(call.get("to", "")))
        queued_at = call.get("queued_at")
        start = float(queued_at) if isinstance(queued_at, int | float) else self.router.clock()
        until = max(self.resting.get(agent_id, 0.0), start + line.max_wait_seconds + REST_MARGIN)
        self.resting[agent_id] = until
        await self.router.sync_agents()  # this process's engine profile; Redis state is shared by all processes
        self._spawn(self._wake(agent_id, until, conversation_id), f"hub-call-rest-{agent_id}")

    async def _wake(self, agent_id: int, until: float, conversation_id: int) -> None:
        """Voice capacity back once the caller no longer waits (answered, voicemail, hung up), at the latest when
        their max_wait_seconds is over."""
        while (left := until - self.router.clock()) > 0:
            if await self.waiting_call(conversation_id) is None:
                break
            await asyncio.sleep(min(left, REST_POLL))
        if self.resting.get(agent_id) != until:
            return  # rested again since, for longer: that one wakes them
        del self.resting[agent_id]
        try:
            await self.router.refresh_agents()  # voice capacity back, and whatever waits is dispatched
        except Exception:
            log.exception("agent %d: could not restore voice capacity after a missed call", agent_id)

    # -- click-to-call -------------------------------------------------------------------------------------------

    async def place(self, conversation_id: int, agent_id: int, to: str | None) -> Message:
        """An agent calls the customer: the hub rings the agent, then dials the customer from the business number.
        The call is a message on the timeline that the status callbacks keep up to date."""
        name, ring = await self.agent_device(agent_id)
        if ring is None:
            raise CallError("cannot call: " + self._no_device(name))
        if to:
            try:
                to = normalize_phone(to, self.region)
            except IdentityError as e:
                raise IdentityError(f"to: {e}") from None  # a bad body: 422

        def write(tx: Tx) -> int:
            conv = store.conversation(tx, conversation_id)
            number = to or next((i.value for i in reversed(store.identities_of(tx, conv.customer_id))
                                 if i.kind == "phone"), None)
            if number is None:
                raise CallError(f"customer {conv.customer_id} has no phone number: pass one as \"to\"")
            meta = {"to": number, "from": self._business_number(tx, conv.customer_id), "outcome": "ringing_agent",
                    "placed_by": agent_id}
            return store.insert_message(
                tx, conversation_id=conv.id, customer_id=conv.customer_id, channel="voice", direction="out",
                kind="call", text=outbound_summary(meta), status="queued", identity=f"phone:{number}",
                agent_id=agent_id, now=format_time(utcnow()), meta=meta,
            )

        message_id = await self.db.write(write)
        msg = await self._message(message_id)
        await self.bus.publish(Event("message.created", {"message": msg.to_json()}))
        from_number = str(msg.meta["from"])
        if not from_number:
            return await self._update(message_id, status="failed", reason="no business number to call from: set "
                                      "channels.twilio.sms_from or list one under channels.twilio.numbers",
                                      meta={"outcome": "failed"})
        try:
            sid = await self._retrying(lambda: self.voice.call_customer(
                agent=ring, customer=str(msg.meta["to"]), from_number=from_number, agent_id=agent_id,
                message_id=message_id,
            ))
        except SendError as e:
            return await self._update(message_id, status="failed", reason=e.reason, meta={"outcome": "failed"})
        return await self._update(message_id, status="sending", external_id=sid, meta={"agent_call_sid": sid})

    def _business_number(self, tx: Tx, customer_id: int) -> str:
        """The number the customer last called or texted, else the configured sender, else the first number."""
        row = tx.one(
            "SELECT meta FROM messages WHERE customer_id = ? AND direction = 'in' "
            "AND channel IN ('voice', 'sms') ORDER BY id DESC LIMIT 1",
            (customer_id,),
        )
        if row is not None:
            number = json.loads(row["meta"] or "{}").get("to")
            if isinstance(number, str) and number.startswith("+"):
                return number
        return self.settings.sms_from or next(iter(self.settings.numbers), "")

    async def _message(self, message_id: int) -> Message:
        return await self.db.read(lambda tx: store.message(tx, message_id))

    async def _update(
        self, message_id: int, *, status: str | None = None, reason: str | None = None,
        external_id: str | None = None, meta: dict[str, Any] | None = None,
    ) -> Message:
        now = format_time(utcnow())

        def write(tx: Tx) -> Message:
            before = store.message(tx, message_id)
            merged = {**before.meta, **(meta or {})}
            store.amend_message(tx, message_id, outbound_summary(merged), meta or {}, now)
            if status is not None:
                store.set_message_status(tx, message_id, status, reason, now)
            if external_id is not None:
                tx.exec("UPDATE messages SET external_id = ? WHERE id = ?", (external_id, message_id))
            return store.message(tx, message_id)

        msg = await self.db.write(write)
        await self.bus.publish(Event("message.updated", {"message": msg.to_json()}))
        return msg

    async def _outbound_leg(self, leg: LegStatus) -> None:
        assert leg.message_id is not None
        try:
            msg = await self._message(leg.message_id)
        except Exception:
            log.info("status for click-to-call message %s, which does not exist", leg.message_id)
            return
        if msg.kind != "call" or msg.direction != "out" or msg.meta.get("outcome") in ("answered", "no_answer",
                                                                                      "agent_missed", "failed"):
            return  # not a placed call, or already final (a retried callback changes nothing)
        talking = msg.meta.get("outcome") == "talking"
        if leg.leg == "agent":
            if leg.status in MISSED:
                await self._update(msg.id, status="failed", reason=f"the agent's phone: {leg.status}",
                                   meta={"outcome": "agent_missed", "agent_call_status": leg.status})
            elif leg.status == "in-progress" and not talking:  # (a late callback must not undo "talking")
                await self._update(msg.id, meta={"outcome": "dialing", "agent_call_status": leg.status})
            else:
                await self._update(msg.id, meta={"agent_call_status": leg.status})
            return
        if leg.status in ("initiated", "queued", "ringing"):
            if not talking:
                await self._update(msg.id, meta={"outcome": "dialing", "customer_call_sid": leg.call_sid,
                                                 "customer_call_status": leg.status})
            return
        if leg.status == "in-progress":
            # The customer's <Number> status callback: they answered. When, so the console can count the talk time.
            if not talking:
                await self._update(msg.id, meta={"outcome": "talking", "customer_call_sid": leg.call_sid,
                                                 "customer_call_status": leg.status,
                                                 "talk_started_at": round(self.router.clock(), 3)})
            return
        if leg.status in ("completed", "answered"):
            await self._update(msg.id, status="delivered", meta={
                "outcome": "answered", "customer_call_sid": leg.call_sid, "customer_call_status": leg.status,
                "talk_seconds": leg.duration})
        else:
            await self._update(msg.id, status="failed", reason=f"the customer's phone: {leg.status or 'no answer'}",
                               meta={"outcome": "no_answer", "customer_call_sid": leg.call_sid,
                                     "customer_call_status": leg.status})


#: the hub's calls, when the voice channel is configured
CALLS = web.AppKey("calls", Calls)
