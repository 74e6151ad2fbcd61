"""Connects the routing engine to the hub: new conversations are queued, every routing decision is written to the
store (so the API and console see offers and assignments) and published as an event, and a ticker applies
deadlines (offer timeouts, wrap-up, escalation)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hub import event_log, fail_points
from hub.channels.base import IngestResult
from hub.config import Settings
from hub.events import Event, EventBus
from hub.history import decisions
from hub.history.db import Database, Tx
from hub.model import Inbound, format_time, utcnow
from hub.reports import events as conversation_events
from hub.reports import presence as presence_log
from hub.routing import deadlines
from hub.routing.admin import QUEUE, RULES, Overrides, effective, load_overrides, profile_raw, write_override
from hub.routing.config import RoutingConfig, RoutingConfigError
from hub.routing.engine import Engine
from hub.routing.events import (
    Assigned,
    FirstResponded,
    Offered,
    OfferTimedOut,
    Overflowed,
    PresenceChanged,
    Rejected,
    Resolved,
    RoutingEvent,
    SlaBreached,
    Transferred,
)
from hub.routing.memory import MemoryState
from hub.routing.reconciler import Reconciler
from hub.routing.rules import Contact
from hub.routing.state import RoutingState
from hub.routing.types import CAPACITY_CLASS, CHANNELS, Presence

log = logging.getLogger("hub.router")

#: errors of a routing state that cannot be reached (Redis down or restarting): a decision already in the store is
#: not undone by one of these; the reconciler applies it to the state once it answers again
try:
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    UNREACHABLE: tuple[type[BaseException], ...] = (OSError, _RedisConnectionError, _RedisTimeoutError)
except ImportError:  # pragma: no cover - redis is a dependency; memory routing needs none of it
    UNREACHABLE = (OSError,)


class RoutingError(ValueError):
    """A routing request that cannot be done (not your offer, unknown queue...); the message says why."""


def _state(settings: Settings) -> RoutingState:
    if settings.routing.backend == "redis":
        import redis.asyncio as redis

        from hub.routing.redis import RedisState

        # Bounded waits: a stuck Redis must fail a routing call visibly, not hang the request that made it.
        client = redis.from_url(settings.routing.redis_url, socket_timeout=10, socket_connect_timeout=5)
        return RedisState(client, prefix=settings.routing.key_prefix)
    return MemoryState()


def contact_of(inbound: Inbound) -> Contact:
    tags = inbound.meta.get("tags") or []
    attributes = inbound.meta.get("attributes") or {}
    return Contact(
        channel=inbound.channel,
        line=inbound.business_line,
        ivr=str(inbound.meta["ivr"]) if inbound.meta.get("ivr") is not None else None,
        text=inbound.text,
        tags=frozenset(str(t) for t in tags) if isinstance(tags, list) else frozenset(),
        attributes={str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {},
        language=inbound.meta.get("language"),
    )


def _routing_learns_from(event: Event) -> bool:
    """What Router.watch_events acts on: a customer merge, or an agent's message sent to the customer."""
    if event.type == "customer.merged":
        return True
    m = event.data.get("message") if event.type == "message.created" else None
    return isinstance(m, dict) and m.get("direction") == "out" and m.get("agent_id") is not None \
        and m.get("kind") not in ("note", "event")


