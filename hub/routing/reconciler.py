"""The reconciler: the store is the one source of truth for routing, and this brings the routing state (in memory,
or in Redis) back to it, at start and every `routing.reconcile_seconds`.

A decision is taken in the routing state (one atomic step) and then written to the store; a resolve and a presence
change go the other way (store first). A crash, a Redis outage or a Redis wipe between those two writes leaves them
apart. One pass repairs every such drift, each way, and is idempotent:

- the state lost its data (Redis wiped, restarted without persistence; or a memory backend's process restarted):
  queues and agents are loaded again, every offer and assignment of the store is put back with the same agent
  (their load is what the store says they hold), then every other open conversation waits in its queue again,
  with its age, and only then each agent gets the presence the store keeps: nothing is offered to an agent before
  what they hold counts against their capacity;
- the state holds a conversation the store has resolved (a resolve whose second write failed): it is let go, and
  the agent's capacity with it;
- the state took a decision the store never heard of (the process died after its state write): the store is
  brought forward to the state (an accept finished, an offer shown, a conversation back in its queue). Only when
  the same drift is seen by two passes in a row, at least SETTLE_SECONDS apart, so a decision still on its way to
  the store is never raced.
- the state gives a conversation another priority than the store (a set_priority whose routing call never landed):
  the state gets the store's, confirmed by two passes the same way.

Nothing is decided twice: a conversation missing from the state is put back only after the store is read again and
still shows it open and unchanged; if a resolve lands meanwhile, the put-back is undone at once (a resolve writes
the store first, so whichever comes second sees the other). Every write to the store is conditional on the row's
`updated_at` read by the same pass, so a repair never overwrites a newer decision. With several hub processes one
pass runs at a time (a Redis lock with an expiry); a stale holder can only repeat idempotent work.

A pass reads in sets (docs/routing.md, "What a pass costs"): the open conversations in one query, the state a PAGE
at a time in one round trip, what it puts back a PAGE at a time. Most passes compare only the conversations that
changed since the last one (incremental): those the store's change log names (hub.routing.changes, written by
triggers), those the state's changes() names, and the suspects of the last pass. Drift needs a change on one side,
so that is every conversation that can have drifted since. A pass compares every conversation instead at start,
after a wipe, when either log no longer reaches back to the last pass (trimmed past it, the state's version went
back), after a pass that failed half-way, and at least every FULL_SECONDS (what moves neither log: a Redis key
evicted, a promoted replica that missed the last writes).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from hub.events import Event
from hub.history import decisions
from hub.history.db import Database, Row, Tx
from hub.model import format_time, parse_time, utcnow
from hub.reports import events as conversation_events
from hub.routing import changes, deadlines
from hub.routing.events import Assigned, Offered, OfferTimedOut, RoutingEvent, Transferred
from hub.routing.state import RoutingState
from hub.routing.types import CAPACITY_CLASS, CHANNELS, AgentId, ConversationView, Presence, Waiting

if TYPE_CHECKING:
    from hub.routing.service import Router

log = logging.getLogger("hub.routing.reconciler")

_OPEN = "('open', 'assigned')"
_ROWS = (
    "SELECT c.id, c.status, c.agent_id, c.offered_to, c.offer_deadline, c.queue, c.channel, c.customer_id, "
    "c.created_at, c.updated_at, c.priority, c.respond_by FROM conversations c"
)
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass
class Repairs:
    """What one pass changed (all zero when state and store agree)."""

    rebuilt: bool = False  # the state had been wiped: queues and agents loaded again
    presence: int = 0  # agents given back the presence the store keeps
    held: int = 0  # offers and assignments of the store put back in the state
    requeued: int = 0  # open conversations the state did not know, back in their queue
    released: int = 0  # conversations the store resolved that the state still held (their capacity freed)
    forwarded: int = 0  # decisions of the state the store missed, written to the store
    priority: int = 0  # conversations given back the priority the store keeps

    def total(self) -> int:
        return (self.presence + self.held + self.requeued + self.released + self.forwarded + self.priority
                + int(self.rebuilt))


def _expected(row: Row) -> tuple[str, int | None]:
    """What the store says the state should show for an open conversation: (assigned|offered|waiting, agent)."""
    if row["status"] == "assigned" and row["agent_id"] is not None:
        return "assigned", int(row["agent_id"])
    if row["offered_to"] is not None:
        return "offered", int(row["offered_to"])
    return "waiting", None


def _shown(view: ConversationView) -> tuple[str, int | None]:
    if view.state in ("assigned", "offered"):
        return view.state, view.agent
    return "waiting", None  # waiting in its queue, or parked for an agent: in both no agent holds it yet


def _agent_row(tx: Tx, agent: int) -> Row | None:
    return tx.one("SELECT id, presence FROM agents WHERE id = ?", (agent,))


def _in(ids: Sequence[int]) -> str:
    return "(" + ", ".join("?" * len(ids)) + ")"


def _rows(tx: Tx, ids: Sequence[int]) -> dict[int, Row]:
    """The rows of these conversations, in one query (a page of the reconciler's, at most PAGE ids)."""
    return {int(r["id"]): r for r in tx.all(_ROWS + f" WHERE c.id IN {_in(ids)}", tuple(ids))} if ids else {}


def _first_response_known(tx: Tx, ids: Sequence[int]) -> set[int]:
    """Those of IDS an agent replied to, or whose first-response outcome is recorded (a breach, a reply)."""
    if not ids:
        return set()
    replied = tx.all(f"SELECT DISTINCT conversation_id FROM messages WHERE conversation_id IN {_in(ids)} "
                     "AND direction = 'out' AND agent_id IS NOT NULL AND kind NOT IN ('note', 'event')", tuple(ids))
    counted = tx.all(f"SELECT DISTINCT conversation_id FROM routing_decisions WHERE conversation_id IN {_in(ids)} "
                     "AND type IN ('routing.first_response', 'routing.sla_breached')", tuple(ids))
    return {int(r["conversation_id"]) for r in [*replied, *counted]}


def _pages(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i:i + PAGE] for i in range(0, len(ids), PAGE)]


