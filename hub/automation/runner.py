"""Runs automation rules on the event log, once per event, in every hub process without double action.

Each process takes a batch of pending events in ONE transaction (on PostgreSQL the rows are locked, and rows
another process holds are skipped): for each event every enabled rule for its type is tried in order, the
actions' writes are made (labels, priority, replies through the outbox, notes, resolves, webhook deliveries), each
rule's run is recorded under (rule, event), and the event is marked done. So an event handled twice (replayed, or
raced by another process) never acts twice, and a crash before commit leaves the batch pending for another try.
Routing is told about priorities, moves, assignments and resolves after commit (routing's own state is derived
and repaired).

Loops are bounded: an event a rule's action causes (a reply's message.sent, a resolve) carries depth + 1, and
rules do not run on events deeper than automation.max_depth. Events about messages marked `meta.automatic`
(an auto-reply, ours or a customer's out-of-office) never run rules. Out of business hours, the queue's
auto-reply is sent once per conversation per closed window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any, Protocol

from hub import business_events, customer_profile, event_log, fail_points
from hub.automation import hours as business_hours
from hub.automation import rule_store
from hub.automation.rules import Action, Facts, Rule, RuleBody, matches
from hub.bots import turns as bot_turns
from hub.bots.turns import Applied
from hub.config import AutomationSettings
from hub.events import Event, EventBus
from hub.history import store
from hub.history.db import Database, Row, Tx, retryable
from hub.inbox import labels
from hub.model import Conversation, format_time, parse_time, utcnow
from hub.outbox import Outbox, ReplyError
from hub.webhooks import enqueue

log = logging.getLogger("hub.automation")

#: events one batch runs rules on at most (events nothing can act on are marked done in bulk and not counted): a batch
#: is one write transaction on the SQLite writer every inbound acknowledgement shares, so it stays a few ms long;
#: counted, not timed, so a batch's bounds are the same on every run
ACTED_PER_BATCH = 10

#: after the bus wakes it, the runner waits this long before its pass, so that the events right behind join the same
#: batch: woken by each message, it ran a read, a write transaction of its own and another read for every one or two
#: messages at a few hundred a second (a quarter of the writer's transactions at 150 a second, each one the inbound
#: acknowledgements queue behind); rules act this much later, nobody can tell
WAKE_SETTLE_SECONDS = 0.05

#: bus events that mean the event log may have grown (the log itself is the truth; the poll catches the rest)
WAKING = ("message.created", "conversation.opened", "conversation.reopened", "conversation.resolved")


class Routing(Protocol):
    """What the runner asks of routing (hub's Router)."""

    async def transfer(self, conversation_id: int, queue: str | None, agent_id: int | None, note: str) -> Any: ...
    async def resolve(self, conversation_id: int) -> Any: ...
    async def set_priority(self, conversation_id: int, priority: int) -> Any: ...


@dataclass
class _Outcome:
    """What one event's transaction did, for after commit."""

    event_id: int
    rules: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    resolved: bool = False
    moved_to: str | None = None
    assign_to: int | None = None
    priority: int | None = None  # the conversation's new priority (the last set_priority), for its place in line
    changed: bool = False
    conversation_id: int | None = None
    bot_turn: bool = False
    #: the handled event's depth: what routing records for this outcome's actions is one deeper
    depth: int = 0


@dataclass
class _Setup:
    """What a batch's events are checked against, read once per batch: the batch is one transaction, so an
    admin's change made meanwhile applies from the next batch, as if the batch had started a moment earlier."""

    #: enabled rules by event type, in their order
    rules: dict[str, list[Rule]]
    #: business hours by name (a queue's, or "default")
    hours: dict[str, business_hours.BusinessHours]
    #: some hours have an out-of-hours reply
    auto_reply: bool
    #: queues with an enabled bot
    bot_queues: set[str]

    @classmethod
    def read(cls, tx: Tx) -> _Setup:
        rules: dict[str, list[Rule]] = {}
        for rule in rule_store.listing(tx, enabled_only=True):
            rules.setdefault(rule.event, []).append(rule)
        hours = {name: business_hours.BusinessHours.model_validate(body)
                 for name, body in business_hours.listing(tx).items()}
        bots = {str(r["queue"]) for r in tx.all("SELECT queue FROM bots WHERE enabled = 1")}
        return cls(rules, hours, any(h.auto_reply for h in hours.values()), bots)

    def for_queue(self, queue: str | None) -> business_hours.BusinessHours | None:
        """As hub.automation.hours.for_queue: the queue's own hours, else the default; None when always open."""
        return (self.hours.get(queue) if queue else None) or self.hours.get(business_hours.DEFAULT)


def facts(tx: Tx, row: Row) -> Facts:
    """What conditions see for event ROW: the conversation as it is now, the message the event carried."""
    conv = store.conversation(tx, int(row["conversation_id"])).to_json()
    message = store.message(tx, int(row["message_id"])).to_json() if row["message_id"] is not None else None
    prio = tx.one("SELECT priority FROM conversations WHERE id = ?", (conv["id"],))
    attrs = tx.all("SELECT name, value FROM customer_attributes WHERE customer_id = ?", (conv["customer_id"],))
    return Facts(
        conversation=conv,
        # The conversation's labels and its customer's: "VIP customers go to the VIP queue" is one rule.
        labels=set(event_log.labels(tx, conv["id"])) | set(labels.of(tx, "customer", conv["customer_id"])),
        attributes={str(a["name"]): str(a["value"]) for a in attrs},
        message=message,
        at=parse_time(str(row["created_at"])),
        hours=business_hours.for_queue(tx, conv.get("queue")),
        priority=int(prio["priority"]) if prio else 0,
    )


class Runner:
    def __init__(self, db: Database, settings: AutomationSettings, outbox: Outbox, routing: Routing,
                 bus: EventBus, on_deliveries: Callable[[], None] = lambda: None,
                 on_bot_turns: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.settings = settings
        self.outbox = outbox
        self.routing = routing
        self.bus = bus
        self.wake = asyncio.Event()
        self._on_deliveries = on_deliveries
        self.on_bot_turns = on_bot_turns
        self._last_sweep = 0.0

    # -- one event ---------------------------------------------------------------------------------------------

    def _idle(self, row: Row, setup: _Setup) -> bool:
        """Nothing can act on event ROW: no rule for its type, and no out-of-hours reply or bot to start."""
        if not self.settings.enabled or row["conversation_id"] is None or row["automatic"]:
            return True
        if int(row["depth"]) > self.settings.max_depth:
            return False  # logged by process
        if setup.rules.get(str(row["type"])):
            return False
        first = row["type"] == "message.received" and int(row["depth"]) == 0
        return not (first and (setup.auto_reply or setup.bot_queues))

    def process(self, tx: Tx, event_id: int) -> _Outcome | None:
        """Run the rules for EVENT_ID inside TX; None if another process (or an earlier run) handled it."""
        row = tx.one(f"SELECT {event_log.COLUMNS} FROM hub_events WHERE id = ?" + tx.for_update, (event_id,))
        if row is None or row["status"] != "pending":
            return None
        return self._handle(tx, row, _Setup.read(tx))

    def _handle(self, tx: Tx, row: Row, setup: _Setup) -> _Outcome:
        """Run the rules for the pending event ROW (read and, on PostgreSQL, locked by the caller) inside TX."""
        event_id = int(row["id"])
        now = format_time(utcnow())
        out = _Outcome(event_id, conversation_id=row["conversation_id"], depth=int(row["depth"]))
        if self.settings.enabled and row["conversation_id"] is not None and not row["automatic"]:
            if row["type"] == "message.received" and int(row["depth"]) == 0 and (setup.auto_reply or setup.bot_queues):
                conv = store.conversation(tx, int(row["conversation_id"]))
                if setup.auto_reply:
                    self._out_of_hours(tx, row, out, conv, setup.for_queue(conv.queue))
                if conv.queue in setup.bot_queues:
                    handed = bot_turns.start(tx, conv.id, int(row["message_id"]), now)
                    out.moved_to, out.changed = handed, out.changed or handed is not None
                    out.bot_turn = handed is None
            if int(row["depth"]) <= self.settings.max_depth:
                for rule in setup.rules.get(str(row["type"]), []):
                    if matches(rule.conditions, facts(tx, row)):
                        self._apply(tx, rule, row, out, now)
            else:
                log.info("event %d is %d rule actions deep (automation.max_depth %d): rules not run",
                         event_id, row["depth"], self.settings.max_depth)
        if out.rules:
            fail_points.hit("automation.before_done")  # only where a rule acted: the half-done state worth a kill
        tx.exec("UPDATE hub_events SET status = 'done', processed_at = ? WHERE id = ?",
                (now, event_id))
        return out

    def _apply(self, tx: Tx, rule: Rule, row: Row, out: _Outcome, now: str) -> None:
        ran = tx.exec("INSERT INTO automation_runs (rule_id, event_id, conversation_id, at) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (rule_id, event_id) DO NOTHING", (rule.id, row["id"], row["conversation_id"], now))
        if not ran:
            return  # this rule already acted on this event
        tx.exec("UPDATE automation_rules SET runs = runs + 1, last_run_at = ? WHERE id = ?", (now, rule.id))
        out.rules.append(rule.id)
        for action in rule.actions:
            try:
                self._act(tx, rule, action, row, out, now)
            except ReplyError as e:  # e.g. the customer opted out: the other actions still run
                log.warning("rule %d (%s): %s not done: %s", rule.id, rule.name, action.type, e)

    def _act(self, tx: Tx, rule: Rule, a: Action, row: Row, out: _Outcome, now: str) -> None:
        conv_id, depth = int(row["conversation_id"]), int(row["depth"]) + 1
        conv = store.conversation(tx, conv_id)
        meta = {"automatic": True, "automation_rule": rule.id}
        if a.type == "add_label":
            labels.ensure(tx, str(a.value), now)  # a rule saved before labels had definitions
            labels.add(tx, "conversation", conv_id, str(a.value))
            out.changed = True
        elif a.type == "remove_label":
            labels.remove(tx, "conversation", conv_id, str(a.value))
            out.changed = True
        elif a.type == "set_priority":
            tx.exec("UPDATE conversations SET priority = ?, updated_at = ? WHERE id = ?", (a.value, now, conv_id))
            out.priority, out.changed = int(a.value), True  # type: ignore[arg-type]
        elif a.type == "set_attribute":
            self._set_attribute(tx, rule, a, conv.customer_id, now)
        elif a.type == "move_to_queue":
            if conv.status != "resolved" and conv.queue != a.value:
                tx.exec("UPDATE conversations SET queue = ?, updated_at = ? WHERE id = ?", (a.value, now, conv_id))
                out.moved_to, out.changed = str(a.value), True
        elif a.type == "assign_agent":
            if conv.status != "resolved":
                out.assign_to = int(a.value)  # type: ignore[arg-type]
        elif a.type == "send_reply":
            if conv.status != "resolved":
                out.messages.append(self.outbox.queue_reply(tx, conv_id, str(a.value), meta=meta, depth=depth))
        elif a.type == "add_note":
            out.messages.append(self.outbox.queue_reply(tx, conv_id, str(a.value), note=True, meta=meta, depth=depth))
        elif a.type == "resolve":
            if conv.status != "resolved":
                event_log.resolve(tx, conv_id, now, depth=depth)
                out.resolved = True
        elif a.type == "send_webhook":
            if tx.one("SELECT id FROM webhook_subscriptions WHERE id = ?", (a.value,)) is None:
                log.warning("rule %d (%s): webhook subscription %s does not exist", rule.id, rule.name, a.value)
            else:
                enqueue.add(tx, int(a.value), int(row["id"]), conv_id, now)  # type: ignore[arg-type]
                event_log.snapshot(tx, int(row["id"]))
                out.changed = True

    def _set_attribute(self, tx: Tx, rule: Rule, a: Action, customer_id: int, now: str) -> None:
        """Checked when saved, checked again now: the attribute may have been redefined since (a list option taken
        away, or deleted and made again with another type). A value that does not fit is not written; the rule is
        flagged with why, for the admin to see in its list."""
        name, value = str(a.name), str(a.value)
        definition = customer_profile.definition(tx, name)
        if definition is not None:
            try:
                value = customer_profile.check_value(definition, value)
            except customer_profile.AttributeValueError as e:
                problem = f"set_attribute {name}: {e} (the customer's value was left as it was)"
                log.warning("rule %d (%s): %s", rule.id, rule.name, problem)
                rule_store.flag(tx, rule.id, problem, now)
                return
        business_events.set_attribute(tx, customer_id, name, value)

    def _out_of_hours(self, tx: Tx, row: Row, out: _Outcome, conv: Conversation,
                      hours: business_hours.BusinessHours | None) -> None:
        """The queue's out-of-hours reply (HOURS: the conversation's queue's), once per conversation per closed
        window."""
        at = parse_time(str(row["created_at"]))
        if hours is None or not hours.auto_reply or hours.is_open(at):
            return
        opens = hours.next_open(at)
        window_end = format_time(opens.astimezone(UTC)) if opens else "never"
        first = tx.one("INSERT INTO hours_replies (conversation_id, window_end) VALUES (?, ?) "
                       "ON CONFLICT (conversation_id, window_end) DO NOTHING RETURNING conversation_id",
                       (conv.id, window_end))
        if first is None:
            return
        when = opens.strftime("%A %H:%M (%Z)") if opens else "later"
        text = hours.auto_reply.replace("{next_open}", when)
        try:
            mid = self.outbox.queue_reply(tx, conv.id, text, meta={"automatic": True, "business_hours": True},
                                          depth=int(row["depth"]) + 1)
        except ReplyError as e:
            log.warning("out-of-hours reply for conversation %d not sent: %s", conv.id, e)
            return
        tx.exec("UPDATE hours_replies SET message_id = ? WHERE conversation_id = ? AND window_end = ?",
                (mid, conv.id, window_end))
        out.messages.append(mid)

    async def _after(self, out: _Outcome) -> None:
        """Tell routing, the outbox, the webhook sender and the consoles what the committed transaction did."""
        conv_id = out.conversation_id
        if out.messages:
            self.outbox.wake()
            for mid in out.messages:
                msg = await self.db.read(lambda tx, m=mid: store.message(tx, m))  # type: ignore[misc]
                await self.bus.publish(Event("message.created", {"message": msg.to_json()}))
        self._on_deliveries()  # every event may have deliveries
        if out.bot_turn:
            self.on_bot_turns()
        if conv_id is None:
            return
        note = "moved by an automation rule"
        caused = event_log.CAUSE_DEPTH.set(out.depth + 1)
        try:
            if out.priority is not None and not out.resolved:
                await self.routing.set_priority(conv_id, out.priority)
            if out.moved_to is not None and not out.resolved:
                await self.routing.transfer(conv_id, out.moved_to, None, note)
            if out.assign_to is not None and not out.resolved:
                await self.routing.transfer(conv_id, None, out.assign_to, "assigned by an automation rule")
        except Exception as e:  # routing keeps its own state; the store holds the rule's decision
            log.warning("automation: routing did not take conversation %d: %s", conv_id, e)
        finally:
            event_log.CAUSE_DEPTH.reset(caused)
        if out.resolved:
            conv = await self.db.read(lambda tx: store.conversation(tx, conv_id).to_json())
            await self.bus.publish(Event("conversation.resolved", {"conversation": conv}))
            try:
                await self.routing.resolve(conv_id)
            except Exception:
                log.exception("automation: routing could not let go of resolved conversation %d", conv_id)
        elif out.changed:
            def load(tx: Tx) -> dict[str, Any]:
                return store.conversation(tx, conv_id).to_json() | {"labels": event_log.labels(tx, conv_id)}

            await self.bus.publish(Event("conversation.updated", {"conversation": await self.db.read(load)}))

    async def after_bot(self, applied: Applied) -> None:
        """After a bot's answer committed: the same telling as after a rule."""
        await self._after(_Outcome(0, messages=applied.messages, moved_to=applied.handed_off_to,
                                   changed=True, conversation_id=applied.conversation_id))

    # -- the loop ----------------------------------------------------------------------------------------------

    def batch(self, tx: Tx, limit: int, acted: int = ACTED_PER_BATCH) -> list[_Outcome]:
        """Handle up to LIMIT pending events, oldest first, inside TX, stopping once rules have run on ACTED of them
        (the events after are the next batch's); each in a savepoint, so one that fails (a bug, bad data) is left
        pending with the others done."""
        skip = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
        rows = tx.all(f"SELECT {event_log.COLUMNS} FROM hub_events WHERE status = 'pending' ORDER BY id LIMIT ?"
                      + skip, (limit,))
        if not rows:
            return []
        setup = _Setup.read(tx)
        done, idle = [], []
        for r in rows:
            if self._idle(r, setup):
                # Most events (no rules, no out-of-hours reply, no bot): marked done together below.
                idle.append(int(r["id"]))
                done.append(_Outcome(int(r["id"]), conversation_id=r["conversation_id"], depth=int(r["depth"])))
                continue
            if acted <= 0:
                break  # the batch's share of the writer is spent (ACTED_PER_BATCH)
            tx.exec("SAVEPOINT hub_automation")
            try:
                out = self._handle(tx, r, setup)
            except Exception as e:
                if retryable(e):
                    raise
                tx.exec("ROLLBACK TO SAVEPOINT hub_automation")
                log.exception("automation: event %d failed; it stays pending", r["id"])
                continue
            tx.exec("RELEASE SAVEPOINT hub_automation")
            done.append(out)
            # Only events handled count: ones that fail stay pending at the head of the line, and must not take
            # every later batch's share (they cost the writer too, but a failure is a bug, not the usual case).
            acted -= 1
        if idle:
            marks = ", ".join("?" for _ in idle)
            tx.exec(f"UPDATE hub_events SET status = 'done', processed_at = ? WHERE id IN ({marks})",
                    (format_time(utcnow()), *idle))
        return done

    async def drain(self) -> int:
        """Handle every pending event now; returns how many this process handled."""
        total = 0
        while True:
            pending = await self.db.read(lambda tx: tx.one("SELECT id FROM hub_events WHERE status = 'pending' "
                                                           "ORDER BY id LIMIT 1"))
            if pending is None:
                return total
            outcomes = await self.db.write(lambda tx: self.batch(tx, 100), background=True)
            if not outcomes:
                return total  # what is left failed, or another process holds it: the next pass looks again
            total += len(outcomes)
            for out in outcomes:
                await self._after(out)

    async def sweep(self, retention_days: float) -> None:
        """Forget processed events and finished deliveries older than the retention."""
        cutoff = format_time(utcnow() - timedelta(days=retention_days))

        def write(tx: Tx) -> None:
            tx.exec("DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND created_at < ?",
                    (cutoff,))
            tx.exec("DELETE FROM automation_runs WHERE at < ?", (cutoff,))
            tx.exec("DELETE FROM bot_turns WHERE status IN ('done', 'dropped') AND created_at < ?", (cutoff,))
            tx.exec("DELETE FROM hub_events WHERE status = 'done' AND created_at < ? AND NOT EXISTS "
                    "(SELECT 1 FROM webhook_deliveries d WHERE d.event_id = hub_events.id)", (cutoff,))

        await self.db.write(write, background=True)

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_sweep = loop.time()  # the first sweep waits: a start-up writes nothing it does not have to
        while True:
            # Cleared before the pass: an event logged while it runs wakes the next one at once.
            self.wake.clear()
            try:
                await self.drain()
                if loop.time() - self._last_sweep > 600:
                    self._last_sweep = loop.time()
                    await self.sweep(self.settings.retention_days)
            except Exception:
                log.exception("automation pass failed; retrying in %.1fs", self.settings.poll_interval_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.poll_interval_seconds)
            if self.wake.is_set():
                await asyncio.sleep(WAKE_SETTLE_SECONDS)  # the events right behind join the batch

    async def watch_bus(self) -> None:
        """Wake up when the bus says something happened (in any process, with the Redis bus)."""
        sub = self.bus.subscribe(lambda event: event.type in WAKING)
        try:
            async for _ in sub:
                self.wake.set()
                self._on_deliveries()
        finally:
            sub.close()

    # -- dry run -----------------------------------------------------------------------------------------------

    async def dry_run(self, body: RuleBody, limit: int) -> list[dict[str, Any]]:
        """Which of the last LIMIT events of the rule's type it would have matched (nothing is changed)."""

        def run(tx: Tx) -> list[dict[str, Any]]:
            rows = tx.all(f"SELECT {event_log.COLUMNS} FROM hub_events WHERE type = ? AND automatic = 0 AND depth = 0 "
                          "AND conversation_id IS NOT NULL ORDER BY id DESC LIMIT ?", (body.event, limit))
            hits = []
            for r in rows:
                seen = facts(tx, r)
                if matches(body.conditions, seen):
                    hits.append({"event_id": int(r["id"]), "conversation_id": int(r["conversation_id"]),
                                 "at": str(r["created_at"]), "text": (seen.message or {}).get("text")})
            return hits

        return await self.db.read(run)

