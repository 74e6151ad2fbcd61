"""In-process routing state: the embedded default, and the reference the Redis backend's Lua must agree with.

Every index is a heap (a waiting line: a FIFO and a heap per priority, see _Band) with lazy deletion: an entry
carries the token its conversation had when it was pushed (every change of a conversation's state gives it a new
token), and is dropped when found stale at the top, or all at once when stale entries outnumber live ones. Taking
the head of a line is O(1) when conversations arrive in age order, never a scan of a queue.

A waiting line's head is always fresh (whoever takes a conversation out of a line drops the stale entries above the
next one), and each agent keeps a plan: the lines and ready indexes of their queues, resolved once per change of
settings. So a decision reads the heads it compares and the one conversation it takes, nothing else: at 100k waiting
most of a decision's cost is memory that is not in the CPU cache, and every object not touched is a miss saved.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hub.routing.strategies import agent_score, can_take, is_ready, meets, skill_match, waiting_score
from hub.routing.types import (
    CAPACITY_CLASS,
    CLASSES,
    COUNTED,
    SCAN_LIMIT,
    AgentConfig,
    AgentId,
    AgentStats,
    Claim,
    ConversationId,
    ConversationView,
    Escalation,
    Expiry,
    FirstResponse,
    Presence,
    QueueConfig,
    QueueId,
    QueueStats,
    Release,
    Strategy,
    Waiting,
)

# (score, member as text, token, conversation id): member text breaks ties exactly like a Redis sorted set does. Only
# plain values, never the conversation object: CPython's collector stops tracking such tuples, so the indexes (several
# entries per waiting conversation) add nothing to the full collections that otherwise grow with the waiting count.
_Entry = tuple[float, str, int, ConversationId]
# (score, member as text, 0, agent id): fresh while the score is the agent's current one in that queue.
_AgentEntry = tuple[float, str, int, AgentId]
# A waiting line of a queue: (capacity class, stage line). Conversations in one line all need the same skills, so
# the head of a line is the only one worth trying; lines apart keep a skilled head from blocking a widened one.
_LineKey = tuple[str, int]
# (respond_by, member as text, conversation id, queue, enqueued_at): a conversation awaiting its first reply. The
# member text "id:queue:enqueued_at" is what the Redis index holds: both break ties and tell incarnations apart alike.
_AwaitEntry = tuple[float, str, ConversationId, QueueId, float]
# One of an agent's queues, as their ready index sees it: (queue, settings, ready scores, ready heap).
_Route = tuple[QueueId, QueueConfig, dict[AgentId, float], list[_AgentEntry]]

_AVAILABLE = Presence.AVAILABLE
_LONGEST_IDLE = Strategy.LONGEST_IDLE
_heappush = heapq.heappush
_heappop = heapq.heappop


class _Heap:
    """A min-heap of entries with lazy deletion, compacted when stale entries pile up (amortized O(1) per push)."""

    __slots__ = ("entries", "limit")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.limit = 64

    def push(self, entry: _Entry, fresh: Callable[[_Entry], bool]) -> None:
        entries = self.entries
        _heappush(entries, entry)
        if len(entries) > self.limit:
            entries[:] = [e for e in entries if fresh(e)]
            heapq.heapify(entries)
            self.limit = 2 * len(entries) + 64

    def head(self, fresh: Callable[[_Entry], bool]) -> _Entry | None:
        """The first fresh entry, left in place; stale entries above it are dropped."""
        entries = self.entries
        while entries:
            if fresh(entries[0]):
                return entries[0]
            _heappop(entries)
        return None


class _Band:
    """One priority of a waiting line, in (score, member) order: a FIFO of the entries that came in order (new
    arrivals, the usual case: O(1) in and out, touching only the ends), and a small heap of those that did not (a
    conversation keeping its age across a requeue, transfer or escalation). Lazy deletion as in _Heap."""

    __slots__ = ("fifo", "late")

    def __init__(self) -> None:
        self.fifo: deque[_Entry] = deque()
        self.late: list[_Entry] = []

    def push(self, entry: _Entry) -> None:
        fifo = self.fifo
        if not fifo or entry > fifo[-1]:
            fifo.append(entry)
        else:
            _heappush(self.late, entry)

    def front(self, fresh: Callable[[_Entry], bool]) -> _Entry | None:
        """The first fresh entry; the stale ones before it are dropped."""
        fifo, late = self.fifo, self.late
        while fifo and not fresh(fifo[0]):
            fifo.popleft()
        while late and not fresh(late[0]):
            _heappop(late)
        if fifo:
            return late[0] if late and late[0] < fifo[0] else fifo[0]
        return late[0] if late else None

    def compact(self, fresh: Callable[[_Entry], bool]) -> None:
        self.fifo = deque(e for e in self.fifo if fresh(e))
        self.late = [e for e in self.late if fresh(e)]
        heapq.heapify(self.late)


class _Line:
    """A waiting line: a band per priority, and `first`, its head across bands, kept fresh by whoever takes a
    conversation out of the line (MemoryState._take_out), so a decision compares heads without reading conversations."""

    __slots__ = ("bands", "first", "limit", "size")

    def __init__(self) -> None:
        self.bands: dict[int, _Band] = {}
        self.first: _Entry | None = None
        self.size = 0  # entries held, stale ones included
        self.limit = 64

    def push(self, entry: _Entry, priority: int, fresh: Callable[[_Entry], bool]) -> None:
        band = self.bands.get(priority)
        if band is None:
            band = self.bands[priority] = _Band()
        band.push(entry)
        first = self.first
        if first is None or entry < first:
            self.first = entry
        self.size += 1
        if self.size > self.limit:
            for band in self.bands.values():
                band.compact(fresh)
            self.size = sum(len(b.fifo) + len(b.late) for b in self.bands.values())
            self.limit = 2 * self.size + 64

    def took(self, conversation: ConversationId, priority: int, fresh: Callable[[_Entry], bool]) -> None:
        """A conversation of this priority left the line: drop its band's stale front and, if it was the head, find
        the head again among the bands' fronts (fresh: every take-out cleans its band like this)."""
        band = self.bands.get(priority)
        if band is not None:
            band.front(fresh)
        first = self.first
        if first is not None and first[3] == conversation:
            best: _Entry | None = None
            for band in self.bands.values():
                fifo, late = band.fifo, band.late
                e = late[0] if late and (not fifo or late[0] < fifo[0]) else fifo[0] if fifo else None
                if e is not None and (best is None or e < best):
                    best = e
            self.first = best

    def head(self, fresh: Callable[[_Entry], bool]) -> _Entry | None:
        best: _Entry | None = None
        for band in self.bands.values():
            e = band.front(fresh)
            if e is not None and (best is None or e < best):
                best = e
        self.first = best
        return best

    def entries(self) -> list[_Entry]:
        return [e for b in self.bands.values() for e in (*b.fifo, *b.late)]