# How many conversations one store query by id, or one round trip to the state, carries: a pass costs a few
# queries and round trips per PAGE open conversations, not a few per conversation.
PAGE = 1000

# A pass compares every conversation at least this often, even when neither side's log names a change: a state that
# changed without its version (a Redis key evicted, a replica promoted that had not seen the last writes) is still
# brought back.
FULL_SECONDS = 60.0

# Each side's change log is trimmed, at most every TRIM_SECONDS, to where a pass read it KEEP_SECONDS before: another
# hub process whose last pass is older than that compares everything at its next pass anyway (FULL_SECONDS), so a
# trim never costs it a comparison it would not make.
TRIM_SECONDS = FULL_SECONDS
KEEP_SECONDS = 2 * FULL_SECONDS

# Drift must also be seen unchanged over this long: a decision between its two writes takes milliseconds, but passes
# run back to back (a short reconcile_seconds, or a pass right after another process's) must not mistake it for drift.
SETTLE_SECONDS = 1.0


class Reconciler:
    def __init__(self, router: Router) -> None:
        self.router = router
        #: drift seen by the last pass: conversation id, or ("agent", id) -> (what was seen: its kind, the row's
        #: updated_at, the state's view; when it was first seen)
        self._suspects: dict[object, tuple[tuple[object, ...], float]] = {}
        # The next pass acts on drift at once: the state was empty when loaded (memory at start, a Redis without
        # this prefix's keys), so nothing else can be on its way into it.
        self._eager = True
        self._running = asyncio.Lock()
        #: where the next pass reads each side's change log from (the store's cursor, the state's version), read
        #: before the last pass compared; None: the next pass compares everything
        self._cursors: tuple[changes.Cursor, int] | None = None
        #: when the last pass that compared everything started
        self._full_at = float("-inf")
        #: the cursors each pass started from, and when (monotonic): the logs are trimmed to one KEEP_SECONDS old
        self._marks: deque[tuple[float, tuple[changes.Cursor, int]]] = deque()
        self._trimmed_at = time.monotonic()

    @property
    def _client(self) -> Any:
        return getattr(self.router.state, "client", None)

    def _key(self, name: str) -> str:
        return self.router.settings.routing.key_prefix + name

    async def loading(self) -> None:
        """The state is about to be loaded from the store (at start): a pass need not load it again. A Redis
        state that other processes already use is not empty: its drift waits for a second look like any other."""
        if self._client is not None:
            self._eager = await self._client.set(self._key("epoch"), "1", get=True) is None

    async def run(self) -> Repairs | None:
        """One pass; None when another hub process is running one."""
        async with self._running:
            client = self._client
            if client is None:
                return await self._pass()
            token = uuid.uuid4().hex
            # Short: a process killed mid-pass holds it until it expires, and two passes at once only repeat work.
            ttl = int(max(2.0, 2 * self.router.settings.routing.reconcile_seconds) * 1000)
            if not await client.set(self._key("reconcile:lock"), token, nx=True, px=ttl):
                return None
            try:
                return await self._pass()
            finally:
                await client.eval(_UNLOCK, 1, self._key("reconcile:lock"), token)

    async def _pass(self) -> Repairs:
        done = Repairs()
        done.rebuilt = await self._rebuild_if_wiped()
        # Drift is acted on when two passes in a row see it unchanged: a decision on its way from one write to the
        # other (in this process or another) has landed by then. Right after a load the state was empty: at once.
        eager, self._eager = self._eager or done.rebuilt, False
        if eager:
            await self._counters()
        # Conversations before presence: an agent made available again is offered what waits at once, so what the
        # store says they hold must count against their capacity first.
        suspects: dict[object, tuple[tuple[object, ...], float]] = {}
        # Both sides' logs, read before comparing: a change after this read is in the next pass's. Forgotten until
        # this pass ends: one that fails half-way leaves the next to compare everything.
        cursors, self._cursors = self._cursors, None
        started = time.monotonic()
        changed = None
        if not eager and cursors is not None and started - self._full_at < FULL_SECONDS:
            changed, after = await self._changed(cursors)
        if changed is None:
            after = (await self.router.db.read(changes.head), await self.router.state.version())
            self._full_at = started
            await self._conversations(done, eager, suspects)
        else:
            # The suspects too: their second look must come even when nothing changes meanwhile.
            ids = sorted(changed | {k for k in self._suspects if isinstance(k, int)})
            await self._conversations(done, eager, suspects, ids)
        await self._presence(done, eager, suspects)
        self._suspects = suspects
        self._cursors = after
        await self._trim(started, after)
        if done.total():
            log.warning("routing: repaired drift from the store: %s", done)
        return done

    async def _changed(self, cursors: tuple[changes.Cursor, int]) -> tuple[set[int] | None, tuple[changes.Cursor, int]]:
        """The conversations either side changed since CURSORS, and where the next pass reads from; None when a
        side's log no longer reaches back to them."""
        store = await self.router.db.read(partial(changes.since, cursor=cursors[0]))
        state = await self.router.state.changes(cursors[1])
        if store.conversations is None or state is None:
            return None, cursors
        return set(store.conversations) | set(state[1]), (store.cursor, state[0])

    async def _trim(self, now: float, cursors: tuple[changes.Cursor, int]) -> None:
        """Trim both logs, at most every TRIM_SECONDS, to where a pass read them at least KEEP_SECONDS ago."""
        self._marks.append((now, cursors))
        if now - self._trimmed_at < TRIM_SECONDS:
            return
        upto = None
        while self._marks and now - self._marks[0][0] >= KEEP_SECONDS:
            upto = self._marks.popleft()[1]
        if upto is None:
            return
        self._trimmed_at = now
        await self.router.db.write(partial(changes.trim, cursor=upto[0]), background=True)
        await self.router.state.trim_changes(upto[1])

    async def _rebuild_if_wiped(self) -> bool:
        """A Redis that lost its data (restart without persistence, FLUSHALL, eviction) has lost the epoch key
        written after the last load: load queues and agents again. Set first, so a wipe during the load is seen
        by the next pass."""
        client = self._client
        if client is None:
            return False
        if await client.set(self._key("epoch"), "1", nx=True) is None:
            return False
        await self.router.load_state()
        return True

    async def _counters(self) -> None:
        """The queues' counters of a state that was empty (loaded at start, or Redis wiped) from the store's record
        of every decision (hub.history.decisions), so GET /api/v1/queues counts on instead of from zero."""
        router = self.router
        counts = await router.db.read(decisions.counters)
        for queue in router.engine.queues:
            await router.state.restore_counts(queue, counts.get(queue, {}))

    def _confirmed(self, key: object, seen: tuple[object, ...], eager: bool,
                   suspects: dict[object, tuple[tuple[object, ...], float]]) -> bool:
        """Drift SEEN for KEY is acted on when the last pass saw the same, at least SETTLE_SECONDS before (at once
        when EAGER); else it is remembered in SUSPECTS for the next pass."""
        if eager:
            return True
        now = time.monotonic()
        before = self._suspects.get(key)
        if before is not None and before[0] == seen:
            if now - before[1] >= SETTLE_SECONDS:
                return True
            suspects[key] = before  # seen again, but too soon to tell from a decision between its writes
            return False
        suspects[key] = (seen, now)  # look again next pass
        return False

    async def _presence(self, done: Repairs, eager: bool,
                        suspects: dict[object, tuple[tuple[object, ...], float]]) -> None:
        """The state gets each agent's presence from the store. A presence change writes the store first, then the
        state: the same drift seen twice, and the store read again unchanged, so that one is never undone."""
        router = self.router
        rows = await router.db.read(lambda tx: tx.all("SELECT id, presence FROM agents ORDER BY id"))
        known = await router.state.read_agents([int(r["id"]) for r in rows])
        for r in rows:
            aid = int(r["id"])
            stats = known.get(aid)
            if stats is None or stats.presence.value == r["presence"]:
                continue
            if not self._confirmed(("agent", aid), ("presence", r["presence"], stats.presence.value), eager, suspects):
                continue
            fresh = await router.db.read(partial(_agent_row, agent=aid))
            if fresh is None or fresh["presence"] != r["presence"]:
                continue
            events = await router.engine.set_presence(aid, Presence(str(r["presence"])))
            await router._apply(events, "repair")
            done.presence += 1

    async def _conversations(self, done: Repairs, eager: bool,
                             suspects: dict[object, tuple[tuple[object, ...], float]],
                             ids: Sequence[int] | None = None) -> None:
        """Every open conversation of the store (one query) against the state (one round trip per PAGE); with IDS
        only those (one query and one round trip per PAGE of them)."""
        router = self.router
        if ids is None:
            rows = await router.db.read(lambda tx: tx.all(_ROWS + f" WHERE c.status IN {_OPEN} ORDER BY c.id"))
        else:
            rows = []
            for some in _pages(ids):
                found = await router.db.read(partial(_rows, ids=some))
                rows += [found[cid] for cid in some if cid in found and found[cid]["status"] in ("open", "assigned")]
        open_ids = {int(r["id"]) for r in rows}

        def confirmed(cid: int, seen: tuple[object, ...]) -> bool:
            return self._confirmed(cid, seen, eager, suspects)

        # What agents hold first, then what waits: a conversation put back in its queue is offered at once to an
        # agent with room, and their room is only known once every offer and assignment of theirs is held again.
        missing: list[Row] = []
        for i in range(0, len(rows), PAGE):
            page = rows[i:i + PAGE]
            # Let requests in between pages: in memory nothing here waits, and 100,000 rows are a second of work.
            await asyncio.sleep(0)
            views = await router.state.read_conversations([int(r["id"]) for r in page])
            for row in page:
                cid = int(row["id"])
                view = views.get(cid)
                if view is None:
                    if confirmed(cid, ("missing", row["updated_at"])):
                        missing.append(row)
                    continue
                shown = _shown(view)
                if shown != _expected(row):
                    if confirmed(cid, ("differs", row["updated_at"], shown)):
                        await self._forward(row, view, done)
                elif view.priority != int(row["priority"]) and confirmed(cid, ("priority", row["updated_at"],
                                                                               view.priority)):
                    await self._reprioritize(row, done)
        held = [r for r in missing if _expected(r)[1] is not None]
        not_held: list[Row] = []
        for i in range(0, len(held), PAGE):
            not_held += await self._put_back(held[i:i + PAGE], done, hold=True)
        waiting = not_held + [r for r in missing if _expected(r)[1] is None]
        for i in range(0, len(waiting), PAGE):
            await self._put_back(waiting[i:i + PAGE], done, hold=False)

        if ids is None:
            gone = [cid for cid in await router.state.routed() if cid not in open_ids]
        else:  # those of IDS the state holds that are not open in the store
            gone = []
            for some in _pages([cid for cid in ids if cid not in open_ids]):
                gone += sorted(await router.state.read_conversations(some))
        for some in _pages(gone):
            statuses = await router.db.read(partial(_rows, ids=some))
            for cid in some:
                fresh = statuses.get(cid)
                # Not open in the store: resolved or snoozed (a snooze writes the store first, then lets go of it
                # here), or opened after this pass read it (then the next pass sees it open).
                if (fresh is None or fresh["status"] in ("resolved", "snoozed")) and confirmed(cid, ("resolved",)):
                    if fresh is not None and fresh["status"] == "snoozed":
                        await router.release(cid)  # set aside, not abandoned: the reports count nothing
                    else:
                        await router._apply(await router.engine.resolve(cid), "repair")
                    done.released += 1

    async def _put_back(self, rows: list[Row], done: Repairs, hold: bool) -> list[Row]:
        """Open conversations the state lost (at most PAGE), read again in one query: with HOLD, each offer and
        assignment held again with the same agent (returned: those that could not be, to be queued); else each
        back in its queue. A few queries and state round trips for the page, not per conversation."""
        router = self.router
        ids = [int(r["id"]) for r in rows]

        def read(tx: Tx) -> tuple[dict[int, Row], set[int]]:
            return _rows(tx, ids), _first_response_known(tx, ids)

        fresh_rows, replied = await router.db.read(read)
        # Deadlines the store lacks (opened before they were stored, or the process died before it stored one):
        # computed and stored once, from the conversation's arrival, in one write for the page.
        def queue_of(row: Row) -> str:
            return str(row["queue"]) if row["queue"] in router.engine.queues else router.settings.routing.default_queue

        undated = {cid: row for cid, row in fresh_rows.items()
                   if cid not in replied and row["respond_by"] is None and row["status"] in ("open", "assigned")
                   and router.engine.queues[queue_of(row)].first_response > 0}
        if undated:
            def date(tx: Tx) -> dict[int, float]:
                return deadlines.store_many(tx, [(cid, router.engine.queues[queue_of(row)],
                                                  parse_time(str(row["created_at"])).timestamp())
                                                 for cid, row in undated.items()])

            dated = await router.db.write(date)
        else:
            dated = {}
        items: list[tuple[Row, Waiting]] = []
        for row in rows:
            cid = int(row["id"])
            fresh = fresh_rows.get(cid)
            if fresh is None or fresh["status"] not in ("open", "assigned") or fresh["updated_at"] != row["updated_at"]:
                continue  # moved on since this pass read it (resolved, accepted...): nothing to put back
            queue = queue_of(row)
            channel = str(row["channel"]) if row["channel"] in CHANNELS else "api"
            arrived = parse_time(str(row["created_at"])).timestamp()
            priority = int(fresh["priority"])  # the store's: a routing rule's, or a later set_priority's
            item = Waiting(cid, queue, channel, priority, arrived, int(row["customer_id"]))
            # Its first-response clock runs again, to its stored deadline, unless an agent replied or its outcome
            # is already counted.
            due = dated.get(cid) if fresh["respond_by"] is None else float(fresh["respond_by"])
            if due is not None and cid not in replied:
                item = replace(item, respond_by=due)
            items.append((row, item))
        if not items:
            return []
        now = router.clock()
        put: list[int] = []
        left: list[Row] = []
        if hold:
            holds: list[tuple[Waiting, AgentId, float | None]] = []
            for row, item in items:
                state, agent = _expected(row)
                assert agent is not None
                holds.append((item, agent, float(row["offer_deadline"] or now) if state == "offered" else None))
            for (row, item), ok in zip(items, await router.state.hold_many(holds, now), strict=True):
                if ok:
                    put.append(item.id)
                    done.held += 1
                elif await router.state.conversation(item.id) is None:
                    left.append(row)  # the agent is unknown to routing: it waits in its queue instead
        else:
            # The inbound path may have queued one meanwhile (its own enqueue): that one is left as it is.
            queued, events = await router.engine.enqueue_many([item for _, item in items])
            await router._apply(events, "repair")
            put += queued
            done.requeued += len(queued)
        # A resolve that wrote the store after the read above found nothing to release in the state: undo.
        statuses = await router.db.read(partial(_rows, ids=put)) if put else {}
        for cid in put:
            status = statuses.get(cid)
            if status is None or status["status"] == "resolved":
                await router._apply(await router.engine.resolve(cid), "repair")
        return left

    async def _reprioritize(self, row: Row, done: Repairs) -> None:
        """The state gives the conversation another priority than the store (seen twice): the store's holds. Read
        again first, so a set_priority written since (store first, then state) is the one applied."""
        router, cid = self.router, int(row["id"])
        fresh = (await router.db.read(lambda tx: _rows(tx, [cid]))).get(cid)
        if fresh is None or fresh["status"] not in ("open", "assigned") or fresh["updated_at"] != row["updated_at"]:
            return  # moved on: the next pass compares again
        if await router.engine.set_priority(cid, int(fresh["priority"])):
            done.priority += 1

    async def _forward(self, row: Row, view: ConversationView, done: Repairs) -> None:
        """Write to the store the decision the state took (seen twice): what the dead process would have written."""
        router, cid = self.router, int(row["id"])
        state, agent = _shown(view)
        now = format_time(utcnow())
        if state == "assigned":
            status, agent_id, offered_to, deadline = "assigned", agent, None, None
        elif state == "offered":
            status, agent_id, offered_to, deadline = "open", None, agent, view.until
        else:
            status, agent_id, offered_to, deadline = "open", None, None, None

        was_state, was_agent = _expected(row)
        event: RoutingEvent
        if state == "assigned" and agent is not None:
            # The accept (or direct assignment) happened a moment ago; its wait is measured from now.
            waited = max(0.0, router.clock() - view.enqueued_at)
            event = Assigned(cid, agent, view.queue, view.channel, waited, accepted=was_state == "offered")
        elif state == "offered" and agent is not None:
            event = Offered(cid, agent, view.queue, view.channel, view.until)
        elif was_state == "offered" and was_agent is not None:
            event = OfferTimedOut(cid, was_agent, view.queue)
        else:
            event = Transferred(cid, str(row["queue"]), was_agent, view.queue, None, "back in its queue (repaired)")
        sla_wait = {name: q.sla_wait for name, q in router.settings.routing.queues.items()}

        def write(tx: Tx) -> bool:
            n = tx.exec(
                "UPDATE conversations SET status = ?, agent_id = ?, offered_to = ?, offer_deadline = ?, queue = ?, "
                f"updated_at = ? WHERE id = ? AND updated_at = ? AND status IN {_OPEN}",
                (status, agent_id, offered_to, deadline, view.queue, now, cid, row["updated_at"]),
            )
            if n:  # counted where every decision is: the wall's figures, reports, a rebuilt state's counters
                conversation_events.record_routing(tx, event, now)
                decisions.record(tx, [event], now, sla_wait)
            return n > 0

        if not await router.db.write(write):
            return  # the row moved on: the next pass compares again
        done.forwarded += 1
        await router.bus.publish(Event(event.type, event.data()))