def _apply_to_store(tx: Tx, events: list[RoutingEvent], now: str, depth: int = 0) -> None:
    """DEPTH: how many rule actions led to EVENTS (hub.event_log.CAUSE_DEPTH, read in the task that decided)."""
    for e in events:
        conversation_events.record_routing(tx, e, now)
        if isinstance(e, Offered):
            tx.exec(
                "UPDATE conversations SET offered_to = ?, offer_deadline = ?, updated_at = ? "
                "WHERE id = ? AND status <> 'resolved'",
                (e.agent, e.deadline, now, e.conversation),
            )
        elif isinstance(e, Assigned):
            taken = tx.one(
                "UPDATE conversations SET status = 'assigned', agent_id = ?, queue = ?, offered_to = NULL, "
                "offer_deadline = NULL, updated_at = ? WHERE id = ? AND status <> 'resolved' RETURNING id",
                (e.agent, e.queue, now, e.conversation),
            )
            if taken is not None:  # rules and webhooks hear of it, in the same transaction
                event_log.record(tx, "conversation.assigned", e.conversation, now, depth=depth)
        elif isinstance(e, SlaBreached):
            event_log.record(tx, "sla.breached", e.conversation, now)
        elif isinstance(e, Rejected | OfferTimedOut):
            tx.exec(
                "UPDATE conversations SET offered_to = NULL, offer_deadline = NULL, updated_at = ? "
                "WHERE id = ? AND offered_to = ?",
                (now, e.conversation, e.agent),
            )
        elif isinstance(e, Overflowed):
            tx.exec(
                "UPDATE conversations SET queue = ?, updated_at = ? WHERE id = ?", (e.to_queue, now, e.conversation)
            )
        elif isinstance(e, Transferred):
            tx.exec(
                "UPDATE conversations SET status = 'open', agent_id = NULL, offered_to = NULL, offer_deadline = NULL, "
                "queue = COALESCE(?, queue), updated_at = ? WHERE id = ? AND status <> 'resolved'",
                (e.to_queue, now, e.conversation),
            )
        elif isinstance(e, PresenceChanged):
            tx.exec("UPDATE agents SET presence = ? WHERE id = ?", (e.presence, e.agent))
            presence_log.record(tx, int(e.agent), e.presence, now)


def _writes_to_store(e: RoutingEvent) -> bool:
    """Whether _apply_to_store or decisions.record writes anything for E (each of their branches is listed here)."""
    if isinstance(e, Resolved):
        return e.agent is None and not e.snoozed  # an abandon: reports and the wall count it
    return isinstance(e, Offered | Assigned | SlaBreached | Rejected | OfferTimedOut | Overflowed | Transferred
                      | PresenceChanged | FirstResponded)