@dataclass(slots=True)
class _Agent:
    config: AgentConfig
    presence: Presence = Presence.OFFLINE
    load: dict[str, int] = field(default_factory=dict)
    wrapup_until: float = 0.0
    last: float = 0.0
    missed: int = 0
    round_robin: dict[QueueId, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    sid: str = ""  # the id as text: the ready indexes' tie-break, as in Redis
    # The plan, valid while plan_at is the state's layout version: (class, line) of every line of the agent's
    # queues whose skills the agent meets, and (queue, settings, ready scores, ready heap) of every known queue.
    lines: list[tuple[str, _Line]] = field(default_factory=list)
    routes: list[_Route] = field(default_factory=list)
    plan_at: int = -1

    def __post_init__(self) -> None:
        self.sid = str(self.config.id)


@dataclass(slots=True)
class _Conversation:
    id: ConversationId
    queue: QueueId
    channel: str
    priority: int
    enqueued_at: float
    queued_at: float
    customer: int | None
    cls: str = ""
    score: float = 0.0
    sid: str = ""  # the id as text: the tie-break, as in Redis
    state: str = "waiting"  # waiting | parked | offered | assigned
    agent: AgentId | None = None  # the agent it is parked for, offered to or assigned to
    until: float = 0.0  # parked until, or the offer's deadline
    stage: int = 0
    line: int = 0  # the stage line it waits in: its stage, capped at the queue's last level
    skip: set[AgentId] | None = None  # agents who declined it; None (no object to track) until one does
    token: int = 0
    respond_by: float = 0.0  # first-response deadline while awaiting the first reply, else 0
    respond_queue: QueueId = ""  # the queue whose first-response target it is (the one it arrived in)
    waits_in: _Line | None = None  # the line it waits in, while waiting

    def __post_init__(self) -> None:
        self.cls = CAPACITY_CLASS[self.channel]
        self.score = waiting_score(self.priority, self.enqueued_at)
        self.sid = str(self.id)


class MemoryState:
    def __init__(self) -> None:
        self.queues: dict[QueueId, QueueConfig] = {}
        self.agents: dict[AgentId, _Agent] = {}
        self.conversations: dict[ConversationId, _Conversation] = {}
        self._lines: dict[QueueId, dict[_LineKey, _Line]] = {}
        self._age: dict[tuple[QueueId, int], _Heap] = {}
        self._oldest: dict[QueueId, _Heap] = {}
        self._waiting_count: Counter[QueueId] = Counter()
        self._parked: dict[AgentId, _Heap] = {}
        self._parked_until = _Heap()
        self._offers = _Heap()
        self._ready: dict[QueueId, list[_AgentEntry]] = {}
        self._ready_score: dict[QueueId, dict[AgentId, float]] = {}
        self._wrapups: list[_AgentEntry] = []
        self._round_robin: Counter[QueueId] = Counter()
        self._last_agent: dict[int, AgentId] = {}
        self._queue_counts: dict[QueueId, Counter[str]] = {}
        self._members: dict[QueueId, set[AgentId]] = {}
        self._tokens = itertools.count(1)
        #: changes with every conversation added, dropped, or given another state, agent or priority (version())
        self._version = 0
        #: the conversations changed, each with the version of its last change, after version _trimmed (changes())
        self._changed: dict[ConversationId, int] = {}
        self._trimmed = 0
        # First-response deadlines not yet met nor breached: member -> deadline, and a heap of them by deadline.
        self._awaiting: dict[str, float] = {}
        self._awaiting_heap: list[_AwaitEntry] = []
        # Bumped by every change that can change an agent's plan (settings, a new line): plans are rebuilt lazily.
        self._layout = 0

    def _fresh(self, e: _Entry) -> bool:
        c = self.conversations.get(e[3])
        return c is not None and c.token == e[2]

    # settings and presence

    async def put_queue(self, queue: QueueConfig, now: float) -> None:
        old = self.queues.get(queue.id)
        self.queues[queue.id] = queue
        self._layout += 1
        self._queue_counts.setdefault(queue.id, Counter())
        self._members.setdefault(queue.id, set())
        self._lines.setdefault(queue.id, {})
        if old is not None and len(old.levels) != len(queue.levels):
            self._refile(queue.id)
        # Strategy or skills may have changed: rebuild this queue's ready index from its members.
        self._ready[queue.id] = []
        self._ready_score[queue.id] = {}
        route = (queue.id, queue, self._ready_score[queue.id], self._ready[queue.id])
        for aid in sorted(self._members[queue.id]):
            self._reindex(self.agents[aid], now, only=route)

    def _refile(self, queue: QueueId) -> None:
        """The plan has another number of stages: put the queue's waiting conversations in their new lines."""
        fresh = self._fresh
        convs = self.conversations
        waiting = {e[3]: convs[e[3]] for line in self._lines[queue].values() for e in line.entries() if fresh(e)}
        self._lines[queue] = {}
        self._layout += 1
        for cid in sorted(waiting):
            c = waiting[cid]
            self._take_out(c)
            self._put_waiting(c)

    async def put_agent(self, agent: AgentConfig, now: float) -> None:
        a = self.agents.get(agent.id)
        if a is None:
            a = self.agents[agent.id] = _Agent(agent, last=now)
        for q in set(a.config.queues) - set(agent.queues):
            self._members.get(q, set()).discard(agent.id)
            self._ready_score.get(q, {}).pop(agent.id, None)
        a.config = agent
        self._layout += 1
        for q in agent.queues:
            self._members.setdefault(q, set()).add(agent.id)
        self._reindex(a, now)

    async def set_presence(self, agent: AgentId, presence: Presence, now: float) -> bool:
        a = self.agents.get(agent)
        if a is None:
            return False
        if presence is Presence.AVAILABLE and a.presence is not Presence.AVAILABLE:
            a.missed = 0
            a.last = now
        a.presence = presence
        self._reindex(a, now)
        return True

    # the ready index of agents, per queue

    def _plan(self, a: _Agent) -> None:
        """Resolve the agent's queues into the lines and ready indexes a decision reads (see the module docstring)."""
        cfg = a.config
        a.lines, a.routes = [], []
        for qid in cfg.queues:
            q = self.queues.get(qid)
            if q is None:
                continue
            a.routes.append((qid, q, self._ready_score[qid], self._ready[qid]))
            levels = q.levels
            for (cls, line), waiting in self._lines.get(qid, {}).items():
                if meets(cfg.skills, levels[line] if line < len(levels) else levels[-1]):
                    a.lines.append((cls, waiting))
        a.plan_at = self._layout

    def _reindex(self, a: _Agent, now: float, only: _Route | None = None) -> None:
        cfg = a.config
        ready = is_ready(a.presence, a.wrapup_until, now, cfg.capacity, a.load, cfg.exclusive)
        aid, sid = cfg.id, a.sid
        if only is None and a.plan_at != self._layout:
            self._plan(a)
        for qid, q, scores, heap in a.routes if only is None else (only,):
            floor = q.floor
            if not ready or (floor and not meets(cfg.skills, floor)):
                scores.pop(aid, None)
                continue
            if q.strategy is _LONGEST_IDLE:  # the default, spelled out: this runs on every decision
                score = a.last
            else:
                score = agent_score(
                    q.strategy,
                    last_activity=a.last,
                    load=a.load,
                    capacity=cfg.capacity,
                    round_robin=a.round_robin.get(qid, 0.0),
                    match=skill_match(cfg.skills, q.skills) if q.skills else 0,
                )
            if scores.get(aid) != score:
                scores[aid] = score
                _heappush(heap, (score, sid, 0, aid))
                if len(heap) > 4 * len(scores) + 64:
                    heap[:] = [(s, str(i), 0, i) for i, s in scores.items()]  # in place: plans hold this list
                    heapq.heapify(heap)

    def _eligible(self, a: _Agent, c: _Conversation, minimums: dict[str, int], now: float) -> bool:
        return (
            a.presence is Presence.AVAILABLE
            and now >= a.wrapup_until
            and can_take(c.cls, a.config.capacity, a.load, a.config.exclusive)
            and meets(a.config.skills, minimums)
        )

    # conversations in and out of the indexes

    def _bump(self, conversation: ConversationId) -> None:
        self._version += 1
        self._changed[conversation] = self._version

    def _put_waiting(self, c: _Conversation) -> None:
        self._bump(c.id)
        c.state, c.agent, c.until, c.token = "waiting", None, 0.0, next(self._tokens)
        q = self.queues.get(c.queue)
        stages = len(q.stages) if q is not None else 0
        c.line = min(c.stage, stages)
        fresh = self._fresh
        entry = (c.score, c.sid, c.token, c.id)
        lines = self._lines.setdefault(c.queue, {})
        line = lines.get((c.cls, c.line))
        if line is None:
            line = lines[(c.cls, c.line)] = _Line()
            self._layout += 1  # agents' plans must see the new line
        line.push(entry, c.priority, fresh)
        c.waits_in = line
        if c.stage < stages:  # only a conversation with a stage ahead needs its age indexed
            age = self._age.get((c.queue, c.stage))
            if age is None:
                age = self._age[(c.queue, c.stage)] = _Heap()
            age.push((c.queued_at, c.sid, c.token, c.id), fresh)
        self._push_oldest(c)

    def _push_oldest(self, c: _Conversation) -> None:
        oldest = self._oldest.get(c.queue)
        if oldest is None:
            oldest = self._oldest[c.queue] = _Heap()
        oldest.push((c.enqueued_at, c.sid, c.token, c.id), self._fresh)
        self._waiting_count[c.queue] += 1

    def _park(self, c: _Conversation, agent: AgentId, until: float) -> None:
        self._bump(c.id)
        c.state, c.agent, c.until, c.token = "parked", agent, until, next(self._tokens)
        parked = self._parked.get(agent)
        if parked is None:
            parked = self._parked[agent] = _Heap()
        parked.push((c.score, c.sid, c.token, c.id), self._fresh)
        self._parked_until.push((until, c.sid, c.token, c.id), self._fresh)
        self._push_oldest(c)

    def _take_out(self, c: _Conversation) -> None:
        """Leave the waiting/parked indexes (their entries go stale with the token)."""
        if c.state == "waiting" or c.state == "parked":
            self._waiting_count[c.queue] -= 1
        c.token = next(self._tokens)
        if c.state == "waiting":
            # Keep the line's head fresh, so a decision can compare heads without reading their conversations.
            line = c.waits_in
            if line is not None:
                line.took(c.id, c.priority, self._fresh)
                c.waits_in = None

    def _free(self, a: _Agent, cls: str) -> None:
        a.load[cls] = max(0, a.load.get(cls, 0) - 1)

    def _claim(self, c: _Conversation, a: _Agent, now: float) -> Claim:
        q = self.queues[c.queue]
        self._take_out(c)
        load = a.load
        load[c.cls] = load.get(c.cls, 0) + 1
        a.last = now
        aid = a.config.id
        if q.strategy is Strategy.ROUND_ROBIN:
            self._round_robin[q.id] += 1
            a.round_robin[q.id] = float(self._round_robin[q.id])
        c.agent = aid
        self._bump(c.id)
        self._queue_counts[q.id]["offered"] += 1
        a.counts["offered"] += 1
        if q.direct:
            c.state, c.until = "assigned", 0.0
            self._answered(c, a, now)
        else:
            c.state, c.until = "offered", now + q.offer_timeout
            self._offers.push((c.until, c.sid, c.token, c.id), self._fresh)
        self._reindex(a, now)
        return Claim(c.id, aid, c.queue, c.channel, not q.direct, None if q.direct else c.until, c.enqueued_at)

    def _answered(self, c: _Conversation, a: _Agent, now: float) -> None:
        counts = self._queue_counts[c.queue]
        counts["answered"] += 1
        if now - c.enqueued_at <= self.queues[c.queue].sla_wait:
            counts["answered_in_sla"] += 1
        if c.customer is not None:
            self._last_agent[c.customer] = a.config.id

    # decisions

    async def enqueue_many(
        self, items: Sequence[tuple[Waiting, float]], now: float
    ) -> list[tuple[bool, AgentId | None]]:
        out: list[tuple[bool, AgentId | None]] = []
        for item, sticky_for in items:
            try:
                out.append((True, await self.enqueue(item, now, sticky_for)))
            except KeyError:
                out.append((False, None))
        return out

    async def enqueue(self, item: Waiting, now: float, sticky_for: float) -> AgentId | None:
        if item.id in self.conversations:
            raise KeyError(f"conversation {item.id} is already routed")
        if item.queue not in self.queues:
            raise KeyError(f"unknown queue {item.queue!r}")
        if item.channel not in CAPACITY_CLASS:
            raise KeyError(f"unknown channel {item.channel!r}")
        c = _Conversation(item.id, item.queue, item.channel, item.priority, item.enqueued_at, now, item.customer)
        self.conversations[c.id] = c
        self._bump(c.id)
        self._await_reply(c, item.respond_by)
        last = self._last_agent.get(item.customer) if item.customer is not None and sticky_for > 0 else None
        if last is not None and last in self.agents and self.agents[last].presence is Presence.AVAILABLE:
            self._park(c, last, now + sticky_for)
            return last
        self._put_waiting(c)
        return None

    def _heads(self, queue: QueueId) -> list[tuple[_Entry, _Conversation]]:
        """The head of each waiting line of the queue, best first."""
        fresh, convs = self._fresh, self.conversations
        heads = []
        for line in self._lines.get(queue, {}).values():
            e = line.head(fresh)
            if e is not None:
                heads.append((e, convs[e[3]]))
        heads.sort(key=lambda h: (h[0][0], h[0][1]))
        return heads

    async def dispatch_queue(self, queue: QueueId, now: float) -> Claim | None:
        q = self.queues.get(queue)
        if q is None:
            return None
        levels = q.levels
        failed: set[tuple[str, int]] = set()  # (class, level) no ready agent can take: every such head fails alike
        for _, c in self._heads(queue):
            level = min(c.stage, len(levels) - 1)
            if (c.cls, level) in failed:
                continue
            minimums = levels[level]
            heap, scores = self._ready[queue], self._ready_score[queue]
            popped: list[_AgentEntry] = []
            seen: set[AgentId] = set()
            found: _Agent | None = None
            # An agent who declined this conversation gets it again only if no one else can take it, so a
            # declined head never blocks its queue.
            declined: _Agent | None = None
            while heap and len(seen) < SCAN_LIMIT:
                e = _heappop(heap)
                if scores.get(e[3]) != e[0] or e[3] in seen:
                    continue
                popped.append(e)
                seen.add(e[3])
                a = self.agents[e[3]]
                if self._eligible(a, c, minimums, now):
                    if c.skip is None or e[3] not in c.skip:
                        found = a
                        break
                    declined = declined or a
            for e in popped:
                _heappush(heap, e)
            found = found or declined
            if found is not None:
                return self._claim(c, found, now)
            failed.add((c.cls, level))
        return None

    async def dispatch_agent(self, agent: AgentId, now: float) -> Claim | None:
        a = self.agents.get(agent)
        if a is None or a.presence is not _AVAILABLE or now < a.wrapup_until:
            return None
        cfg = a.config
        capacity, load, exclusive = cfg.capacity, a.load, cfg.exclusive
        convs = self.conversations
        parked = self._parked.get(agent)
        if parked is not None and parked.entries:
            heap = parked.entries
            popped: list[_Entry] = []
            found: _Conversation | None = None
            while heap and len(popped) < SCAN_LIMIT:
                e = _heappop(heap)
                p = convs.get(e[3])
                if p is None or p.token != e[2]:
                    continue
                popped.append(e)
                if can_take(p.cls, capacity, load, exclusive):
                    found = p
                    break
            for e in popped:
                _heappush(heap, e)
            if found is not None:
                return self._claim(found, a, now)
        # The classes this agent has room for, worked out once rather than per queue.
        open_classes = [cls for cls in CLASSES if can_take(cls, capacity, load, exclusive)]
        if not open_classes:
            return None
        if a.plan_at != self._layout:
            self._plan(a)
        best: _Entry | None = None
        for cls, line in a.lines:
            # A line's head is always fresh (see _take_out), and the plan holds only lines whose skills the agent
            # meets: only the heads are compared, and only the best one's conversation is read. (score, member)
            # is unique, so comparing whole entries compares those.
            head = line.first
            if head is not None and (best is None or head < best) and cls in open_classes:
                best = head
        return self._claim(convs[best[3]], a, now) if best is not None else None

    async def drain_queue(self, queue: QueueId, now: float, most: int) -> list[Claim]:
        out: list[Claim] = []
        while len(out) < most and (claim := await self.dispatch_queue(queue, now)) is not None:
            out.append(claim)
        return out

    async def drain_agents(self, agents: Sequence[AgentId], now: float, most: int) -> list[Claim]:
        out: list[Claim] = []
        for agent in agents:
            while len(out) < most and (claim := await self.dispatch_agent(agent, now)) is not None:
                out.append(claim)
        return out

    async def accept(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        c = self.conversations.get(conversation)
        if c is None or c.state != "offered" or c.agent != agent:
            return None
        a = self.agents[agent]
        self._bump(c.id)
        c.state, c.until, c.token = "assigned", 0.0, next(self._tokens)
        a.missed = 0
        a.counts["accepted"] += 1
        self._queue_counts[c.queue]["accepted"] += 1
        self._answered(c, a, now)
        return Claim(c.id, agent, c.queue, c.channel, False, None, c.enqueued_at)

    def _requeue(self, c: _Conversation, a: _Agent, now: float) -> None:
        self._free(a, c.cls)
        if c.skip is None:
            c.skip = set()
        c.skip.add(a.config.id)
        self._put_waiting(c)
        self._reindex(a, now)

    async def reject(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        c = self.conversations.get(conversation)
        if c is None or c.state != "offered" or c.agent != agent:
            return None
        a = self.agents[agent]
        a.missed = 0
        a.counts["rejected"] += 1
        self._queue_counts[c.queue]["rejected"] += 1
        self._requeue(c, a, now)
        return Claim(c.id, agent, c.queue, c.channel, True, None, c.enqueued_at)

    async def expire_offers(self, now: float, missed_limit: int) -> list[Expiry]:
        out: list[Expiry] = []
        while (e := self._offers.head(self._fresh)) is not None and e[0] <= now:
            _heappop(self._offers.entries)
            c = self.conversations[e[3]]
            assert c.agent is not None and c.state == "offered"
            a = self.agents[c.agent]
            a.missed += 1
            a.counts["timed_out"] += 1
            self._queue_counts[c.queue]["timed_out"] += 1
            away = a.missed >= missed_limit and a.presence is Presence.AVAILABLE
            if away:
                a.presence = Presence.AWAY
            out.append(Expiry(c.id, a.config.id, c.queue, away))
            self._requeue(c, a, now)
        return out

    async def resolve(self, conversation: ConversationId, now: float) -> Release | None:
        c = self.conversations.pop(conversation, None)
        if c is None:
            return None
        self._bump(c.id)
        c.token = next(self._tokens)  # gone: every entry it left in an index is stale
        if c.respond_by > 0 and now <= c.respond_by:
            # Resolved before its deadline without a reply: no outcome. Past the deadline, it stays in the index
            # and counts as a breach (whether or not the sweep saw it before the resolve).
            self._awaiting.pop(_member(c), None)
        if c.state in ("waiting", "parked"):
            self._take_out(c)
            self._queue_counts[c.queue]["abandoned"] += 1
            return Release(c.id, c.queue, None)
        assert c.agent is not None
        a = self.agents[c.agent]
        self._free(a, c.cls)
        until = None
        if c.state == "assigned" and a.config.wrapup > 0:
            until = a.wrapup_until = now + a.config.wrapup
            _heappush(self._wrapups, (until, str(a.config.id), 0, a.config.id))
        self._reindex(a, now)
        return Release(c.id, c.queue, a.config.id, until)

    async def transfer(
        self,
        conversation: ConversationId,
        now: float,
        *,
        queue: QueueId | None = None,
        agent: AgentId | None = None,
        until: float = 0.0,
    ) -> Release | None:
        c = self.conversations.get(conversation)
        if c is None:
            return None
        if queue is not None and queue not in self.queues:
            raise KeyError(f"unknown queue {queue!r}")
        if agent is not None and agent not in self.agents:
            raise KeyError(f"unknown agent {agent}")
        release = Release(c.id, c.queue, c.agent if c.state in ("offered", "assigned") else None)
        if c.state in ("offered", "assigned"):
            assert c.agent is not None
            a = self.agents[c.agent]
            self._free(a, c.cls)
            c.token = next(self._tokens)
            self._reindex(a, now)
        else:
            self._take_out(c)
        if queue is not None and queue != c.queue:
            c.queue, c.stage, c.queued_at = queue, 0, now
        c.skip = None
        self._queue_counts[release.queue]["transferred"] += 1
        if agent is not None:
            self._park(c, agent, until)
        else:
            self._put_waiting(c)
        return release

    async def set_priority(self, conversation: ConversationId, priority: int) -> bool:
        c = self.conversations.get(conversation)
        if c is None:
            return False
        if c.priority == priority:
            return True
        # Out of its line under the old priority (the line's head is kept fresh), back in under the new one: the
        # same queue, stage and age (queued_at, enqueued_at), the same agents skipped.
        state = c.state
        if state in ("waiting", "parked"):
            self._take_out(c)
        self._bump(c.id)
        c.priority = priority
        c.score = waiting_score(priority, c.enqueued_at)
        if state == "waiting":
            self._put_waiting(c)
        elif state == "parked":
            assert c.agent is not None
            self._park(c, c.agent, c.until)
        return True

    async def end_wrapups(self, now: float) -> list[AgentId]:
        out: list[AgentId] = []
        while self._wrapups and self._wrapups[0][0] <= now:
            until, _, _, aid = _heappop(self._wrapups)
            a = self.agents.get(aid)
            if a is not None and a.wrapup_until == until:
                self._reindex(a, now)
                out.append(aid)
        return out

    async def release_parked(self, now: float) -> list[Waiting]:
        out: list[Waiting] = []
        while (e := self._parked_until.head(self._fresh)) is not None and e[0] <= now:
            _heappop(self._parked_until.entries)
            c = self.conversations[e[3]]
            assert c.state == "parked"
            self._take_out(c)
            self._put_waiting(c)
            out.append(Waiting(c.id, c.queue, c.channel, c.priority, c.enqueued_at, c.customer))
        return out

    async def escalate(self, queue: QueueId, stage: int, older_than: float, now: float) -> list[Escalation]:
        q = self.queues[queue]
        step = q.stages[stage - 1]
        heap = self._age.get((queue, stage - 1))
        out: list[Escalation] = []
        if heap is None:
            return out
        while (e := heap.head(self._fresh)) is not None and e[0] <= older_than:
            _heappop(heap.entries)
            c = self.conversations[e[3]]
            assert c.state == "waiting" and c.stage == stage - 1
            self._take_out(c)
            c.skip = None
            if step.overflow is not None:
                c.queue, c.stage, c.queued_at = step.overflow, 0, now
                self._put_waiting(c)
                out.append(Escalation(c.id, queue, stage, "overflow", step.overflow))
            elif step.callback and c.cls == "voice":
                self._bump(c.id)
                del self.conversations[c.id]
                out.append(Escalation(c.id, queue, stage, "callback"))
            else:
                c.stage = stage
                self._put_waiting(c)
                out.append(Escalation(c.id, queue, stage, "widen"))
        return out

    # first response

    async def responded(self, conversation: ConversationId, now: float) -> FirstResponse | None:
        c = self.conversations.get(conversation)
        if c is None or c.respond_by <= 0:
            return None
        counts = self._queue_counts.setdefault(c.respond_queue, Counter())
        counts["responded"] += 1
        noticed = False
        if self._awaiting.pop(_member(c), None) is not None:  # else the sweep already counted its breach
            noticed = now > c.respond_by
            counts["response_breached" if noticed else "responded_in_sla"] += 1
        out = FirstResponse(c.id, c.respond_queue, c.enqueued_at, c.respond_by, noticed)
        c.respond_by = 0.0
        return out

    async def response_breaches(self, now: float) -> list[FirstResponse]:
        heap, awaiting = self._awaiting_heap, self._awaiting
        out: list[FirstResponse] = []
        while heap and heap[0][0] < now:  # a reply at the deadline is in time
            due, member, cid, queue, enqueued_at = _heappop(heap)
            if awaiting.get(member) != due:
                continue  # replied to, or resolved in time
            del awaiting[member]
            self._queue_counts.setdefault(queue, Counter())["response_breached"] += 1
            out.append(FirstResponse(cid, queue, enqueued_at, due))
        return out

    def _await_reply(self, c: _Conversation, respond_by: float) -> None:
        """Start the conversation's first-response clock (a deadline of 0: none)."""
        if respond_by > 0:
            c.respond_by, c.respond_queue = respond_by, c.queue
            member = _member(c)
            self._awaiting[member] = respond_by
            _heappush(self._awaiting_heap, (respond_by, member, c.id, c.queue, c.enqueued_at))

    async def hold(self, item: Waiting, agent: AgentId, deadline: float | None, now: float) -> bool:
        if item.id in self.conversations or agent not in self.agents:
            return False
        if item.queue not in self.queues:
            raise KeyError(f"unknown queue {item.queue!r}")
        c = _Conversation(item.id, item.queue, item.channel, item.priority, item.enqueued_at, now, item.customer)
        self.conversations[c.id] = c
        self._bump(c.id)
        self._await_reply(c, item.respond_by)
        a = self.agents[agent]
        a.load[c.cls] = a.load.get(c.cls, 0) + 1
        c.agent, c.token = agent, next(self._tokens)
        if deadline is None:
            c.state, c.until = "assigned", 0.0
        else:
            c.state, c.until = "offered", deadline
            self._offers.push((c.until, c.sid, c.token, c.id), self._fresh)
        self._reindex(a, now)
        return True

    async def hold_many(self, holds: Sequence[tuple[Waiting, AgentId, float | None]], now: float) -> list[bool]:
        return [await self.hold(item, agent, deadline, now) for item, agent, deadline in holds]

    async def restore_counts(self, queue: QueueId, counts: Mapping[str, int]) -> None:
        self._queue_counts[queue] = Counter({k: v for k, v in counts.items() if k in COUNTED})

    async def version(self) -> int:
        return self._version

    async def changes(self, since: int) -> tuple[int, list[ConversationId]] | None:
        if since < self._trimmed or since > self._version:
            return None
        return self._version, [cid for cid, v in self._changed.items() if v > since]

    async def trim_changes(self, below: int) -> None:
        if below > self._trimmed:
            self._trimmed = min(below, self._version)
            self._changed = {cid: v for cid, v in self._changed.items() if v > self._trimmed}

    async def routed(self) -> list[ConversationId]:
        return list(self.conversations)

    # reading

    async def conversation(self, conversation: ConversationId) -> ConversationView | None:
        c = self.conversations.get(conversation)
        if c is None:
            return None
        return ConversationView(c.id, c.queue, c.channel, c.priority, c.enqueued_at, c.state, c.agent, c.stage,
                                c.until)

    async def read_conversations(self, ids: Sequence[ConversationId]) -> dict[ConversationId, ConversationView]:
        return {cid: v for cid in ids if (v := await self.conversation(cid)) is not None}

    async def queue_stats(self, queue: QueueId, now: float) -> QueueStats:
        heap = self._oldest.get(queue)
        oldest = heap.head(self._fresh) if heap is not None else None
        counts = self._queue_counts.get(queue, Counter())
        busy = sum(1 for aid in self._members.get(queue, ()) if any(self.agents[aid].load.values()))
        return QueueStats(
            queue=queue,
            waiting=self._waiting_count[queue],
            longest_wait=max(0.0, now - oldest[0]) if oldest is not None else 0.0,
            available_agents=len(self._ready_score.get(queue, {})),
            busy_agents=busy,
            offered=counts["offered"],
            accepted=counts["accepted"],
            rejected=counts["rejected"],
            timed_out=counts["timed_out"],
            answered=counts["answered"],
            answered_in_sla=counts["answered_in_sla"],
            abandoned=counts["abandoned"],
            responded=counts["responded"],
            responded_in_sla=counts["responded_in_sla"],
            response_breached=counts["response_breached"],
        )

    async def agent_stats(self, agent: AgentId) -> AgentStats | None:
        a = self.agents.get(agent)
        if a is None:
            return None
        return AgentStats(
            agent=agent,
            presence=a.presence,
            load={k: v for k, v in a.load.items() if v},
            capacity=dict(a.config.capacity),
            wrapup_until=a.wrapup_until,
            missed_in_row=a.missed,
            offered=a.counts["offered"],
            accepted=a.counts["accepted"],
            rejected=a.counts["rejected"],
            timed_out=a.counts["timed_out"],
        )

    async def read_agents(self, ids: Sequence[AgentId]) -> dict[AgentId, AgentStats]:
        return {aid: s for aid in ids if (s := await self.agent_stats(aid)) is not None}


def _member(c: _Conversation) -> str:
    return f"{c.id}:{c.respond_queue}:{c.enqueued_at:.17g}"