async def audit(db: Database, state: RoutingState) -> list[str]:
    """The invariants after any fault, as a list of what does not hold (empty: all hold): every open conversation
    is with exactly one agent who can see it or waits in a queue at the priority the store gives it, the state holds
    nothing the store resolved, every agent's load and presence in the state are what the store says, and no agent
    holds more than their capacity."""
    def read(tx: Tx) -> tuple[list[Row], list[Row], dict[int, set[str]]]:
        rows = tx.all(_ROWS + f" WHERE c.status IN {_OPEN} ORDER BY c.id")
        agents = tx.all("SELECT id, presence, disabled FROM agents ORDER BY id")
        queues: dict[int, set[str]] = {}
        for m in tx.all("SELECT agent_id, queue FROM agent_queues"):
            queues.setdefault(int(m["agent_id"]), set()).add(str(m["queue"]))
        return rows, agents, queues

    rows, agents, queues = await db.read(read)
    problems: list[str] = []
    holds: dict[int, Counter[str]] = {}
    open_ids = set()
    views: dict[int, ConversationView] = {}
    for i in range(0, len(rows), PAGE):
        views |= await state.read_conversations([int(r["id"]) for r in rows[i:i + PAGE]])
    known = await state.read_agents([int(a["id"]) for a in agents])
    for row in rows:
        cid = int(row["id"])
        open_ids.add(cid)
        want, agent = _expected(row)
        view = views.get(cid)
        if view is None:
            problems.append(f"conversation {cid} is {want} in the store but unknown to routing")
            continue
        if _shown(view) != (want, agent):
            problems.append(f"conversation {cid}: store says {want} {agent}, routing says {view.state} {view.agent}")
        if view.priority != int(row["priority"]):
            problems.append(f"conversation {cid}: priority {row['priority']} in the store, {view.priority} in routing")
        if agent is not None:
            holds.setdefault(agent, Counter())[CAPACITY_CLASS.get(str(row["channel"]), "chat")] += 1
            if want == "offered" and row["queue"] not in queues.get(agent, set()):
                problems.append(f"conversation {cid} is offered to agent {agent}, who cannot see queue {row['queue']}")
    for cid in await state.routed():
        if cid not in open_ids:
            problems.append(f"conversation {cid} is held by routing but not open in the store")
    for a in agents:
        aid = int(a["id"])
        stats = known.get(aid)
        if stats is None:
            if holds.get(aid):
                problems.append(f"agent {aid} holds {dict(holds[aid])} in the store but is unknown to routing")
            continue
        if stats.load != {k: v for k, v in holds.get(aid, Counter()).items() if v}:
            problems.append(f"agent {aid}: load {stats.load} in routing, {dict(holds.get(aid, {}))} in the store")
        # (A capacity lowered while an agent holds more is not this; no test or soak changes capacities.)
        if over := {k: v for k, v in stats.load.items() if v > stats.capacity.get(k, 0)}:
            problems.append(f"agent {aid}: holds {over}, over their capacity {stats.capacity}")
        if stats.presence.value != a["presence"]:
            problems.append(f"agent {aid}: {stats.presence.value} in routing, {a['presence']} in the store")
    return problems