class Router:
    def __init__(self, db: Database, settings: Settings, bus: EventBus, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.config = RoutingConfig.from_dict(settings.routing.engine_config())
        # The config file's routing: the seed that changes stored through the API are laid over. settings.routing
        # itself always shows the effective config (the console and the API read queues and titles from it).
        self.seed = settings.routing.model_copy(deep=True)
        self.overrides = Overrides()
        self._version = 0  # of the routing config in Redis, to see a change another hub process made
        self.state = _state(settings)
        self.engine = Engine(
            self.state,
            clock=clock,
            rules=self.config.rules,
            missed_offers=self.config.missed_offers,
            transfer_wait=self.config.transfer_wait,
        )
        #: told every routing decision this process applies (e.g. hub.calls bridges an accepted phone call)
        self.listeners: list[Callable[[list[RoutingEvent]], Awaitable[None]]] = []
        #: asked before an agent accepts an offer; a reason refuses the accept and the offer stays
        self.accept_checks: list[Callable[[int, int], Awaitable[str | None]]] = []
        #: may narrow an agent's engine profile given their store row (id, email, disabled, phone, voice_client):
        #: hub.calls gives no voice capacity to an agent the hub has no way to ring
        self.profile_checks: list[Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = []
        self._stats_published: list[dict[str, Any]] = []  # the last routing.stats sent, to send only changes
        self._stats_at = 0.0
        self.reconciler = Reconciler(self)
        fail_points.check()  # a mistyped HUB_FAIL_POINTS fails the start instead of never firing

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Install queues and agents, then bring the routing state to what the store says (a restart of the
        embedded default loses in-process state, a Redis may have lost its data; the store loses nothing)."""
        await self.reconciler.loading()
        self._version = await self._read_version()
        await self.load_state()
        if (repairs := await self.reconciler.run()) is not None and repairs.total():
            log.info("routing: state rebuilt from the store: %s", repairs)

    async def load_state(self) -> None:
        """Queues and agents into the routing state: at start, and again after Redis lost its data."""
        await self._load_config()
        await self.engine.apply(self.config)
        await self.sync_agents()

    async def close(self) -> None:
        client = getattr(self.state, "client", None)
        if client is not None:
            await client.aclose()

    async def sync_agents(self) -> list[int]:
        """Agents from the store (who, which queues) with routing facts from config (capacity, skills, wrap-up)."""
        routing = self.settings.routing
        facts = {a.email.strip().lower(): a for a in routing.agents}
        profiles = self.overrides.agents

        def read(tx: Tx) -> list[dict[str, Any]]:
            rows = tx.all("SELECT id, email, disabled, phone, voice_client FROM agents ORDER BY id")
            members: dict[int, list[str]] = {}
            for m in tx.all("SELECT agent_id, queue FROM agent_queues"):
                members.setdefault(int(m["agent_id"]), []).append(str(m["queue"]))
            out = []
            for r in rows:
                aid = int(r["id"])
                # A disabled agent keeps no queue: nothing more is offered to them.
                queues = [] if r["disabled"] else [q for q in members.get(aid, []) if q in routing.queues]
                raw = profile_raw(routing, aid, profiles.get(aid), facts.get(str(r["email"])), queues)
                for check in self.profile_checks:
                    raw = check(raw, dict(r))
                out.append(raw | {"enabled": not r["disabled"]})
            return out

        from hub.routing.config import parse_agent

        raw_agents = await self.db.read(read)
        for raw in raw_agents:
            enabled = raw.pop("enabled")
            if not enabled and await self.state.agent_stats(int(raw["id"])) is None:
                continue  # never known to routing: nothing to take away
            await self.engine.put_agent(parse_agent(raw, f"agent {raw['id']}", set(routing.queues)))
        return [int(a["id"]) for a in raw_agents]

    # -- the inbound path's hooks ------------------------------------------------------------------------------

    def choose_queue(self, inbound: Inbound) -> tuple[str, int]:
        """The queue and priority the routing rules give a conversation this message opens (the inbound path
        stores both with it; on_ingest queues it so)."""
        route = self.engine.choose_queue(contact_of(inbound))
        return route.queue, route.priority

    def first_response(self, tx: Tx, queue: str) -> tuple[float, float] | None:
        """The first-response clock of a conversation entering QUEUE now: (arrival, deadline), or None when the queue
        has no target. Asked by the inbound path inside the transaction that opens (or reopens) the conversation,
        which stores the deadline with it: a rebuilt state (restart, Redis wiped) times it the same, even if the
        business hours change meanwhile, and no write of its own is needed."""
        q = self.engine.queues.get(queue)
        if q is None or q.first_response <= 0:
            return None
        arrived = self.clock()
        due = deadlines.starting(tx, q, arrived)
        return None if due is None else (arrived, due)

    async def on_ingest(self, result: IngestResult, inbound: Inbound) -> None:
        """A newly opened (or reopened) conversation joins its queue, with the first-response deadline the inbound
        transaction stored; later messages only join the conversation, and a message recorded on a resolved one (a
        survey's answer) leaves it where it is."""
        if result.duplicate or result.conversation_how in ("joined", "recorded"):
            return
        # Stored (message, conversation, its deadline) and not yet queued: the reconciler queues it, with the
        # stored deadline, if the process dies here.
        fail_points.hit("enqueue.before_state")
        route = self.engine.choose_queue(contact_of(inbound))
        queue = result.conversation.queue or route.queue
        arrived, respond_by = result.first_response or (self.clock(), 0.0)
        try:
            events = await self.engine.enqueue(
                result.conversation.id, queue, inbound.channel,
                priority=route.priority, customer=result.customer.id, enqueued_at=arrived,
                respond_by=respond_by,
            )
        except KeyError:
            return  # already routed: the reconciler put it back first
        except UNREACHABLE:
            # The message is stored and acknowledged; the reconciler queues the conversation when routing answers.
            log.warning("routing unreachable: conversation %d waits for the reconciler", result.conversation.id)
            return
        await self._apply(events, "enqueue")

    # -- agents' actions -----------------------------------------------------------------------------------------

    async def set_presence(self, agent_id: int, presence: str) -> list[RoutingEvent]:
        try:
            wanted = Presence(presence)
        except ValueError:
            raise RoutingError("presence must be available, away or offline") from None
        if wanted is Presence.AVAILABLE:
            await self.sync_agents()  # pick up queue membership changed since start (e.g. `hub agents add`)
        if await self.state.agent_stats(agent_id) is None:
            raise RoutingError(f"agent {agent_id} is not known to routing (disabled, or not in the store)")
        # The store first: it is what a restarted hub, or a rebuilt Redis, gives the agent back.
        def store(tx: Tx) -> None:
            tx.exec("UPDATE agents SET presence = ? WHERE id = ?", (wanted.value, agent_id))
            presence_log.record(tx, agent_id, wanted.value, format_time(utcnow()))  # staffing: who was available

        await self.db.write(store)
        fail_points.hit("presence.after_store")
        try:
            events = await self.engine.set_presence(agent_id, wanted)
        except KeyError:
            raise RoutingError(f"agent {agent_id} is not known to routing (disabled, or not in the store)") from None
        await self._apply(events, "presence")
        if wanted is not Presence.AVAILABLE:
            events += await self.withdraw_offers(agent_id)
        return events

    async def accept(self, conversation_id: int, agent_id: int) -> list[RoutingEvent]:
        for check in self.accept_checks:
            if reason := await check(conversation_id, agent_id):
                raise RoutingError(reason)
        events = await self.engine.accept(conversation_id, agent_id)
        if not events:
            raise RoutingError(f"conversation {conversation_id} is not offered to you (the offer may have timed out)")
        await self._apply(events, "accept")
        return events

    async def reject(self, conversation_id: int, agent_id: int) -> list[RoutingEvent]:
        events = await self.engine.reject(conversation_id, agent_id)
        if not events:
            raise RoutingError(f"conversation {conversation_id} is not offered to you")
        await self._apply(events, "reject")
        return events

    async def transfer(
        self, conversation_id: int, queue: str | None, agent_id: int | None, note: str
    ) -> list[RoutingEvent]:
        try:
            events = await self.engine.transfer(conversation_id, queue=queue, agent=agent_id, note=note)
        except KeyError as e:
            raise RoutingError(str(e).strip("'\"")) from None
        except ValueError as e:
            raise RoutingError(str(e)) from None
        if not events:
            raise RoutingError(f"conversation {conversation_id} is not in routing (resolved?)")
        await self._apply(events, "transfer")
        return events

    async def resolve(self, conversation_id: int) -> list[RoutingEvent]:
        """Let go of a conversation the store has resolved. Routing unreachable is no failure of the resolve: the
        store is the truth, and the reconciler frees the agent's capacity once routing answers again."""
        try:
            events = await self.engine.resolve(conversation_id)
        except UNREACHABLE as e:
            log.warning("routing unreachable (%s): conversation %d is let go by the reconciler", e, conversation_id)
            return []
        await self._apply(events, "resolve")
        return events

    async def release(self, conversation_id: int) -> list[RoutingEvent]:
        """Let go of a conversation the store has snoozed (hub.inbox.snooze): its agent's capacity is free while it
        sleeps, and the reports count no abandon. Unreachable routing: the reconciler lets go of it later."""
        try:
            events = await self.engine.resolve(conversation_id)
        except UNREACHABLE as e:
            log.warning("routing unreachable (%s): snoozed conversation %d is let go by the reconciler", e,
                        conversation_id)
            return []
        events = [dataclasses.replace(e, snoozed=True) if isinstance(e, Resolved) else e for e in events]
        await self._apply(events, "snooze")
        return events

    async def set_priority(self, conversation_id: int, priority: int) -> bool:
        """The store already holds the conversation's new priority (its writer commits first): its place in line
        follows. False if routing does not hold it (not queued yet: it is queued with the store's priority, or the
        reconciler repairs it); routing unreachable is no failure either, the reconciler applies it later."""
        try:
            return await self.engine.set_priority(conversation_id, priority)
        except UNREACHABLE as e:
            log.warning("routing unreachable (%s): conversation %d gets its priority from the reconciler", e,
                        conversation_id)
            return False

    # -- time --------------------------------------------------------------------------------------------------------

    async def tick(self) -> list[RoutingEvent]:
        events = await self.engine.tick()
        await self._apply(events, "timeout")
        return events

    async def tick_forever(self) -> None:
        interval = self.settings.routing.tick_seconds
        last_reconcile = self.clock()
        while True:
            try:
                if await self._changed_elsewhere():
                    await self.reload()
                await self.tick()
                await self.publish_stats()
            except UNREACHABLE as e:
                log.warning("routing tick: routing state unreachable (%s); retrying in %.1fs", e, interval)
            except Exception:
                log.exception("routing tick failed; retrying in %.1fs", interval)
            if self.clock() - last_reconcile >= self.settings.routing.reconcile_seconds:
                last_reconcile = self.clock()
                try:
                    await self.reconciler.run()
                except UNREACHABLE as e:
                    log.warning("routing reconcile: routing state unreachable (%s)", e)
                except Exception:
                    log.exception("routing reconcile failed; the next pass retries")
            await asyncio.sleep(interval)

    # -- effects ---------------------------------------------------------------------------------------------------

    async def _apply(self, events: list[RoutingEvent], op: str = "") -> None:
        """Write what the routing state decided to the store, then publish it. OP names the operation for its fail
        points (hub/fail_points.py): between the state's write and the store's, and after both."""
        if not events:
            return
        for e in list(events):
            if isinstance(e, Assigned) and CAPACITY_CLASS.get(e.channel) == "voice":
                # A call is answered when an agent takes it: that is its first response.
                events += await self.engine.responded(e.conversation, e.agent)
        if op:
            fail_points.hit(f"{op}.after_state")
        if any(_writes_to_store(e) for e in events):
            now = format_time(utcnow())
            sla_wait = {name: q.sla_wait for name, q in self.settings.routing.queues.items()}
            depth = event_log.CAUSE_DEPTH.get()  # here: the write runs in the store's thread, outside this context

            def write(tx: Tx) -> None:
                _apply_to_store(tx, events, now, depth)
                decisions.record(tx, events, now, sla_wait)  # the wall's figures, in the same transaction

            await self.db.write(write)
        # else: e.g. a new conversation queued with no agent free to take it (the inbound path's common case): its
        # queue, priority and deadline committed with its message, and an empty transaction would be a second group
        # commit that the message's acknowledgement waits for
        if op:
            fail_points.hit(f"{op}.after_store")
        for e in events:
            if isinstance(e, Resolved) and e.agent is None and not e.snoozed:
                log.info("conversation %d left queue %s unanswered", e.conversation, e.queue)
            await self.bus.publish(Event(e.type, e.data()))
        for listener in self.listeners:
            try:
                await listener(events)
            except Exception:  # a listener's bug must not undo or block a routing decision already stored
                log.exception("routing listener %r failed", listener)



    # -- the console's ownership actions: claim ("Assign to me"), reopen, offers withdrawn -----------------------

    async def claim(self, conversation_id: int, agent_id: int) -> list[RoutingEvent]:
        """"Assign to me": a waiting (or someone's offered) conversation goes to this agent through the engine's own
        atomic steps, so capacity and "one agent per conversation" hold: it is parked for the agent (the transfer
        step, which also takes it back from an agent it was offered to), the agent's free slots are dispatched (the
        capacity check), and an offer that results is accepted. Refused with the reason, before anything moves, when
        the agent cannot take it now. In wrap-up it waits, parked for them, until the wrap-up ends."""
        view = await self.state.conversation(conversation_id)
        if view is None:
            raise RoutingError(f"conversation {conversation_id} is not waiting in a queue (resolved?)")
        if view.state == "assigned":
            if view.agent == agent_id:
                return []
            raise RoutingError(f"conversation {conversation_id} is already assigned to another agent: "
                               "ask them or a supervisor to transfer it to you")
        if view.state == "offered" and view.agent == agent_id:
            return await self.accept(conversation_id, agent_id)  # its slot is already counted as theirs
        stats = await self.engine.agent_stats(agent_id)
        if stats is None:
            raise RoutingError(f"agent {agent_id} is not known to routing (disabled, or not in the store)")
        if stats.presence is not Presence.AVAILABLE:
            raise RoutingError("set yourself Available to take conversations")
        cls = CAPACITY_CLASS.get(view.channel, view.channel)
        held, most = stats.load.get(cls, 0), stats.capacity.get(cls, 0)
        if held >= most:
            raise RoutingError(f"you are at your capacity for {cls} ({held} of {most}): "
                               "resolve or transfer one first")
        events = await self.engine.transfer(conversation_id, agent=agent_id)
        if any(isinstance(e, Offered) and e.conversation == conversation_id and e.agent == agent_id for e in events):
            events += await self.engine.accept(conversation_id, agent_id)
        await self._apply(events)
        return events

    async def claim_after_reply(self, conversation_id: int, agent_id: int | None) -> None:
        """An agent replied to a conversation nobody holds: it becomes theirs (console.claim_on_first_reply), so it
        is never offered to someone else while the customer is told this agent is on it. Best effort: the reply is
        already on its way, and a refusal (at capacity, away) leaves the conversation where it was."""
        if agent_id is None or not self.settings.console.claim_on_first_reply:
            return
        row = await self.db.read(lambda tx: tx.one("SELECT status FROM conversations WHERE id = ?",
                                                   (conversation_id,)))
        if row is None or row["status"] != "open":
            return
        try:
            await self.claim(conversation_id, agent_id)
        except RoutingError as e:
            log.info("reply to conversation %d did not claim it for agent %d: %s", conversation_id, agent_id, e)

    async def reopen(self, conversation_id: int, queue: str, channel: str, customer_id: int) -> list[RoutingEvent]:
        """A resolved conversation opened again by an agent (Reopen, or undoing Resolve) waits in its queue again;
        the agent's first reply was already counted, so no first-response clock starts."""
        known = queue if queue in self.engine.queues else self.settings.routing.default_queue
        row = await self.db.read(lambda tx: tx.one("SELECT priority FROM conversations WHERE id = ?",
                                                   (conversation_id,)))
        events = await self.engine.enqueue(conversation_id, known, channel if channel in CHANNELS else "api",
                                           priority=int(row["priority"]) if row else 0, customer=customer_id,
                                           replied=True)
        await self._apply(events)
        return events

    async def withdraw_offers(self, agent_id: int) -> list[RoutingEvent]:
        """An agent who is no longer available holds no offers: each goes back to its queue at once (as a
        rejection) instead of waiting out its timeout, and the agent's console drops it."""
        rows = await self.db.read(lambda tx: tx.all(
            "SELECT id FROM conversations WHERE offered_to = ? AND status = 'open'", (agent_id,)))
        events: list[RoutingEvent] = []
        for r in rows:
            events += await self.engine.reject(int(r["id"]), agent_id)
        await self._apply(events)
        return events

    # -- first response and live stats ---------------------------------------------------------------------------

    async def watch_events(self) -> None:
        """Facts routing learns from the event bus, for the app's lifetime: an agent's message sent to the customer
        (message.created: out, not a note, by an agent) stops its conversation's first-response clock; a customer
        merge that closed a conversation takes it out of routing. With a Redis bus every process hears every event;
        the state acts on the first, so the others decide nothing."""
        # Every inbound message is published too: routing is not woken for those.
        sub = self.bus.subscribe(_routing_learns_from)
        try:
            async for event in sub:
                if event.type == "customer.merged":
                    try:
                        await self._merged(event.data)
                    except Exception:
                        log.exception("routing: could not let go of a conversation closed by a merge")
                    continue
                m = event.data["message"]
                try:
                    await self._apply(await self.engine.responded(int(m["conversation_id"]), int(m["agent_id"])))
                except Exception:  # one bad event or a Redis blip must not end the watch
                    log.exception("routing: could not record the reply to conversation %s", m.get("conversation_id"))
        finally:
            sub.close()

    async def _merged(self, data: dict[str, Any]) -> None:
        survivor, merged = (data.get("customer") or {}).get("id"), data.get("merged_customer_id")

        def closed(tx: Tx) -> int | None:
            # The merge wrote which conversation it closed on its timeline event; whoever published the event.
            rows = tx.all("SELECT meta FROM messages WHERE customer_id = ? AND kind = 'event' ORDER BY id DESC "
                          "LIMIT 20", (survivor,))
            for r in rows:
                meta = json.loads(r["meta"] or "{}")
                if meta.get("event") == "customer.merged" and meta.get("merged_customer_id") == merged:
                    resolved = meta.get("resolved_conversation_id")
                    return int(resolved) if resolved is not None else None
            return None

        conversation = await self.db.read(closed)
        if conversation is not None:
            await self.resolve(conversation)

    async def queue_items(self) -> list[dict[str, Any]]:
        """Every queue with its live stats: GET /api/v1/queues and the routing.stats event."""
        items = []
        for name, q in self.settings.routing.queues.items():
            s = await self.engine.queue_stats(name)
            items.append({
                "name": name,
                "title": q.title or name,
                "waiting": s.waiting,
                "longest_wait": s.longest_wait,
                "available_agents": s.available_agents,
                "busy_agents": s.busy_agents,
                "offers_accepted": s.accepted,
                "offers_rejected": s.rejected,
                "offers_timed_out": s.timed_out,
                "answered": s.answered,
                "abandoned": s.abandoned,
                "sla_attainment": s.sla_attainment,
                "sla_wait": q.sla_wait,
                "first_response": q.first_response,
                "first_response_hours": q.first_response_hours or self.settings.routing.first_response_hours,
                "responded": s.responded,
                "responded_in_sla": s.responded_in_sla,
                "first_response_breached": s.response_breached,
                "first_response_attainment": s.first_response_attainment,
            })
        return items

    async def publish_stats(self, every: float = 2.0) -> bool:
        """Push routing.stats (the queues' live stats, for the supervisors' wall) when a figure changed, at most
        every `every` seconds. The longest wait alone changing does not count: the wall's clock ticks by itself."""
        if self.clock() - self._stats_at < every:
            return False
        self._stats_at = self.clock()
        items = await self.queue_items()

        def steady(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in r.items() if k != "longest_wait"} for r in rows]

        if steady(items) == steady(self._stats_published):
            return False
        self._stats_published = items
        await self.bus.publish(Event("routing.stats", {"queues": items}))
        return True

    # -- live config: the routing admin API's side (the file seeds, stored changes win) ------------------------

    async def _load_config(self) -> None:
        """Lay the stored changes over the config file; a stored change the file no longer allows is skipped."""
        self.overrides = await load_overrides(self.db)
        try:
            routing = effective(self.seed, self.overrides)
        except RoutingConfigError as e:
            log.error("routing: the stored routing changes do not fit the config file (%s); using the file alone", e)
            routing = self.seed.model_copy(deep=True)
            self.overrides = Overrides()
        self._show(routing)

    def _show(self, routing: Any) -> None:
        """Make settings.routing the effective config, in place (its readers hold the same object)."""
        self.config = RoutingConfig.from_dict(routing.engine_config())
        live = self.settings.routing
        live.queues.clear()
        live.queues.update(routing.queues)
        live.rules[:] = routing.rules
        live.default_queue = routing.default_queue

    async def reload(self) -> None:
        """Re-read the stored config and agents and apply them here (another hub process changed them)."""
        from hub.agents import sync_queues

        await self._load_config()
        await self.engine.apply(self.config)
        await sync_queues(self.db, self.settings.routing.queues)
        await self.sync_agents()
        await self._apply(await self.engine.drain())

    async def refresh_agents(self) -> None:
        """Agents, their queues and disabled state changed in the store: apply them here and in every hub process."""
        await self.sync_agents()
        await self._apply(await self.engine.drain())
        await self._bump()

    async def change(self, kind: str, name: str, body: Any, by: int | None) -> None:
        """Validate, store, apply and announce one change; RoutingConfigError (nothing changed) if it is not valid,
        RoutingError if it cannot be done now."""
        candidate = self.overrides.copy()
        if kind == QUEUE:
            candidate.queues[name] = body
            if body is None and name not in self.engine.queues:
                raise LookupError(f"no queue {name!r}")
        elif kind == RULES:
            candidate.rules = body
        else:
            candidate.agents[int(name)] = body
        effective(self.seed, candidate)  # raises with the engine's reason; nothing stored or applied
        if kind == QUEUE and body is None and (waiting := (await self.engine.queue_stats(name)).waiting):
            raise RoutingError(f"{waiting} conversation(s) wait in queue {name!r}: transfer them first")
        now = format_time(utcnow())
        await self.db.write(lambda tx: write_override(tx, kind, name, body, now, by))
        await self.reload()
        await self._bump()
        data = {"kind": kind, "name": name, "deleted": body is None, "by": by}
        await self.bus.publish(Event("routing.config_changed", data))

    def routing_view(self, agents: list[dict[str, Any]]) -> dict[str, Any]:
        """The whole effective routing config (GET /api/v1/routing)."""
        routing = self.settings.routing
        changed = {n for n in self.overrides.queues}
        return {
            "default_queue": routing.default_queue,
            "missed_offers": routing.missed_offers,
            "transfer_wait": routing.transfer_wait,
            "queues": {n: q.model_dump() for n, q in routing.queues.items()},
            "queue_sources": {n: "api" if n in changed else "config" for n in routing.queues},
            "rules": list(routing.rules),
            "rules_source": "config" if self.overrides.rules is None else "api",
            "agents": agents,
        }

    def agent_profile(self, agent_id: int, email: str, row: dict[str, Any] | None = None) -> dict[str, Any]:
        """An agent's routing profile as configured ("capacity", what PUT /routing/agents sets) and, given their
        store ROW (id, phone, voice_client...), "effective_capacity": what routing uses after profile_checks
        (say, no voice for an agent the hub cannot ring)."""
        routing = self.settings.routing
        facts = {a.email.strip().lower(): a for a in routing.agents}
        stored = self.overrides.agents.get(agent_id)
        raw = profile_raw(routing, agent_id, stored, facts.get(email.strip().lower()))
        source = "api" if stored is not None else "config" if email.strip().lower() in facts else "default"
        checked = raw
        if row is not None:
            for check in self.profile_checks:
                checked = check(checked, row)
        return {"agent_id": agent_id, "capacity": raw["capacity"], "skills": raw["skills"], "wrapup": raw["wrapup"],
                "exclusive": raw["exclusive"], "source": source, "effective_capacity": checked["capacity"]}

    def _version_key(self) -> str:
        return self.settings.routing.key_prefix + "config:version"

    async def _read_version(self) -> int:
        client = getattr(self.state, "client", None)
        if client is None:
            return 0  # memory: one process, nothing to hear about
        return int(await client.get(self._version_key()) or 0)

    async def _bump(self) -> None:
        """Tell the other hub processes sharing this Redis to reload (they look once a tick)."""
        client = getattr(self.state, "client", None)
        if client is not None:
            self._version = int(await client.incr(self._version_key()))

    async def _changed_elsewhere(self) -> bool:
        version = await self._read_version()
        if version == self._version:
            return False
        self._version = version
        return True
